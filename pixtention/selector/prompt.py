"""A1111 prompt syntax → concept phrases, each with its character spans.

The WebUI first strips every ``<kind:args>`` extra-network tag (``modules/extra_networks.py``),
then splits sub-prompts on ``AND``, expands prompt editing ``[a:b:n]`` / alternation ``[a|b]``
and finally reads emphasis ``(x)``, ``(x:1.3)``, ``[x]`` and ``BREAK`` while tokenising. This
module reads the same syntax in one linear scan (no parser that can fail on unbalanced input) and
cuts the plain words into concept phrases at ``BREAK``/``AND``, the alternatives of a
prompt-editing bracket and the boundaries of :mod:`pixtention.selector.phrases` (punctuation,
"and"/"with"/"in", and inside sentences prepositions, light verbs and -ing verbs). Every phrase
keeps its span in the original prompt and in the tag-stripped prompt, which is the text the
WebUI tokenises.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pixtention.selector.phrases import STOPWORDS, concept_pieces

# The WebUI's own pattern for extra-network tags (modules/extra_networks.py: re_extra_net).
_TAG = re.compile(r"<(\w+):([^>]+)>")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
# `:1.3)` closing an emphasis group; A1111's re_attention accepts `[+-]?[.\d]+` here.
_EMPHASIS_WEIGHT = re.compile(r":\s*[-+]?[.\d]+\s*\)")
# `:0.5]` closing a prompt-editing bracket.
_EDIT_STEP = re.compile(r":\s*" + _NUMBER + r"\s*\]")
# `:1.2` at the end of an AND sub-prompt (A1111's re_weight).
_SUBPROMPT_WEIGHT = re.compile(r":\s*" + _NUMBER + r"\s*(?=AND\b|$)")
_WORD_CHAR = re.compile(r"\w")
_EDGE_CHARS = " \t\r:;'\"`-_*~"
NETWORK_KINDS = ("lora", "lyco", "hypernet")

_CONTENT, _SYNTAX, _BREAK, _ESCAPE = 0, 1, 2, 3
_VIEW_CHAR = {_SYNTAX: " ", _BREAK: "\n", _ESCAPE: "\x00"}
__all__ = ["STOPWORDS", "ParsedPrompt", "Phrase", "PromptTag", "parse_prompt"]


@dataclass(frozen=True)
class Phrase:
    """One concept phrase: ``text`` is plain words; spans index the prompts it came from."""

    text: str
    span: tuple[int, int]  # in the original prompt (tags included)
    stripped_span: tuple[int, int]  # in the tag-stripped prompt the WebUI tokenises
    segment: int  # which AND sub-prompt (0-based)


@dataclass(frozen=True)
class PromptTag:
    """An extra-network tag such as ``<lora:name:0.8>``, removed from the text the WebUI reads.

    ``weight`` is the UNet multiplier (``<lora:name:te:unet>``; unet defaults to te, te to 1).
    ``follows`` is the index of the phrase written right before the tag in the same
    sub-prompt, or None when the tag opens or closes its sub-prompt (then it names no phrase).
    """

    kind: str
    name: str
    weight: float
    te_weight: float
    span: tuple[int, int]
    follows: int | None
    text: str


@dataclass(frozen=True)
class ParsedPrompt:
    prompt: str
    stripped: str  # the prompt with every extra-network tag removed, as the WebUI strips it
    phrases: tuple[Phrase, ...]
    tags: tuple[PromptTag, ...]  # every extra-network tag, in prompt order

    @property
    def text(self) -> str:
        """All phrases as one plain query text."""
        return ", ".join(p.text for p in self.phrases)

    @property
    def network_tags(self) -> tuple[PromptTag, ...]:
        """The ``<lora:…>``, ``<lyco:…>`` and ``<hypernet:…>`` tags."""
        return tuple(t for t in self.tags if t.kind in NETWORK_KINDS)


def _float_or(text: str, default: float) -> float:
    try:
        value = float(text)
    except ValueError:
        return default
    return value if value == value and abs(value) != float("inf") else default


def _tag_weights(args: list[str]) -> tuple[float, float]:
    """(te, unet) multipliers of ``name:te:unet`` or ``name:te=…:unet=…`` (A1111 semantics)."""
    positional = [a for a in args if "=" not in a]
    named = dict(a.split("=", 1) for a in args if "=" in a)
    te = _float_or(named.get("te", positional[0] if positional else "1"), 1.0)
    unet = _float_or(named.get("unet", positional[1] if len(positional) > 1 else str(te)), te)
    return te, unet


def _syntax_chars(prompt: str, masked: list[bool]) -> Iterator[tuple[int, str]]:
    """(position, char) of every character that can be syntax: not in a tag, not escaped."""
    i, n = 0, len(prompt)
    while i < n:
        ch = prompt[i]
        if masked[i]:
            i += 1
        elif ch == "\\":
            i += 2
        else:
            yield i, ch
            i += 1


def _match_brackets(prompt: str, masked: list[bool]) -> dict[int, int]:
    """Pair each ``(``/``[`` with its closer (and back); escaped, tag and unmatched ones stay out."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in _syntax_chars(prompt, masked):
        if ch in "([":
            stack.append(i)
        elif ch in ")]":
            opener = "(" if ch == ")" else "["
            # A closer matches the nearest opener of its kind; openers skipped over stay unpaired.
            for depth in range(len(stack) - 1, -1, -1):
                if prompt[stack[depth]] == opener:
                    pairs[stack[depth]] = i
                    pairs[i] = stack[depth]
                    del stack[depth:]
                    break
    return pairs


def _editing_brackets(prompt: str, masked: list[bool], pairs: dict[int, int]) -> set[int]:
    """Positions of ``[`` that open prompt editing or alternation (a ``:``/``|`` at their level)."""
    editing: set[int] = set()
    stack: list[int] = []
    for i, ch in _syntax_chars(prompt, masked):
        if i in pairs:
            if ch in "([":
                stack.append(i)
            elif stack:
                stack.pop()
        elif ch in ":|" and stack and prompt[stack[-1]] == "[":
            editing.add(stack[-1])
    return editing


def _classify(prompt: str, tag_spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Per character: content, syntax or concept break; and the AND sub-prompt it belongs to."""
    n = len(prompt)
    cls = [_CONTENT] * n
    masked = [False] * n
    for start, end in tag_spans:
        for j in range(start, end):
            masked[j] = True
            cls[j] = _BREAK
    pairs = _match_brackets(prompt, masked)
    editing = _editing_brackets(prompt, masked, pairs)
    segment_of = [0] * n
    segment = 0
    stack: list[int] = []  # open bracket positions
    i = 0
    while i < n:
        ch = prompt[i]
        segment_of[i] = segment
        if masked[i]:
            i += 1
            continue
        word_start = i == 0 or not _WORD_CHAR.match(prompt[i - 1])
        if ch == "\\":
            cls[i] = _ESCAPE
            if i + 1 < n and prompt[i + 1] in "()[]\\":
                segment_of[i + 1] = segment
                i += 2  # the escaped character is literal text
                continue
        elif ch in "()[]":
            if i in pairs:
                if ch in "([":
                    stack.append(i)
                elif stack and stack[-1] == pairs[i]:
                    stack.pop()
            cls[i] = _BREAK if (i in editing or pairs.get(i) in editing) else _SYNTAX
        elif word_start and prompt.startswith("BREAK", i) and not _word_after(prompt, i + 5):
            _mark(cls, segment_of, i, i + 5, _BREAK, segment)
            i += 5
            continue
        elif word_start and prompt.startswith("AND", i) and not _word_after(prompt, i + 3):
            _mark(cls, segment_of, i, i + 3, _BREAK, segment)
            segment += 1
            stack.clear()
            i += 3
            continue
        elif ch == ":":
            end = _colon_syntax_end(prompt, i, stack, pairs, editing)
            if end is not None:
                kind = _BREAK if end == i + 1 and stack and stack[-1] in editing else _SYNTAX
                _mark(cls, segment_of, i, end, kind, segment)
                i = end
                continue
        elif ch == "|" and stack and stack[-1] in editing:
            cls[i] = _BREAK
        i += 1
    return cls, segment_of


def _word_after(prompt: str, j: int) -> bool:
    return j < len(prompt) and bool(_WORD_CHAR.match(prompt[j]))


def _mark(cls: list[int], seg: list[int], start: int, end: int, kind: int, segment: int) -> None:
    for j in range(start, end):
        cls[j] = kind
        seg[j] = segment


def _colon_syntax_end(
    prompt: str, i: int, stack: list[int], pairs: dict[int, int], editing: set[int]
) -> int | None:
    """End of the syntax a ``:`` starts (emphasis weight, editing step or separator), else None."""
    if stack:
        top = stack[-1]
        closer = pairs[top]
        if prompt[top] == "(":
            m = _EMPHASIS_WEIGHT.match(prompt, i)
            return m.end() - 1 if m and m.end() - 1 == closer else None
        if top in editing:
            m = _EDIT_STEP.match(prompt, i)
            if m and m.end() - 1 == closer:
                return m.end() - 1
            return i + 1  # separates the two alternatives of [a:b:n]
        return None
    m = _SUBPROMPT_WEIGHT.match(prompt, i)
    return m.end() if m else None


def _strip_offsets(tag_spans: list[tuple[int, int]]):
    """A function mapping an original position (outside tags) to its tag-stripped position."""
    starts = [s for s, _ in tag_spans]
    removed_before: list[int] = []
    total = 0
    for start, end in tag_spans:
        total += end - start
        removed_before.append(total)

    def to_stripped(pos: int) -> int:
        k = bisect.bisect_right(starts, pos - 1)
        return pos - (removed_before[k - 1] if k else 0)

    return to_stripped


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Read ``prompt`` as the WebUI does and cut it into concept phrases; never raises."""
    prompt = prompt or ""
    tag_matches = list(_TAG.finditer(prompt))
    tag_spans = [m.span() for m in tag_matches]
    cls, segment_of = _classify(prompt, tag_spans)
    view = "".join(ch if c == _CONTENT else _VIEW_CHAR[c] for ch, c in zip(prompt, cls))
    to_stripped = _strip_offsets(tag_spans)
    phrases: list[Phrase] = []
    for a, b in concept_pieces(view):
        piece = view[a:b]
        lead = len(piece) - len(piece.lstrip(_EDGE_CHARS))
        trail = len(piece.rstrip(_EDGE_CHARS))
        if trail <= lead:
            continue
        text = " ".join(piece[lead:trail].replace("\x00", "").split())
        if not any(ch.isalnum() for ch in text) or _only_stopwords(text):
            continue
        start, end = a + lead, a + trail
        phrases.append(
            Phrase(
                text=text,
                span=(start, end),
                stripped_span=(to_stripped(start), to_stripped(end)),
                segment=segment_of[start],
            )
        )
    ends = [p.span[1] for p in phrases]
    tags = tuple(_make_tag(m, phrases, ends, segment_of) for m in tag_matches)
    stripped = _TAG.sub("", prompt)
    return ParsedPrompt(prompt=prompt, stripped=stripped, phrases=tuple(phrases), tags=tags)


def _only_stopwords(text: str) -> bool:
    return all(word in STOPWORDS for word in text.lower().split())


def _make_tag(
    m: re.Match[str], phrases: list[Phrase], ends: list[int], segment_of: list[int]
) -> PromptTag:
    kind, args = m.group(1).lower(), m.group(2).split(":")
    te, unet = _tag_weights(args[1:])
    start, end = m.span()
    segment = segment_of[start]
    k = bisect.bisect_right(ends, start)  # phrases[:k] end before the tag; phrases[k:] after it
    before = k > 0 and phrases[k - 1].segment == segment
    after = k < len(phrases) and phrases[k].segment == segment
    return PromptTag(
        kind=kind,
        name=args[0].strip(),
        weight=unet,
        te_weight=te,
        span=(start, end),
        follows=k - 1 if before and after else None,
        text=m.group(0),
    )
