"""A prompt as the selector queries it: its distinct phrases, their vectors and weights.

The whole prompt and every phrase are embedded in one call; vectors of recent texts are kept
in a bounded LRU cache, because a prompt typed a word at a time keeps most of its phrases and
prompts share their quality tags. The cache never hides a mismatched embedder: the library is
asked to embed even when every text is cached, and refuses when its configured model is not the
one the index was built with.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from pixtention.curator.embedder import EmbedderError
from pixtention.selector import retrieval
from pixtention.selector.prompt import ParsedPrompt, Phrase

MAX_PHRASES = 64  # phrases embedded per prompt; a 5,000-token prompt is cut here, not refused
QUERY_CACHE_SIZE = 4096  # query texts whose vectors are kept (≈ 6 MB for 384-d vectors)


@dataclass(frozen=True)
class Query:
    """The prompt as queried: its parse, the unique phrase texts and their vectors."""

    parsed: ParsedPrompt
    phrases: tuple[Phrase, ...]  # first occurrence of each distinct phrase text, ≤ MAX_PHRASES
    vectors: np.ndarray  # row 0: whole prompt; row 1 + i: phrases[i]
    weights: np.ndarray  # phrase specificity ** Scoring.phrase_idf_power, one per phrase


class VectorCache:
    """Recent (embedder id, text) → vector, least recently used dropped first; thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
            return vector

    def put(self, key: tuple[str, str], vector: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


QUERY_CACHE = VectorCache(QUERY_CACHE_SIZE)


def embed_cached(library, texts: list[str]) -> np.ndarray:
    """Vectors of ``texts``; the ones not cached are embedded in one batched call."""
    model = library.embedder_id
    found = {t: QUERY_CACHE.get((model, t)) for t in dict.fromkeys(texts)}
    missing = [t for t, v in found.items() if v is None]
    embedded = np.asarray(library.embed(missing), dtype=np.float32)  # [] still checks the model
    for text, vector in zip(missing, embedded):
        found[text] = vector
        QUERY_CACHE.put((model, text), vector)
    return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


def distinct_phrases(parsed: ParsedPrompt) -> tuple[Phrase, ...]:
    """The first occurrence of each phrase text (case-insensitive), at most MAX_PHRASES."""
    seen: set[str] = set()
    phrases: list[Phrase] = []
    for phrase in parsed.phrases:
        key = phrase.text.lower()
        if key not in seen:
            seen.add(key)
            phrases.append(phrase)
            if len(phrases) >= MAX_PHRASES:
                break
    return tuple(phrases)


def embed_query(
    parsed: ParsedPrompt, library, bm25: retrieval.BM25, scoring: retrieval.Scoring
) -> Query:
    """Embed the whole prompt and its distinct phrases; weight phrases by specificity."""
    phrases = distinct_phrases(parsed)
    texts = [parsed.text or parsed.stripped.strip() or "."] + [p.text for p in phrases]
    vectors = embed_cached(library, texts)
    stored = library.vectors
    if stored.ndim == 2 and stored.shape[1] and vectors.shape[1] != stored.shape[1]:
        raise EmbedderError(
            f"query vectors have {vectors.shape[1]} dimensions but the index has "
            f"{stored.shape[1]}: it was built with another embedder; rebuild it with "
            "`python -m pixtention index FOLDER`"
        )
    weights = np.array(
        [retrieval.phrase_specificity(bm25, p.text) ** scoring.phrase_idf_power for p in phrases],
        dtype=np.float32,
    )
    return Query(parsed, phrases, vectors, weights)
