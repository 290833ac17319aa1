"""``select(prompt, library)``: the adapters a prompt needs, each bound to the phrase it serves.

One batched embedding call (whole prompt + every phrase), one faiss search (clusters first, then
adapters inside the ``clusters`` nearest clusters of each query), BM25 over the same documents,
and a hybrid score; then the hard filters (base-model family, excludes, explicit tags), the
abstention threshold, the per-phrase cap and top-K. See design §5.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pixtention.curator.embedder import EmbedderError
from pixtention.curator.records import AdapterRecord
from pixtention.library.base_model import parse_hint
from pixtention.library.info import BASE_FAMILIES
from pixtention.selector import retrieval
from pixtention.selector.picks import Evidence, FieldMatch, Pick
from pixtention.selector.prompt import STOPWORDS, ParsedPrompt, Phrase, PromptTag, parse_prompt
from pixtention.selector.triggers import choose_triggers, choose_weight, words

log = logging.getLogger("pixtention.selector")

MODES = ("auto", "regionalise", "both", "suggest")
DEFAULT_CLUSTERS = 12
DEFAULT_THRESHOLD = 0.2
DEFAULT_SCORING = retrieval.Scoring()
MAX_PHRASES = 64  # phrases embedded per prompt; a 5,000-token prompt is cut here, not refused
CANDIDATES_PER_QUERY = 128  # dense neighbours kept per query vector (prompt and each phrase)
MAX_FAMILY_SCAN = 20_000  # a family this small is scored whole when its clusters are missed
QUERY_CACHE_SIZE = 4096  # query texts whose vectors are kept (≈ 6 MB for 384-d vectors)
MAX_EVIDENCE_TERMS = 8
_LORA_KINDS = ("lora", "lyco")
# Words too common to count as evidence that a document field matched.
_EVIDENCE_STOPWORDS = STOPWORDS | {"in", "and", "with", "lora", "style"}


def base_family(base_model: str) -> str:
    """The family of a base-model name: "sd1", "sdxl", "pony" → "sdxl", "SD 1.5" → "sd1" …"""
    name = base_model.strip().lower()
    if name in BASE_FAMILIES:
        return name
    family, _ = parse_hint(name)
    if family is None:
        raise ValueError(
            f"unknown base model {base_model!r}; use one of {', '.join(BASE_FAMILIES[:-1])} "
            "or a variant such as pony, illustrious, noobai"
        )
    return family


@dataclass(frozen=True)
class _Query:
    """The prompt as queried: its parse, the unique phrase texts and their vectors."""

    parsed: ParsedPrompt
    phrases: tuple[Phrase, ...]  # first occurrence of each distinct phrase text, ≤ MAX_PHRASES
    vectors: np.ndarray  # row 0: whole prompt; row 1 + i: phrases[i]
    weights: np.ndarray  # phrase specificity ** Scoring.phrase_idf_power, one per phrase


@dataclass(frozen=True)
class _LibraryStats:
    """What select() derives from a library once: BM25 over its documents, and each row's
    base-model family (for the filter's fallback)."""

    size: int
    bm25: retrieval.BM25
    families: np.ndarray  # (N,) str


_STATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STATS_LOCK = threading.Lock()


def _stats(library) -> _LibraryStats:
    with _STATS_LOCK:
        cached = _STATS.get(library)
        if cached is None or cached.size != len(library):
            records = library.records
            cached = _LibraryStats(
                len(library),
                retrieval.BM25([r.document for r in records]),
                np.array([r.base_family for r in records]),
            )
            _STATS[library] = cached
        return cached


def lexical_index(library) -> retrieval.BM25:
    """The library's BM25 index over its documents, built once per library object."""
    return _stats(library).bm25


class _VectorCache:
    """Recent query texts → vectors, per embedder: a prompt typed a word at a time keeps most
    of its phrases, and prompts share their quality tags, so most phrases embed only once."""

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


QUERY_CACHE = _VectorCache(QUERY_CACHE_SIZE)


def _embed_cached(library, texts: list[str]) -> np.ndarray:
    """Vectors of ``texts``; the ones not cached are embedded in one batched call."""
    model = library.embedder_id
    found = {t: QUERY_CACHE.get((model, t)) for t in dict.fromkeys(texts)}
    missing = [t for t, v in found.items() if v is None]
    if missing:
        for text, vector in zip(missing, np.asarray(library.embed(missing), dtype=np.float32)):
            found[text] = vector
            QUERY_CACHE.put((model, text), vector)
    return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


def _embed_query(
    parsed: ParsedPrompt, library, bm25: retrieval.BM25, scoring: retrieval.Scoring
) -> _Query:
    seen: set[str] = set()
    phrases: list[Phrase] = []
    for phrase in parsed.phrases:
        key = phrase.text.lower()
        if key not in seen:
            seen.add(key)
            phrases.append(phrase)
        if len(phrases) >= MAX_PHRASES:
            break
    texts = [parsed.text or parsed.stripped.strip() or "."] + [p.text for p in phrases]
    vectors = _embed_cached(library, texts)
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
    return _Query(parsed, tuple(phrases), vectors, weights)


@dataclass(frozen=True)
class _Scored:
    """Scores of candidate adapters (parallel arrays) against one query."""

    ids: np.ndarray
    score: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    phrase: np.ndarray  # index into _Query.phrases, -1 when the prompt has no phrase
    phrase_score: np.ndarray


def _score(
    query: _Query, library, ids: np.ndarray, lexical_all: np.ndarray | None, scoring
) -> _Scored:
    sims = retrieval.cosine(query.vectors, library.vectors[ids])
    dense, best = retrieval.dense_scores(sims, scoring.prompt_share, query.weights)
    phrase_score = sims[1 + best, np.arange(len(ids))] if len(query.phrases) else np.zeros(len(ids))
    lexical = (
        retrieval.squash(lexical_all[ids], scoring.bm25_half)
        if lexical_all is not None
        else np.zeros(len(ids), np.float32)
    )
    score = retrieval.hybrid_scores(dense, lexical, scoring.lexical_share)
    return _Scored(ids, score, dense, lexical, best, phrase_score)


def _candidates(
    query: _Query, library, clusters: int | None, lexical_all: np.ndarray | None, k: int
) -> np.ndarray:
    """Adapter ids worth scoring: the dense neighbours inside the probed clusters, plus the
    lexical top hits when the score has a lexical part; every adapter when ``clusters`` is None.
    """
    n = len(library)
    if clusters is None:
        return np.arange(n)
    per_query = max(CANDIDATES_PER_QUERY, 4 * k)
    _, ids = library.search(query.vectors, per_query, clusters)
    found = [ids[ids >= 0].ravel()]
    if lexical_all is not None:
        found.append(retrieval.top_k(lexical_all, per_query))
    return np.unique(np.concatenate(found)).astype(np.int64)


def _matched_fields(record: AdapterRecord, text: str) -> tuple[FieldMatch, ...]:
    wanted = set(words(text)) - _EVIDENCE_STOPWORDS
    matches = []
    for field, value in record.fields.items():
        terms = list(dict.fromkeys(w for w in words(value) if w in wanted))
        if terms:
            matches.append(FieldMatch(field, tuple(terms[:MAX_EVIDENCE_TERMS])))
    return tuple(matches)


def _make_pick(
    record: AdapterRecord,
    query: _Query,
    scored: _Scored,
    row: int,
    *,
    source: str,
    phrase: Phrase | None,
    tag: PromptTag | None = None,
) -> Pick:
    parsed = query.parsed
    phrase_text = phrase.text if phrase else ""
    if tag is not None:
        weight, weight_source, triggers = tag.weight, "prompt", ()
    else:
        weight, weight_source = choose_weight(record.preferred_weight, record.weight_source)
        triggers = choose_triggers(record.triggers, parsed.text, phrase_text, record.title)
    score = float(scored.score[row])
    evidence = Evidence(
        score=score,
        dense=float(scored.dense[row]),
        lexical=float(scored.lexical[row]),
        phrase=phrase_text,
        phrase_score=float(scored.phrase_score[row]),
        cluster_label=record.cluster_label,
        matched=_matched_fields(record, phrase_text + " " + parsed.text),
    )
    return Pick(
        name=record.name,
        path=record.path,
        fingerprint=record.fingerprint,
        short_hash=record.short_hash,
        score=score,
        phrase=phrase_text,
        phrase_span=phrase.span if phrase else None,
        stripped_span=phrase.stripped_span if phrase else None,
        weight=float(weight),
        weight_source=weight_source,
        triggers=triggers,
        cluster_label=record.cluster_label,
        evidence=evidence,
        source=source,
        base_family=record.base_family,
    )


def _resolve(library, names: Iterable[str], what: str) -> list[AdapterRecord]:
    records = []
    for name in names:
        record = library.find(name)
        if record is None:
            log.warning("%s %r is not in the library; ignored", what, name)
        else:
            records.append(record)
    return records


def _compatible(record: AdapterRecord, family: str | None) -> bool:
    return family is None or record.base_family in (family, "unknown")


def select(
    prompt: str,
    library,
    k: int = 3,
    clusters: int | None = DEFAULT_CLUSTERS,
    base_model: str | None = None,
    per_phrase: int = 1,
    threshold: float = DEFAULT_THRESHOLD,
    exclude: Sequence[str] = (),
    pins: Sequence[str] = (),
    mode: str = "auto",
    scoring: retrieval.Scoring = DEFAULT_SCORING,
) -> list[Pick]:
    """The adapters ``prompt`` needs from ``library``, best first within each source.

    Returns the user's own ``<lora:…>`` tags as picks (modes "regionalise" and "both", with
    their written weights), then ``pins`` (names or hashes, always kept when compatible), then
    automatic picks (modes "auto", "both" and "suggest") until ``k`` pins + automatic picks.
    ``clusters`` is how many clusters each query probes (None: score every adapter);
    ``base_model`` (e.g. "sd1", "sdxl", "pony") hides adapters of another family; adapters
    scoring below ``threshold`` are never picked automatically, so an unrelated prompt gets none.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if k < 0 or per_phrase < 1:
        raise ValueError(f"k must be ≥ 0 and per_phrase ≥ 1 (got k={k}, per_phrase={per_phrase})")
    family = base_family(base_model) if base_model else None
    parsed = parse_prompt(prompt)
    if len(library) == 0:
        return []
    user_tags = [t for t in parsed.network_tags if t.kind in _LORA_KINDS]
    user = [(t, r) for t in user_tags if (r := library.find(t.name)) is not None]
    if mode in ("regionalise", "both") and len(user) < len(user_tags):
        known = {t.name for t, _ in user}
        for tag in user_tags:
            if tag.name not in known:
                log.warning("%s is not in the library; it stays a global LoRA", tag.text)
    pinned = _resolve(library, pins, "pinned adapter")
    excluded = {r.id for r in _resolve(library, exclude, "excluded adapter")}
    want_auto = mode in ("auto", "both", "suggest") and k > 0 and bool(parsed.phrases)
    if not (want_auto or pinned or (user and mode in ("regionalise", "both"))):
        return []

    bm25 = lexical_index(library)
    query = _embed_query(parsed, library, bm25, scoring)
    lexical_all = bm25.scores(parsed.text) if scoring.lexical_share > 0 else None
    picks: list[Pick] = []
    taken: set[int] = {r.id for _, r in user}  # explicit tags are never auto-picked again

    fixed: list[tuple[AdapterRecord, str, PromptTag | None]] = []
    if mode in ("regionalise", "both"):
        fixed += [(r, "user", t) for t, r in user]
    fixed += [(r, "pinned", None) for r in pinned if r.id not in taken]  # a tag governs its pin
    placed: set[int] = set()
    for record, source, tag in fixed:
        if record.id in placed:
            continue  # the same adapter tagged or pinned twice: the first one counts
        if not _compatible(record, family):
            log.warning(
                "%s is a %s adapter; the loaded model is %s, so it is not used",
                record.name,
                record.base_family,
                family,
            )
            continue
        scored = _score(query, library, np.array([record.id]), lexical_all, scoring)
        phrase = _bound_phrase(query, parsed, scored, tag)
        picks.append(_make_pick(record, query, scored, 0, source=source, phrase=phrase, tag=tag))
        placed.add(record.id)
    taken |= placed

    n_auto = k - sum(p.source == "pinned" for p in picks)
    if want_auto and n_auto > 0:
        picks += _auto_picks(
            query, library, clusters, lexical_all, scoring, family, threshold, per_phrase,
            n_auto, taken | excluded,
        )  # fmt: skip
    return picks


def _bound_phrase(
    query: _Query, parsed: ParsedPrompt, scored: _Scored, tag: PromptTag | None
) -> Phrase | None:
    """A user tag's phrase is the one it follows; otherwise the most similar phrase."""
    if tag is not None and tag.follows is not None:
        return parsed.phrases[tag.follows]
    row = int(scored.phrase[0])
    return query.phrases[row] if row >= 0 else None


def _auto_picks(
    query: _Query,
    library,
    clusters: int | None,
    lexical_all: np.ndarray | None,
    scoring: retrieval.Scoring,
    family: str | None,
    threshold: float,
    per_phrase: int,
    n: int,
    skip: set[int],
) -> list[Pick]:
    ids = _candidates(query, library, clusters, lexical_all, n)
    records = library.records
    keep = [i for i in ids.tolist() if i not in skip and _compatible(records[i], family)]
    if family is not None and clusters is not None and len(keep) < CANDIDATES_PER_QUERY:
        # The probed clusters hold few adapters of this family (a minority family, e.g. SD2
        # in an SD1 library): its adapters are few enough to score them all.
        families = _stats(library).families
        allowed = np.flatnonzero((families == family) | (families == "unknown"))
        if len(allowed) <= MAX_FAMILY_SCAN:
            keep = sorted(set(keep) | (set(allowed.tolist()) - skip))
    if not keep:
        return []
    scored = _score(query, library, np.asarray(keep, dtype=np.int64), lexical_all, scoring)
    per: dict[int, int] = {}
    picks: list[Pick] = []
    for row in np.argsort(-scored.score, kind="stable").tolist():
        if scored.score[row] < threshold or len(picks) >= n:
            break
        phrase_row = int(scored.phrase[row])
        if per.get(phrase_row, 0) >= per_phrase:
            continue
        per[phrase_row] = per.get(phrase_row, 0) + 1
        record = records[int(scored.ids[row])]
        phrase = query.phrases[phrase_row] if phrase_row >= 0 else None
        picks.append(_make_pick(record, query, scored, row, source="auto", phrase=phrase))
    return picks
