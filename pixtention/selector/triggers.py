"""Trigger words and weights for a pick, and rewriting the prompt with them.

An adapter usually lists many trained words: its name or activation token, then generic tags
("1girl", "blonde hair") that any prompt may already hold. Inserting all of them bloats the
prompt and shifts every token position, so a pick gets the *smallest* set that names its
concept: one trigger item among those that share a word with the adapter's title or hold an
activation token (``sks``-like), preferring the activation token, then the item closest to the
bound phrase — and none at all when the prompt already contains a naming item as a phrase.
An item is inserted whole or not at all: half an item ("plate" out of "plate knight") is not
what the adapter was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pixtention.curator.documents import is_gibberish_word
from pixtention.selector.picks import Pick

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SYNTAX = re.compile(r"[()\[\]{}<>]|:\s*[-+]?(?:\d+\.?\d*|\.\d+)")
_NETWORK_TAG = re.compile(r"<\w+:[^>]+>")
# Where one tag or clause of a prompt ends: an item never spans one of these.
_PIECE_END = re.compile(r"[,;|\n，、；。！？!?]|\.(?=\s|$)|\bBREAK\b|\bAND\b")
# Words that carry no concept on their own ("of" in "dragon of fire").
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


def prompt_pieces(prompt: str) -> list[tuple[str, ...]]:
    """The prompt's tags/clauses as word tuples, extra-network tags and emphasis removed."""
    text = _SYNTAX.sub(" ", _NETWORK_TAG.sub(" ", prompt))
    return [tuple(words(piece)) for piece in _PIECE_END.split(text)]


def contains_item(pieces: Sequence[tuple[str, ...]], item: str) -> bool:
    """Whether ``item``'s words appear together, in order, inside one piece of the prompt."""
    wanted = tuple(words(item))
    n = len(wanted)
    if not n:
        return False
    return any(piece[i : i + n] == wanted for piece in pieces for i in range(len(piece) - n + 1))


def choose_triggers(
    triggers: Sequence[str], prompt: str, phrase: str = "", title: str = ""
) -> tuple[str, ...]:
    """The trigger item naming the adapter's concept, unless the prompt already says it.

    ``prompt`` is the prompt as written (tags and emphasis are ignored). Returns () when the
    adapter has no triggers or the prompt contains a naming item as a phrase (case-insensitive),
    else one whole item.
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
    pieces = prompt_pieces(prompt)
    if any(contains_item(pieces, item) for item in naming):
        return ()
    phrase_words = set(words(phrase))
    best = max(
        naming,
        key=lambda item: (
            any(map(is_gibberish_word, words(item))),  # the token training gave meaning to
            len(phrase_words.intersection(words(item))),  # the outfit/variant the phrase names
        ),
    )
    return (best,)


MAX_METADATA_WEIGHT = 2.0  # a weight hint from a file or sidecar is clamped to ±this


def choose_weight(
    preferred: float | None, source: str | None, default: float = DEFAULT_WEIGHT
) -> tuple[float, str]:
    """(weight, where it came from): the adapter's metadata hint if usable, else ``default``.

    The curator already merged the hints by precedence (user metadata > civitai/modelspec);
    A1111 treats a preferred weight of 0 as "unset", and so do we.
    """
    if preferred is not None and preferred == preferred and preferred != 0:
        weight = min(max(float(preferred), -MAX_METADATA_WEIGHT), MAX_METADATA_WEIGHT)
        where = source or "metadata"
        if weight != preferred:  # 1e308 in a sidecar must not burn the image: say it was cut
            where += f", clamped from {float(preferred):g}"
        return weight, where
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
    ``<lora:…>`` tags of the picks that came from a tag (the user's own, or a pinned adapter
    the prompt also tags) are removed, so the WebUI's own Lora extension does not also apply
    them globally.
    """
    from pixtention.selector.prompt import parse_prompt

    edits: list[tuple[int, int, str, int | None]] = []  # (start, end, replacement, pick index)
    for index, pick in enumerate(picks):
        if pick.triggers:
            at = pick.phrase_span[1] if pick.phrase_span else len(prompt)
            edits.append((at, at, ", " + ", ".join(pick.triggers), index))
    if strip_user_tags:
        user_names = {p.name for p in picks if p.source == "user" or p.weight_source == "prompt"}
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
