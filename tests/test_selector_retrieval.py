"""Scoring functions against straightforward reference computations."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pixtention.selector import retrieval as R

DOCS = [
    "Red Dragon Creature. Tags: dragon, monster, wings, fire",
    "Knight in shining armor. Tags: armor, knight, sword",
    "Watercolor painting style. Tags: watercolor, painting, paper",
    "Dragon knight: a knight riding a dragon, dragon dragon",
    "",
]


def reference_bm25(docs: list[str], query: str, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 written out term by term (Robertson & Zaragoza 2009, eq. 3.15, idf +1)."""
    tokenised = [[w.lower() for w in __import__("re").findall(r"[^\W_]+", d)] for d in docs]
    n = len(docs)
    avgdl = sum(map(len, tokenised)) / n
    out = []
    for doc in tokenised:
        total = 0.0
        for term in set(w.lower() for w in __import__("re").findall(r"[^\W_]+", query)):
            df = sum(term in d for d in tokenised)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = doc.count(term)
            total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(total)
    return out


def test_bm25_matches_the_formula() -> None:
    index = R.BM25(DOCS)
    for query in (
        "dragon knight",
        "Watercolor PAINTING, dragon",
        "nothing here",
        "",
        "sword sword",
    ):
        np.testing.assert_allclose(index.scores(query), reference_bm25(DOCS, query), rtol=1e-5)
    assert R.BM25([]).scores("x").shape == (0,)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["ab", "cd", "ef", "gh", "ij"]), max_size=8),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.sampled_from(["ab", "cd", "ef", "zz"]), max_size=4),
)
def test_bm25_matches_the_formula_on_random_corpora(docs, query) -> None:
    texts = [" ".join(d) for d in docs]
    q = " ".join(query)
    np.testing.assert_allclose(
        R.BM25(texts).scores(q), reference_bm25(texts, q), rtol=1e-5, atol=1e-6
    )


def test_squash_is_absolute_and_bounded() -> None:
    got = R.squash(np.array([0.0, 10.0, 30.0, -1.0]), 10.0)
    np.testing.assert_allclose(got, [0.0, 0.5, 0.75, 0.0])


def test_dense_scores_and_binding() -> None:
    rng = np.random.default_rng(0)
    sims = rng.uniform(-1, 1, size=(4, 7)).astype(np.float32)  # prompt + 3 phrases, 7 adapters
    weights = np.array([1.0, 0.5, 0.25], np.float32)
    dense, bound = R.dense_scores(sims, 0.25, weights)
    for j in range(7):
        best_weighted = max(sims[1 + p, j] * weights[p] for p in range(3))
        assert math.isclose(dense[j], 0.25 * sims[0, j] + 0.75 * best_weighted, rel_tol=1e-5)
        assert bound[j] == int(np.argmax(sims[1:, j]))  # binding ignores the weights
    alone, none = R.dense_scores(sims[:1], 0.25)
    np.testing.assert_array_equal(alone, sims[0])
    assert (none == -1).all()


def test_hybrid_cosine_and_top_k() -> None:
    np.testing.assert_allclose(R.hybrid_scores(np.array([1.0]), np.array([0.0]), 0.3), [0.7])
    q = np.array([[1.0, 0.0]], np.float32)
    v = np.array([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(R.cosine(q, v), [[0.6, 1.0, 0.0]])
    assert R.cosine(q, np.zeros((0, 2), np.float32)).shape == (1, 0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 16)), rng.normal(size=(40, 16))  # float64 in: float32 out
    np.testing.assert_allclose(R.cosine(a, b), a @ b.T, rtol=1e-4, atol=1e-4)
    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0])
    assert R.top_k(scores, 3).tolist() == [1, 3, 2]
    assert R.top_k(scores, 10).tolist() == [1, 3, 2, 0, 4]
    assert R.top_k(scores, 0).tolist() == []


def test_phrase_specificity_follows_idf() -> None:
    index = R.BM25(DOCS)
    common, rare = R.phrase_specificity(index, "dragon"), R.phrase_specificity(index, "paper")
    assert 0 < common < rare <= 1.0
    assert R.phrase_specificity(index, "unheard-of") == 1.0
    assert R.phrase_specificity(index, "") == 0.0


def test_matched_words_count_words_whatever_the_library_size() -> None:
    """One word that only one document holds, once, at average length counts 1 — in a library
    of 3 documents as in one of 2,000 — while raw BM25 grows with the library's size."""
    small = ["knight armor sword", "neon city night", "watercolor paper paint"]
    large = small + [f"filler{i} thing{i % 7} other{i % 13}" for i in range(1997)]
    raw, counted = [], []
    for docs in (small, large):
        index = R.BM25(docs)
        raw.append(index.scores("knight")[0])
        for prior in (0.0, 100.0):
            words = R.matched_words(index, ["knight"], prior)
            counted.append(words[0])
            assert (words[1:] == 0).all()
            two = R.matched_words(index, ["neon", "night"], prior)[1]
            assert math.isclose(two, 2.0, rel_tol=1e-5)  # two such words count 2
    np.testing.assert_allclose(counted, 1.0, rtol=1e-5)
    assert raw[1] > 5 * raw[0]


def test_idf_with_prior() -> None:
    docs = ["knight armor", "knight sword", "city night"]
    index = R.BM25(docs)
    np.testing.assert_array_equal(index.idf_with_prior(0), index.idf)
    n, m = len(docs), 100.0
    for term, df in (("knight", 2), ("city", 1)):
        expected = math.log(1 + (n + m - df + 0.5) / (df + 0.5))
        assert math.isclose(index.idf_with_prior(m)[index.vocab[term]], expected, rel_tol=1e-5)
    assert math.isclose(index.rare_idf(m), math.log(1 + (n + m - 0.5) / 1.5), rel_tol=1e-6)
    # two documents of three say "knight": no evidence that the word is generic
    assert (
        R.phrase_specificity(index, "a knight")
        < 0.5
        < 0.8
        < R.phrase_specificity(index, "a knight", m)
    )
    # a large library shows it: the prior hardly moves idf there
    large = R.BM25(docs + [f"knight{i % 2} w{i}" for i in range(5000)] + ["knight"] * 2000)
    k = large.vocab["knight"]
    assert abs(large.idf_with_prior(m)[k] / large.idf[k] - 1) < 0.05
    assert R.phrase_specificity(large, "a knight", m) < 0.3
