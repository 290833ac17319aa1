"""Scoring functions against straightforward reference computations."""

from __future__ import annotations

import math
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pixtention.selector import retrieval as R
from pixtention.selector.lexical import LexicalIndex

# (name, tags, body) rows of the keyword index
ROWS = [
    ("Red Dragon Creature", "dragon, monster, wings, fire", ""),
    ("Knight in shining armor", "armor, knight, sword", "A knight."),
    ("Watercolor painting style", "watercolor, painting, paper", ""),
    ("Dragon knight", "", "a knight riding a dragon, dragon dragon"),
    ("", "", ""),
]
WEIGHTS = (3.0, 2.0, 1.0)


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[^\W_]+", text)]


def reference_bm25(
    rows, query: str, weights=WEIGHTS, prior: float = 0.0, k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """Okapi BM25 written out term by term (Robertson & Zaragoza 2009, eq. 3.15, idf +1 with
    ``prior`` documents more), fields weighted as FTS5's bm25() weights columns: a term's
    frequency is the weighted sum over columns, a document's length its word count."""
    columns = [[_words(c) for c in row] for row in rows]
    lengths = [sum(map(len, doc)) for doc in columns]
    n = len(rows)
    avgdl = sum(lengths) / n
    out = []
    for doc, length in zip(columns, lengths):
        total = 0.0
        for term in set(_words(query)):
            df = sum(any(term in c for c in d) for d in columns)
            if df == 0:
                continue
            idf = math.log(1 + (n + prior - df + 0.5) / (df + 0.5))
            tf = sum(w * c.count(term) for w, c in zip(weights, doc))
            total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))
        out.append(total)
    return out


def test_fts5_bm25_with_prior_idf_matches_the_formula() -> None:
    index = LexicalIndex.in_memory(ROWS)
    for query in ("dragon knight", "Watercolor PAINTING, dragon", "nothing here", "", "sword"):
        for prior in (0.0, 100.0):
            got = index.scores(_words(query), WEIGHTS, prior, 100)
            np.testing.assert_allclose(got, reference_bm25(ROWS, query, prior=prior), rtol=1e-4)
    assert LexicalIndex.in_memory([]).scores(["x"], WEIGHTS, 0.0, 10).shape == (0,)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(*[st.lists(st.sampled_from(["ab", "cd", "ef", "gh", "ij"]), max_size=5)] * 3),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.sampled_from(["ab", "cd", "ef", "zz"]), max_size=4),
)
def test_fts5_bm25_matches_the_formula_on_random_corpora(docs, query) -> None:
    rows = [tuple(" ".join(c) for c in doc) for doc in docs]
    q = " ".join(query)
    got = LexicalIndex.in_memory(rows).scores(_words(q), WEIGHTS, 100.0, 100)
    np.testing.assert_allclose(got, reference_bm25(rows, q, prior=100.0), rtol=1e-4, atol=1e-5)


def test_each_word_counts_its_best_documents_only() -> None:
    rows = [("", "", "knight " * (i % 3 + 1) + f"w{i}") for i in range(50)] + [("", "", "x")]
    index = LexicalIndex.in_memory(rows)
    full = index.scores(["knight"], WEIGHTS, 0.0, 1000)
    top = index.scores(["knight"], WEIGHTS, 0.0, 10)
    assert (top > 0).sum() == 10
    kept = np.flatnonzero(top)
    np.testing.assert_allclose(top[kept], full[kept], rtol=1e-6)
    assert top[kept].min() >= np.sort(full)[-10] - 1e-6


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
    index = LexicalIndex.in_memory(ROWS)
    common, rare = R.phrase_specificity(index, "dragon"), R.phrase_specificity(index, "paper")
    assert 0 < common < rare <= 1.0
    assert R.phrase_specificity(index, "unheard-of") == 1.0
    assert R.phrase_specificity(index, "") == 0.0
    assert R.phrase_specificities(index, ["dragon", "paper", ""]) == [common, rare, 0.0]


def test_matched_words_count_words_whatever_the_library_size() -> None:
    """One word that only one document holds, once, at average length counts 1 — in a library
    of 3 documents as in one of 2,000 — while raw BM25 grows with the library's size."""
    small = [
        ("", "", "knight armor sword"),
        ("", "", "neon city night"),
        ("", "", "water paper ink"),
    ]
    large = small + [("", "", f"filler{i} thing{i % 7} other{i % 13}") for i in range(1997)]
    raw, counted = [], []
    for rows in (small, large):
        index = LexicalIndex.in_memory(rows)
        raw.append(index.scores(["knight"], WEIGHTS, 0.0, 100)[0])
        for prior in (0.0, 100.0):
            words = R.matched_words(index, ["knight"], WEIGHTS, prior, 100)
            counted.append(words[0])
            assert (words[1:] == 0).all()
            two = R.matched_words(index, ["neon", "night"], WEIGHTS, prior, 100)[1]
            assert math.isclose(two, 2.0, rel_tol=1e-4)  # two such words count 2
    np.testing.assert_allclose(counted, 1.0, rtol=1e-4)
    assert raw[1] > 5 * raw[0]


def test_idf_with_prior() -> None:
    rows = [("", "", "knight armor"), ("", "", "knight sword"), ("", "", "city night")]
    index = LexicalIndex.in_memory(rows)
    n, m = len(rows), 100.0
    for df in (1, 2):
        assert math.isclose(
            R.idf_with_prior(df, n, m), math.log(1 + (n + m - df + 0.5) / (df + 0.5))
        )
    # two documents of three say "knight": no evidence that the word is generic
    assert (
        R.phrase_specificity(index, "a knight")
        < 0.5
        < 0.8
        < R.phrase_specificity(index, "a knight", m)
    )
    # a large library shows it: the prior hardly moves idf there
    big = (
        rows + [("", "", f"knight{i % 2} w{i}") for i in range(5000)] + [("", "", "knight")] * 2000
    )
    large = LexicalIndex.in_memory(big)
    df = large.doc_freqs(["knight"])["knight"]
    assert abs(R.idf_with_prior(df, len(big), m) / R.idf_with_prior(df, len(big), 0) - 1) < 0.05
    assert R.phrase_specificity(large, "a knight", m) < 0.3
