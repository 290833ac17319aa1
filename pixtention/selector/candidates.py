"""Which adapters are scored for a query, and their scores: the probed clusters' adapters plus
the keyword top hits, past the hard filters (base-model family, adapters to skip), each scored
by the hybrid of dense cosine and full-text BM25 (:mod:`pixtention.selector.retrieval`).
Shared by ``select`` (what is applied) and ``rank`` (what is suggested)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixtention.selector import binding, retrieval
from pixtention.selector.lexical import LexicalIndex
from pixtention.selector.probe import ClusterIndex, probe
from pixtention.selector.prompt import ParsedPrompt
from pixtention.selector.query import Query, embed_query
from pixtention.selector.triggers import words

LEXICAL_CANDIDATES = 256  # keyword top hits scored besides the probed clusters' adapters
LEXICAL_POOL = 1024  # keyword hits given a lexical score (the rest of the library counts 0)
MIN_CANDIDATES = 128  # fewer compatible candidates than this: score the whole family
MAX_FAMILY_SCAN = 20_000  # a family this small is scored whole when its clusters are missed


@dataclass(frozen=True)
class LibraryStats:
    """What select() derives from a library once: its keyword index, each row's
    base-model family (for the filter's fallback) and its clusters as flat arrays."""

    size: int
    lexical: LexicalIndex
    families: np.ndarray  # (N,) str
    clusters: ClusterIndex


_STATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STATS_LOCK = threading.Lock()


def library_stats(library) -> LibraryStats:
    with _STATS_LOCK:
        cached = _STATS.get(library)
        if cached is None or cached.size != len(library):
            records = library.records
            cached = LibraryStats(
                len(library),
                LexicalIndex.for_library(library),
                np.array([r.base_family for r in records]),
                ClusterIndex.build(
                    library.centroids, np.array([r.cluster for r in records], dtype=np.int64)
                ),
            )
            _STATS[library] = cached
        return cached


def lexical_index(library) -> LexicalIndex:
    """The library's keyword index (full text), opened once per library object."""
    return library_stats(library).lexical


def common_words(library, prompt: str) -> frozenset[str]:
    """The prompt's words too common in the library to name a character alone
    (:func:`~pixtention.selector.binding.too_common`), from the keyword index's counts."""
    keywords = lexical_index(library)
    return binding.too_common(keywords.doc_freqs(words(prompt)), keywords.n_docs)


@dataclass(frozen=True)
class Scored:
    """Scores of candidate adapters (parallel arrays) against one query."""

    ids: np.ndarray
    score: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    phrase: np.ndarray  # index into Query.phrases, -1 when the prompt has no phrase
    phrase_score: np.ndarray


def score_ids(query: Query, library, ids: np.ndarray, lexical_all: np.ndarray, scoring) -> Scored:
    vectors = library.vectors
    if 2 * len(ids) > len(vectors):  # most of the library: one product beats copying its rows
        sims = retrieval.cosine(query.vectors, vectors)[:, ids]
    else:
        sims = retrieval.cosine(query.vectors, vectors[ids])
    dense, best = retrieval.dense_scores(sims, scoring.prompt_share, query.weights)
    phrase_score = sims[1 + best, np.arange(len(ids))] if len(query.phrases) else np.zeros(len(ids))
    lexical = retrieval.squash(lexical_all[ids], scoring.lexical_half)
    score = retrieval.hybrid_scores(dense, lexical, scoring.lexical_share)
    return Scored(ids, score, dense, lexical, best, phrase_score)


def candidates(
    query: Query,
    library,
    clusters: int | None,
    lexical_all: np.ndarray,
    budget: int,
) -> np.ndarray:
    """Adapter ids worth scoring: those in the probed clusters plus the lexical top hits (an
    adapter that shares the prompt's rare words is worth scoring whatever its cluster); every
    adapter when ``clusters`` is None."""
    if clusters is None:
        return np.arange(len(library))
    found = probe(library_stats(library).clusters, query.vectors, clusters, budget)
    lexical = retrieval.top_k(lexical_all, LEXICAL_CANDIDATES)
    return np.unique(np.concatenate([found, lexical])).astype(np.int64)


@dataclass(frozen=True)
class Search:
    """One prompt's query against one library with the settings ``select`` and ``rank``
    share: which adapters are candidates, and their scores, follow from it."""

    query: Query
    library: Any
    scoring: retrieval.Scoring
    lexical_all: np.ndarray  # BM25 of every adapter (the top LEXICAL_POOL hits; others 0)
    clusters: int | None
    budget: int
    family: str | None  # base-model family the adapters must fit, None: any

    @classmethod
    def start(
        cls,
        parsed: ParsedPrompt,
        library: Any,
        scoring: retrieval.Scoring,
        clusters: int | None,
        budget: int,
        family: str | None,
    ) -> Search:
        """Embed the prompt and look its words up (the keyword side serves candidates and
        evidence whatever the lexical share)."""
        keywords = lexical_index(library)
        query = embed_query(parsed, library, keywords, scoring)
        lexical_all = retrieval.matched_words(
            keywords, query.terms, scoring.column_weights, scoring.prior_docs, LEXICAL_POOL
        )
        return cls(query, library, scoring, lexical_all, clusters, budget, family)

    def score(self, ids: np.ndarray) -> Scored:
        return score_ids(self.query, self.library, ids, self.lexical_all, self.scoring)

    def scored_candidates(self, skip: set[int]) -> Scored | None:
        """The candidates (:func:`candidates`) that pass the hard filters (family, ``skip``),
        scored; None when none is left."""
        library, family = self.library, self.family
        ids = candidates(self.query, library, self.clusters, self.lexical_all, self.budget)
        families = library_stats(library).families
        skipped = np.fromiter(skip, dtype=np.int64, count=len(skip))
        ok = ~np.isin(ids, skipped)
        if family is not None:
            ok &= (families[ids] == family) | (families[ids] == "unknown")
        keep = ids[ok]
        if family is not None and self.clusters is not None and len(keep) < MIN_CANDIDATES:
            # The probed clusters hold few adapters of this family (a minority family, e.g.
            # SD2 in an SD1 library): its adapters are few enough to score them all.
            allowed = np.flatnonzero((families == family) | (families == "unknown"))
            if len(allowed) <= MAX_FAMILY_SCAN:
                keep = np.union1d(keep, allowed[~np.isin(allowed, skipped)])
        if not len(keep):
            return None
        return self.score(keep.astype(np.int64))
