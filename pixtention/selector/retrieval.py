"""Scoring adapters against a prompt: dense cosine, full-text keywords (FTS5 bm25) and their
hybrid.

Pure functions on numpy arrays (the keyword search itself is :mod:`.lexical`), so each scoring
rule can be tested on its own and compared side by side in ``bench/selector.py``.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pixtention.selector.phrases import STOPWORDS

if TYPE_CHECKING:
    from pixtention.selector.lexical import LexicalIndex

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, as the keyword index and the evidence matcher count them."""
    return [t.lower() for t in _TOKEN.findall(text)]


def matched_words(
    index: LexicalIndex,
    terms: Iterable[str],
    weights: Sequence[float],
    prior_docs: float,
    limit: int,
) -> np.ndarray:
    """BM25 of every adapter's full text in words matched, (n,) float32: one word that only
    it holds, once, in its description at average length counts 1 (BM25 divided by that
    word's idf, both with the prior of :func:`idf_with_prior`); see
    :meth:`~.lexical.LexicalIndex.scores` for ``limit``.

    Raw BM25 grows with log(library size), so on one fixed scale the same match would count
    about four times less in a library of ten adapters than in one of ten thousand.
    """
    rare = idf_with_prior(1, index.n_docs, prior_docs)
    return index.scores(terms, weights, prior_docs, limit) / rare


def squash(scores: np.ndarray, half: float) -> np.ndarray:
    """Map non-negative scores to [0, 1) as ``s / (s + half)`` — absolute, not per-query.

    Per-query max-normalisation would give every prompt a perfect lexical match, even one that
    shares only "the" with the library, which would defeat abstention.
    """
    scores = np.maximum(scores, 0.0)
    return (scores / (scores + half)).astype(np.float32)


def cosine(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of L2-normalised rows → (n_queries, n_vectors).

    The product runs in torch, like the query embedding just before it (on the query thread,
    :mod:`pixtention.selector.worker`): numpy's OpenBLAS keeps threads of its own spinning after
    each call, and on two cores the two pools slowed each other by about a third (select() p50
    18.5 → 14.4 ms at 10k adapters, measured interleaved on real prompts).
    """
    if len(vectors) == 0 or len(queries) == 0:
        return np.zeros((len(queries), len(vectors)), dtype=np.float32)
    torch = sys.modules.get("torch")
    if torch is None:  # a process that never loaded torch (the CLI): numpy is the only pool
        q32 = np.ascontiguousarray(queries, dtype=np.float32)
        return q32 @ np.ascontiguousarray(vectors, dtype=np.float32).T
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    v = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    return (q @ v.T).numpy()


@dataclass(frozen=True)
class Scoring:
    """How the ranking score mixes its parts (defaults measured in ``bench/selector.py``).

    score   = (1 − lexical_share) · dense + lexical_share · lexical
    dense   = prompt_share · cos(doc, prompt) + (1 − prompt_share) · max_p w_p · cos(doc, phrase p)
    lexical = squash(matched_words(prompt words), lexical_half)

    Both parts are absolute, so a threshold means the same in every library: ``lexical`` counts
    the prompt's words the adapter's full text holds (FTS5 bm25() with ``column_weights`` for
    name, tags and description; a word that only it holds, once, in its description counts 1),
    ``dense`` is mostly the cosine of the document to the phrase it serves. A document that
    plainly names its phrase scores about 0.45–0.65, one about something else 0.05–0.3. The
    phrase weights read idf as if the library held ``prior_docs`` more adapters without the
    word (:func:`idf_with_prior`). An unnormalised bm25 grows with the library's size: the
    same three documents scored 0.29–0.38 alone and 0.43–0.49 beside thirty unrelated ones.

    w_p = (specificity of phrase p) ** phrase_idf_power, see :func:`phrase_specificity`: generic
    phrases ("masterpiece", "1girl") match generic adapters everywhere, so they must not outvote
    the one rare phrase that names a concept.
    """

    prompt_share: float = 0.25
    phrase_idf_power: float = 1.0
    lexical_share: float = 0.6
    lexical_half: float = 2.3  # matched words (bm25 units) at which lexical is 0.5
    prior_docs: float = 100.0
    column_weights: tuple[float, float, float] = (3.0, 2.0, 1.0)  # name, tags, description


def idf_with_prior(df: float, n_docs: int, prior_docs: float) -> float:
    """Okapi idf (+1 inside the log, so ≥ 0) of a word ``df`` of ``n_docs`` documents hold, as
    if the library held ``prior_docs`` more documents without it.

    Three documents cannot show that a word is common, ten thousand can: the prior keeps a
    small library from halving a word's weight because two of its three documents say it, and
    leaves a large one as it is.
    """
    n = n_docs + max(prior_docs, 0.0)
    return math.log1p(max(n - df + 0.5, 0.5) / (df + 0.5))


def phrase_specificities(
    index: LexicalIndex, phrases: Sequence[str], prior_docs: float = 0.0
) -> list[float]:
    """Per phrase: the largest idf among its words divided by the idf of a word only one
    document holds, both with the prior of :func:`idf_with_prior` (document frequencies from
    the keyword index, so over the adapters' full text; one look-up for all phrases).

    A word no document contains counts as most specific (1.0): the lexical score cannot see it,
    but the dense one may still know what it means. "a", "of", "the" … do not count (a library
    without the word "a" must not make "a cat" most specific).
    """
    words = [[w for w in tokenize(p) if w not in STOPWORDS] for p in phrases]
    df = index.doc_freqs([w for ws in words for w in ws])
    n = index.n_docs
    top = idf_with_prior(1, n, prior_docs)
    return [
        min(1.0, max(idf_with_prior(df[w], n, prior_docs) if w in df else top for w in ws) / top)
        if ws
        else 0.0
        for ws in words
    ]


def phrase_specificity(index: LexicalIndex, phrase: str, prior_docs: float = 0.0) -> float:
    """:func:`phrase_specificities` of one phrase."""
    return phrase_specificities(index, [phrase], prior_docs)[0]


def dense_scores(
    sims: np.ndarray, prompt_share: float, phrase_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(dense score, bound phrase row) per adapter from ``sims`` (1 + n_phrases, n_adapters).

    Row 0 is the whole prompt, the other rows are phrases, weighted by ``phrase_weights``
    (default 1) for the score. The bound phrase is the most similar one *unweighted* (a
    "blonde hair" adapter serves "blonde hair", however common that phrase is); with no phrase
    the prompt row is used alone and the bound phrase is -1.
    """
    prompt = sims[0]
    if sims.shape[0] == 1:
        return prompt.copy(), np.full(prompt.shape, -1, dtype=np.int64)
    phrases = sims[1:]
    if phrase_weights is not None:
        weighted = phrases * np.asarray(phrase_weights, dtype=np.float32)[:, None]
    else:
        weighted = phrases
    dense = prompt_share * prompt + (1.0 - prompt_share) * weighted.max(axis=0)
    return dense.astype(np.float32), np.argmax(phrases, axis=0)


def hybrid_scores(dense: np.ndarray, lexical: np.ndarray, lexical_share: float) -> np.ndarray:
    """Convex mix of a dense score and an already squashed lexical score."""
    return ((1.0 - lexical_share) * dense + lexical_share * lexical).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (ties keep the lower index first)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]
