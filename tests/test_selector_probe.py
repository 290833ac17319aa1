"""Cluster-first probing within a budget, against plain reference loops; and select() with a
budget that covers the library equals exact (flat) scoring."""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pixtention.curator.library import Library
from pixtention.curator.records import AdapterRecord
from pixtention.selector.probe import ClusterIndex, probe, probe_order
from pixtention.selector.select import select


def reference_order(sims: np.ndarray) -> list[int]:
    """Rank 0 of every row, then rank 1 of every row …, each cluster the first time it comes."""
    ranked = [
        sorted(range(sims.shape[1]), key=lambda c: (-sims[r, c], c)) for r in range(len(sims))
    ]
    seen: list[int] = []
    for rank in range(sims.shape[1]):
        for row in ranked:
            if row[rank] not in seen:
                seen.append(row[rank])
    return seen


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 9),
    st.integers(0, 10_000),
    st.integers(0, 12),
    st.integers(0, 40),
)
def test_probe_takes_clusters_in_order_within_the_budget(rows, n_clusters, seed, minimum, budget):
    rng = np.random.default_rng(seed)
    sims = rng.integers(-3, 4, (rows, n_clusters)).astype(np.float32)  # ties included
    assert probe_order(sims).tolist() == reference_order(sims)

    assignment = rng.integers(0, n_clusters, 30)
    centroids = rng.normal(size=(n_clusters, 4)).astype(np.float32)
    queries = rng.normal(size=(rows, 4)).astype(np.float32)
    index = ClusterIndex.build(centroids, assignment)
    chosen, total = [], 0
    for c in reference_order(queries @ centroids.T):
        size = int((assignment == c).sum())
        if len(chosen) < minimum or total + size <= budget:
            chosen.append(c)
            total += size
        else:
            break
    expected = sorted(i for i in range(30) if assignment[i] in chosen)
    got = probe(index, queries, minimum, budget)
    assert sorted(got.tolist()) == expected and len(got) == len(set(got.tolist()))


class WordHashEmbedder:
    """A deterministic stand-in: a text's vector is the sum of one random vector per word."""

    id = "test/word-hash"

    def embed(self, texts):
        out = np.zeros((len(texts), 32), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(",", " ").split():
                seed = int.from_bytes(
                    hashlib.blake2b(word.encode(), digest_size=4).digest(), "little"
                )
                out[i] += np.random.default_rng(seed).normal(size=32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)


WORDS = [
    "dragon",
    "knight",
    "castle",
    "forest",
    "neon",
    "city",
    "cat",
    "samurai",
    "watercolor",
    "pixel",
    "armor",
    "dress",
]


def _library(n: int) -> Library:
    rng = np.random.default_rng(7)
    records, texts = [], []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, 3)) + f" item{i}"
        texts.append(text)
        records.append(
            AdapterRecord(
                id=i, name=f"a{i}", path=f"/l/a{i}.safetensors", fingerprint=f"f{i}",
                short_hash=None, title=text, category=None, base_family="sd1",
                base_variant=None, kind="lora", rank=4, triggers=(), preferred_weight=None,
                weight_source=None, tags=(), document=text, fields={"title": text},
            )
        )  # fmt: skip
    embedder = WordHashEmbedder()
    return Library.from_records(records, embedder.embed(texts), embedder)


def test_a_budget_covering_the_library_scores_exactly_and_a_small_one_prunes() -> None:
    library = _library(400)
    assert len(library.cluster_labels) > 1
    prompt = "a knight in armor, neon city, watercolor dragon"
    flat = select(prompt, library, k=5, per_phrase=5, clusters=None, threshold=-1)
    covering = select(prompt, library, k=5, per_phrase=5, budget=len(library), threshold=-1)
    assert [(p.name, p.score) for p in covering] == [(p.name, p.score) for p in flat]
    pruned = select(prompt, library, k=5, per_phrase=5, clusters=1, budget=1, threshold=-1)
    assert pruned  # the nearest cluster and the lexical top hits are always scored
    assert all(p.score <= flat[0].score + 1e-6 for p in pruned)


def test_scores_do_not_depend_on_how_many_candidates_are_scored() -> None:
    """Most of the library is scored with one product over all of it, a few candidates by
    copying their rows; both paths give every candidate the same score and bound phrase."""
    from pixtention.selector import candidates
    from pixtention.selector.prompt import parse_prompt
    from pixtention.selector.query import embed_query
    from pixtention.selector.select import DEFAULT_SCORING

    library = _library(400)
    index, scoring = candidates.lexical_index(library), DEFAULT_SCORING
    query = embed_query(
        parse_prompt("a knight in armor, neon city, watercolor dragon"), library, index, scoring
    )
    lexical = index.scores(query.terms, scoring.column_weights, scoring.prior_docs, 1024)
    many = np.arange(300)  # more than half the library: the whole-library product
    few = many[::7]  # the copied rows
    a = candidates.score_ids(query, library, many, lexical, scoring)
    b = candidates.score_ids(query, library, few, lexical, scoring)
    np.testing.assert_allclose(a.score[::7], b.score, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.phrase[::7], b.phrase)
    reference = query.vectors @ library.vectors[few].T  # an independent numpy product
    np.testing.assert_allclose(
        b.phrase_score, reference[1 + b.phrase, np.arange(len(few))], atol=1e-5
    )
