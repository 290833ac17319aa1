"""Scoring adapters against a prompt: dense cosine, lexical BM25 and their hybrid.

Pure functions on numpy arrays (plus a small BM25 index), so each scoring rule can be tested
against an independent reference and compared side by side in ``bench/selector.py``.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pixtention.selector.phrases import STOPWORDS

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, as BM25 and the evidence matcher count them."""
    return [t.lower() for t in _TOKEN.findall(text)]


class BM25:
    """Okapi BM25 (Robertson & Zaragoza 2009, idf with +1 inside the log so it stays ≥ 0).

    Postings are numpy arrays per term holding the precomputed term weight of each document,
    so scoring a query is one vector add per query term, whatever the library size.
    """

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.n_docs = len(documents)
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        doc_ids: list[int] = []
        freqs: list[int] = []
        lengths = np.zeros(self.n_docs, dtype=np.float32)
        for doc, text in enumerate(documents):
            counts = Counter(tokenize(text))
            lengths[doc] = sum(counts.values())
            for term, tf in counts.items():
                term_ids.append(vocab.setdefault(term, len(vocab)))
                doc_ids.append(doc)
                freqs.append(tf)
        self.vocab = vocab
        terms = np.asarray(term_ids, dtype=np.int64)
        order = np.argsort(terms, kind="stable")
        self._docs = np.asarray(doc_ids, dtype=np.int32)[order]
        tf = np.asarray(freqs, dtype=np.float32)[order]
        avg = float(lengths.mean()) if self.n_docs and lengths.mean() > 0 else 1.0
        norm = k1 * (1.0 - b + b * lengths[self._docs] / avg)
        self._weights = (tf * (k1 + 1.0) / (tf + norm)).astype(np.float32)
        df = np.bincount(terms, minlength=len(vocab)) if len(vocab) else np.zeros(0, np.int64)
        self.df = df.astype(np.int64)  # documents holding each term
        self._offsets = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
        self.idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        self._prior_idf: dict[float, np.ndarray] = {}

    def idf_with_prior(self, prior_docs: float) -> np.ndarray:
        """Each term's idf as if the library held ``prior_docs`` more documents without it.

        Three documents cannot show that a word is common, ten thousand can: the prior keeps a
        small library from halving a word's weight because two of its three documents say it,
        and leaves a large one as it is.
        """
        if prior_docs <= 0:
            return self.idf
        cached = self._prior_idf.get(prior_docs)
        if cached is None:
            n = self.n_docs + prior_docs
            cached = np.log1p((n - self.df + 0.5) / (self.df + 0.5)).astype(np.float32)
            self._prior_idf[prior_docs] = cached
        return cached

    def rare_idf(self, prior_docs: float = 0.0) -> float:
        """The idf of a term that one document holds (with the same prior)."""
        return float(np.log1p(max(self.n_docs + max(prior_docs, 0.0) - 0.5, 0.5) / 1.5))

    def scores(self, query: str | Iterable[str], idf: np.ndarray | None = None) -> np.ndarray:
        """BM25 of every document for the query's distinct terms → (n_docs,) float32
        (``idf``: per-term weights to use instead of :attr:`idf`)."""
        idf = self.idf if idf is None else idf
        terms = set(tokenize(query) if isinstance(query, str) else query)
        out = np.zeros(self.n_docs, dtype=np.float32)
        for term in terms:
            t = self.vocab.get(term)
            if t is None:
                continue
            a, b = self._offsets[t], self._offsets[t + 1]
            out[self._docs[a:b]] += idf[t] * self._weights[a:b]
        return out


def matched_words(bm25: BM25, terms: Iterable[str], prior_docs: float = 0.0) -> np.ndarray:
    """BM25 of every document in words matched: one word that only it holds, once, at average
    length counts 1 (BM25 divided by that word's idf, both with the prior of
    :meth:`BM25.idf_with_prior`).

    Raw BM25 grows with log(library size), so on one fixed scale the same match counted about
    four times less in a library of ten adapters than in one of ten thousand.
    """
    return bm25.scores(terms, bm25.idf_with_prior(prior_docs)) / bm25.rare_idf(prior_docs)


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
    the prompt's words the document holds (a word that only it holds, once, counts 1; at the
    default half one such word gives 0.3, two 0.47, three 0.57), ``dense`` is mostly the cosine
    of the document to the phrase it serves. A document that plainly names its phrase scores
    about 0.45–0.65, one about something else 0.05–0.3; one that shares a single word with the
    phrase ("a red bicycle" and a red dragon) 0.3–0.4. Idf is read as if the library held
    ``prior_docs`` more adapters without the word (:meth:`BM25.idf_with_prior`). The old
    lexical part, ``squash(BM25, 20)``, grew with the library's size: the same three documents
    scored 0.29–0.38 alone and 0.43–0.49 beside thirty unrelated ones.

    w_p = (specificity of phrase p) ** phrase_idf_power, see :func:`phrase_specificity`: generic
    phrases ("masterpiece", "1girl") match generic adapters everywhere, so they must not outvote
    the one rare phrase that names a concept.
    """

    prompt_share: float = 0.25
    phrase_idf_power: float = 1.0
    lexical_share: float = 0.5
    lexical_half: float = 2.3  # matched words (BM25 units) at which lexical is 0.5
    prior_docs: float = 100.0


def phrase_specificity(bm25: BM25, phrase: str, prior_docs: float = 0.0) -> float:
    """Largest idf among the phrase's words divided by the idf of a word only one document
    holds, both with the prior of :meth:`BM25.idf_with_prior`.

    A word no document contains counts as most specific (1.0): the lexical score cannot see it,
    but the dense one may still know what it means. "a", "of", "the" … do not count (a library
    without the word "a" must not make "a cat" most specific).
    """
    top = bm25.rare_idf(prior_docs)
    if top <= 0:
        return 1.0
    idf = bm25.idf_with_prior(prior_docs)
    words = [w for w in tokenize(phrase) if w not in STOPWORDS]
    values = [float(idf[t]) if t is not None else top for t in map(bm25.vocab.get, words)]
    return min(1.0, float(max(values) / top)) if values else 0.0


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
