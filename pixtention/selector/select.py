"""``select(prompt, library)``: the adapters a prompt needs, each bound to the phrase it serves.

One batched embedding call (whole prompt + every phrase), clusters first (each query row's
nearest clusters, within a budget of adapters, see :mod:`pixtention.selector.probe`), exact
scores of the adapters inside them plus the lexical top hits (SQLite FTS5 bm25() over each
adapter's full text, :mod:`pixtention.selector.lexical`),
and a hybrid score on an absolute scale (:class:`~pixtention.selector.retrieval.Scoring`); then
the hard filters (base-model family, excludes, explicit tags), the abstention threshold, the
per-phrase cap and top-K. See design §5.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from pixtention.curator.kinds import kind_of
from pixtention.curator.records import AdapterRecord
from pixtention.library.base_model import parse_hint
from pixtention.library.info import BASE_FAMILIES
from pixtention.selector import binding, retrieval
from pixtention.selector.candidates import (  # noqa: F401 (lexical_index is public here)
    Scored,
    Search,
    common_words,
    lexical_index,
)
from pixtention.selector.phrases import is_boilerplate
from pixtention.selector.picks import Alternate, Evidence, FieldMatch, Pick, Suggestion
from pixtention.selector.probe import DEFAULT_BUDGET
from pixtention.selector.prompt import STOPWORDS, ParsedPrompt, Phrase, PromptTag, parse_prompt
from pixtention.selector.query import Query
from pixtention.selector.triggers import choose_triggers, choose_weight, words
from pixtention.selector.worker import query_thread

log = logging.getLogger("pixtention.selector")

MODES = ("auto", "regionalise", "both", "suggest")
DEFAULT_CLUSTERS = 12
# A document that plainly names its phrase scores about 0.45–0.65, one about something else
# 0.05–0.3 (see Scoring), in a library of three adapters as in one of ten thousand; the WebUI's
# default is the same.
DEFAULT_THRESHOLD = 0.35
DEFAULT_SCORING = retrieval.Scoring()
MAX_EVIDENCE_TERMS = 8
MAX_ALTERNATES = 3  # next ranked adapters shown per taken phrase
# A document that plainly names its phrase (Scoring's scale): such an adapter may fill K as an
# alternate, and a style or a thing is picked on any phrase it scores this high on.
PLAIN_SCORE = 0.45
# Below this a document is about something else (Scoring's scale): not worth suggesting.
RELEVANT_SCORE = 0.2
MAX_LOOKED = 96  # ranked candidates judged by kind beyond K (bounds the time it takes)
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
    query: Query,
    scored: Scored,
    row: int,
    *,
    source: str,
    phrase: Phrase | None,
    tag: PromptTag | None = None,
    alternates: tuple[Alternate, ...] = (),
) -> Pick:
    parsed = query.parsed
    kind = kind_of(record)
    phrase_text = phrase.text if phrase else ""
    if tag is not None:
        weight, weight_source, triggers = tag.weight, "prompt", ()
    else:
        weight, weight_source = choose_weight(record.preferred_weight, record.weight_source)
        triggers = choose_triggers(record.triggers, parsed.prompt, phrase_text, record.title)
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
        concept_kind=kind,
        scope=binding.scope_of(kind, from_tag=tag is not None),
        alternates=alternates,
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


@query_thread
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
    budget: int = DEFAULT_BUDGET,
) -> list[Pick]:
    """The adapters ``prompt`` needs from ``library``, best first within each source.

    Returns the user's own ``<lora:…>`` tags as picks (modes "regionalise" and "both", with
    their written weights), then ``pins`` (names or hashes, always kept when compatible), then
    automatic picks (modes "auto", "both" and "suggest") until ``k`` pins + automatic picks.
    Clusters are probed nearest first for each query row in turn, at least ``clusters`` of
    them and more while the adapters scored stay within ``budget`` (``clusters=None``: score
    every adapter);
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
    want_auto = (
        mode in ("auto", "both", "suggest")
        and k > 0
        and any(not is_boilerplate(p.text) for p in parsed.phrases)
    )
    if not (want_auto or pinned or (user and mode in ("regionalise", "both"))):
        return []

    search = Search.start(parsed, library, scoring, clusters, budget, family)
    query = search.query
    picks: list[Pick] = []
    taken: set[int] = {r.id for _, r in user}  # explicit tags are never auto-picked again

    fixed: list[tuple[AdapterRecord, str, PromptTag | None]] = []
    if mode in ("regionalise", "both"):
        fixed += [(r, "user", t) for t, r in user]
    # A pinned adapter the prompt also tags takes the tag's weight and phrase (and PixTention
    # takes the tag over from the built-in Lora, in every mode).
    tag_of = {r.id: t for t, r in user}
    fixed += [(r, "pinned", tag_of.get(r.id)) for r in pinned]
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
        scored = search.score(np.array([record.id]))
        phrase = _bound_phrase(query, parsed, scored, tag, library)
        picks.append(_make_pick(record, query, scored, 0, source=source, phrase=phrase, tag=tag))
        placed.add(record.id)
    taken |= placed

    n_auto = k - sum(p.source == "pinned" for p in picks)
    if want_auto and n_auto > 0:
        picks += _auto_picks(search, threshold, per_phrase, n_auto, taken | excluded)
    return picks


@query_thread
def rank(
    prompt: str,
    library,
    k: int = 10,
    clusters: int | None = DEFAULT_CLUSTERS,
    base_model: str | None = None,
    exclude: Sequence[str] = (),
    scoring: retrieval.Scoring = DEFAULT_SCORING,
    budget: int = DEFAULT_BUDGET,
    floor: float = RELEVANT_SCORE,
) -> list[Suggestion]:
    """The ``k`` adapters most relevant to ``prompt``, best first: the suggestions a user
    browses and pins from (UI, API, ``suggest --ranked``), not what is applied.

    Same scores, candidates and hard filters as :func:`select` (base-model family, excludes,
    the prompt's own ``<lora:…>`` tags), but no abstention threshold and no binding by kind: a
    character the prompt describes without naming it ranks here, while ``select`` applies it
    only when named. An adult-tagged adapter ranks only for an adult prompt or one naming it
    (by any of its name words: ``binding.adult_unasked``).
    Scores below ``floor`` are about something else (see ``Scoring``) and are not listed.
    """
    if k < 0:
        raise ValueError(f"k must be ≥ 0 (got k={k})")
    family = base_family(base_model) if base_model else None
    parsed = parse_prompt(prompt)
    if not len(library) or not k or all(is_boilerplate(p.text) for p in parsed.phrases):
        return []
    tagged = {r.id for t in parsed.network_tags if (r := library.find(t.name)) is not None}
    skip = tagged | {r.id for r in _resolve(library, exclude, "excluded adapter")}
    search = Search.start(parsed, library, scoring, clusters, budget, family)
    query, scored = search.query, search.scored_candidates(skip)
    if scored is None:
        return []
    out: list[Suggestion] = []
    for row in np.argsort(-scored.score, kind="stable").tolist():
        if len(out) >= k or scored.score[row] < floor:
            break
        record = library.records[int(scored.ids[row])]
        if binding.adult_unasked(record, parsed.prompt, applied=False):
            continue
        at = int(scored.phrase[row])
        phrase = query.phrases[at].text if at >= 0 else ""
        out.append(Suggestion(record.name, float(scored.score[row]), kind_of(record), phrase))
    return out


def _bound_phrase(
    query: Query, parsed: ParsedPrompt, scored: Scored, tag: PromptTag | None, library
) -> Phrase | None:
    """A user tag's phrase is the one it follows; a pinned character's the one naming it;
    otherwise the most similar phrase."""
    if tag is not None and tag.follows is not None:
        return parsed.phrases[tag.follows]
    record, row = library.records[int(scored.ids[0])], int(scored.phrase[0])
    if kind_of(record) == "character":  # a pin is kept even where no phrase names it
        named = binding.name_row(record, [p.text for p in query.phrases], row)
        row = row if named is None else named
    return query.phrases[row] if row >= 0 else None


def _auto_picks(
    search: Search, threshold: float, per_phrase: int, n: int, skip: set[int]
) -> list[Pick]:
    scored = search.scored_candidates(skip)
    if scored is None:
        return []
    query, library = search.query, search.library
    records = library.records
    texts, prompt = [p.text for p in query.phrases], query.parsed.prompt
    judge = threshold > 0  # 0 or below: a plain ranking, no abstention and no kind rules
    common = common_words(library, prompt)
    per: dict[int, int] = {}
    claimed: list[frozenset[str]] = []  # names the chosen characters answer to
    chosen: list[tuple[int, int]] = []  # (scored row, phrase row)
    spare: list[tuple[int, int]] = []  # accepted, but its phrase, its person or K was taken
    repeats: list[int] = []  # spare rows about a picked character: alternates, never fillers
    ranked = np.argsort(-scored.score, kind="stable")[: n + MAX_LOOKED]
    for row in ranked.tolist():
        if scored.score[row] < threshold:
            break
        if len(chosen) >= n and len(spare) >= MAX_ALTERNATES * n:
            break
        record = records[int(scored.ids[row])]
        plain = bool(scored.score[row] >= PLAIN_SCORE)
        phrase_row = int(scored.phrase[row])
        if judge:
            match = float(scored.phrase_score[row])
            phrase_row = binding.bind(record, prompt, texts, phrase_row, plain, match, common)
        if phrase_row is None:
            continue  # its kind forbids it here: neither a pick nor an alternate
        claim = binding.claims(record, prompt)
        same_person = judge and bool(claim) and any(claim <= c for c in claimed)
        if not same_person and len(chosen) < n and per.get(phrase_row, 0) < per_phrase:
            per[phrase_row] = per.get(phrase_row, 0) + 1
            chosen.append((row, phrase_row))
            claimed += [claim] if claim and kind_of(record) == "character" else []
        else:
            spare.append((row, phrase_row))
            repeats += [row] if same_person else []
    # Other phrases had nothing: the next ranked adapters of taken phrases fill K, if their
    # documents plainly name the phrase and they add another kind of help (binding.may_fill).
    taken = {(pr, kind_of(records[int(scored.ids[r])])) for r, pr in chosen}
    for candidate in list(spare):
        row, phrase_row = candidate
        kind = kind_of(records[int(scored.ids[row])])
        if not judge or len(chosen) >= n or scored.score[row] < PLAIN_SCORE:
            break
        if row not in repeats and binding.may_fill(kind, phrase_row, taken):
            chosen.append(candidate)
            spare.remove(candidate)
            taken.add((phrase_row, kind))
    chosen.sort(key=lambda c: -scored.score[c[0]])
    picks: list[Pick] = []
    for row, phrase_row in chosen:
        others = [records[int(scored.ids[r])] for r, pr in spare if pr == phrase_row]
        scores = [float(scored.score[r]) for r, pr in spare if pr == phrase_row]
        alternates = tuple(
            Alternate(other.name, score, kind_of(other))
            for other, score in zip(others[:MAX_ALTERNATES], scores)
        )
        record = records[int(scored.ids[row])]
        phrase = query.phrases[phrase_row] if phrase_row >= 0 else None
        picks.append(
            _make_pick(
                record, query, scored, row, source="auto", phrase=phrase, alternates=alternates
            )
        )
    return picks
