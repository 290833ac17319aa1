"""Trigger words and weights for a pick, and rewriting the prompt with them.

An adapter usually lists many trained words: its name or activation token, then generic tags
("1girl", "blonde hair") that any prompt may already hold. Inserting all of them bloats the
prompt and shifts every token position, so a pick gets the *smallest* set that names its
concept: one trigger item among those that share a word with the adapter's title or hold an
activation token (``sks``-like), preferring the activation token, then the item closest to the
bound phrase — and none at all when the prompt
already names the concept (inserting "plate" next to "knight in armor" says nothing new). Words
the prompt already has are never inserted again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pixtention.curator.documents import is_gibberish_word
from pixtention.selector.picks import Pick

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SYNTAX = re.compile(r"[()\[\]{}<>]|:\s*[-+]?(?:\d+\.?\d*|\.\d+)")
# Words that may repeat without saying anything twice.
_FREE_WORDS = frozenset(
    ["a", "an", "the", "of", "on", "at", "to", "for", "by", "in", "and", "with", "from", "as"]
)
DEFAULT_WEIGHT = 1.0


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters and digits of any script)."""
    return [w.lower() for w in _WORD.findall(text)]


def trigger_items(triggers: Iterable[str]) -> list[str]:
    """Trigger strings split at commas, emphasis syntax dropped, de-duplicated in order."""
    items: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for trigger in triggers:
        for part in trigger.split(","):
            item = " ".join(_SYNTAX.sub(" ", part).split())
            key = tuple(words(item))
            if key and key not in seen:
                seen.add(key)
                items.append(item)
    return items


def _already_named(item: str, present: set[str]) -> bool:
    """The prompt names ``item`` when it has its activation tokens and most of its words."""
    item_words = [w for w in words(item) if w not in _FREE_WORDS] or words(item)
    if any(is_gibberish_word(w) and w not in present for w in item_words):
        return False
    return 2 * sum(w in present for w in item_words) > len(item_words)


def choose_triggers(
    triggers: Sequence[str], prompt_text: str, phrase: str = "", title: str = ""
) -> tuple[str, ...]:
    """The smallest trigger set naming the adapter's concept that the prompt does not yet say.

    Returns () when the adapter has no triggers or the prompt already names the concept (has
    a naming item's activation tokens and most of its words).
    """
    items = trigger_items(triggers)
    if not items:
        return ()
    title_words = set(words(title)) - _FREE_WORDS
    naming = [
        item
        for item in items
        if title_words.intersection(words(item)) or any(map(is_gibberish_word, words(item)))
    ] or items[:1]
    present = set(words(prompt_text))
    if any(_already_named(item, present) for item in naming):
        return ()
    phrase_words = set(words(phrase))
    best = max(
        naming,
        key=lambda item: (
            any(map(is_gibberish_word, words(item))),  # the token training gave meaning to
            len(phrase_words.intersection(words(item))),  # the outfit/variant the phrase names
        ),
    )
    if not present.intersection(words(best)):
        return (best,)
    missing = [
        w for w in _WORD.findall(best) if w.lower() in _FREE_WORDS or w.lower() not in present
    ]
    while missing and missing[0].lower() in _FREE_WORDS:
        missing.pop(0)
    while missing and missing[-1].lower() in _FREE_WORDS:
        missing.pop()
    return (" ".join(missing),) if missing else ()


def choose_weight(
    preferred: float | None, source: str | None, default: float = DEFAULT_WEIGHT
) -> tuple[float, str]:
    """(weight, where it came from): the adapter's metadata hint if usable, else ``default``.

    The curator already merged the hints by precedence (user metadata > civitai/modelspec);
    A1111 treats a preferred weight of 0 as "unset", and so do we.
    """
    if preferred is not None and preferred == preferred and preferred != 0:
        return float(preferred), source or "metadata"
    return float(default), "default"


@dataclass(frozen=True)
class Rewrite:
    """The prompt with triggers inserted, and where each pick's phrase + triggers now sit."""

    prompt: str
    spans: tuple[tuple[int, int] | None, ...]  # one per pick, in the rewritten prompt


def rewrite_prompt(prompt: str, picks: Sequence[Pick], *, strip_user_tags: bool = False) -> Rewrite:
    """Insert each pick's triggers right after its phrase (", trigger"), left to right.

    ``prompt`` is the prompt the picks were selected for (their ``phrase_span`` indexes it).

    Triggers of a pick without a phrase go at the end. With ``strip_user_tags`` the
    ``<lora:…>`` tags of ``source == "user"`` picks are removed, so the WebUI's own Lora
    extension does not also apply them globally.
    """
    from pixtention.selector.prompt import parse_prompt

    edits: list[tuple[int, int, str, int | None]] = []  # (start, end, replacement, pick index)
    for index, pick in enumerate(picks):
        if pick.triggers:
            at = pick.phrase_span[1] if pick.phrase_span else len(prompt)
            edits.append((at, at, ", " + ", ".join(pick.triggers), index))
    if strip_user_tags:
        user_names = {p.name for p in picks if p.source == "user"}
        for tag in parse_prompt(prompt).network_tags:
            if tag.name in user_names:
                edits.append((tag.span[0], tag.span[1], "", None))
    edits.sort(key=lambda e: (e[0], e[1]))
    out: list[str] = []
    shift_at: list[tuple[int, int]] = []  # (original position, shift after it)
    cursor = shift = 0
    inserted_end: dict[int, int] = {}
    for start, end, text, index in edits:
        out.append(prompt[cursor:start])
        out.append(text)
        cursor = max(cursor, end)
        shift += len(text) - (end - start)
        shift_at.append((end, shift))
        if index is not None:
            inserted_end[index] = end + shift
    out.append(prompt[cursor:])

    def moved(pos: int, *, at_end: bool = False) -> int:
        """Where ``pos`` went; text inserted right at an end position stays outside the span."""
        total = 0
        for edge, s in shift_at:
            if edge < pos or (edge == pos and not at_end):
                total = s
        return pos + total

    spans: list[tuple[int, int] | None] = []
    for index, pick in enumerate(picks):
        if pick.phrase_span is None:
            spans.append(None)
            continue
        start = moved(pick.phrase_span[0])
        end = inserted_end.get(index, moved(pick.phrase_span[1], at_end=True))
        spans.append((start, end))
    return Rewrite(prompt="".join(out), spans=tuple(spans))


def apply_picks(prompt: str, picks: Sequence[Pick], *, strip_user_tags: bool = False) -> str:
    """The prompt rewritten with each pick's triggers next to its phrase."""
    return rewrite_prompt(prompt, picks, strip_user_tags=strip_user_tags).prompt
