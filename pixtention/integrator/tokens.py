"""Where a phrase's tokens sit in the conditioning: context index = 77 · chunk + index.

``tokenize_line(text) -> list[list[int]]`` is the seam: 77-id chunks (BOS + 75 + EOS/pad), as
the WebUI's ``cond_stage_model.tokenize_line`` yields them (after emphasis parsing, BREAK and
textual-inversion placeholders). ``clip_chunks`` builds one from a Hugging Face ``CLIPTokenizer``
for standalone use. How the prompt syntax is handled:

- emphasis ``(x:1.2)``, ``(x)``, ``[x]`` and escapes: brackets and weights carry no tokens, so the
  phrase (written plain) is matched against the bracket-free token stream;
- ``BREAK``: the chunk is padded and the next starts — positions account for it through 77·c;
- ``AND``: every sub-prompt is its own conditioning row; ``token_positions`` searches the
  sub-prompts in order and returns positions within the first that holds the phrase
  (``subprompt_positions`` gives one tuple per sub-prompt, for callers that capture each row);
- prompt editing ``[a:b:N]``, ``[a:N]``, ``[a::N]`` and alternation ``[a|b]``: resolved for one
  sampling step (``step``/``steps``, default the first step, when masks form) before tokenising.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

CHUNK = 77
INNER = 75
TokenizeLine = Callable[[str], list[list[int]]]

_AND = re.compile(r"\bAND\b")
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_WEIGHT = re.compile(r":\s*[-+]?\d*\.?\d+\s*\)")
_EDIT = re.compile(r"\[([^\[\]:|]*):([^\[\]:|]*):\s*(\d*\.?\d+)\s*\]")
_EDIT_ADD = re.compile(r"\[([^\[\]:|]*):\s*(\d*\.?\d+)\s*\]")
_ALTERNATE = re.compile(r"\[([^\[\]:]*\|[^\[\]:]*)\]")


def resolve_schedule(prompt: str, step: int = 0, steps: int = 1) -> str:
    """The prompt as sampling step ``step`` of ``steps`` sees it (non-nested editing syntax)."""

    def switch_at(value: str) -> float:
        number = float(value)
        return number * steps if number < 1 else number

    def edit(match: re.Match[str]) -> str:
        before, after, when = match.groups()
        return after if step >= switch_at(when) else before

    def add(match: re.Match[str]) -> str:
        text, when = match.groups()
        return text if step >= switch_at(when) else ""

    def alternate(match: re.Match[str]) -> str:
        options = match.group(1).split("|")
        return options[step % len(options)]

    previous = None
    while previous != prompt:
        previous = prompt
        prompt = _EDIT.sub(edit, prompt)
        prompt = _EDIT_ADD.sub(add, prompt)
        prompt = _ALTERNATE.sub(alternate, prompt)
    return prompt


def strip_emphasis(text: str) -> str:
    """Drop A1111 emphasis syntax (weights and brackets); escaped brackets stay as text."""
    text = _WEIGHT.sub(")", text)
    out = []
    escaped = False
    for ch in text:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch not in "()[]":
            out.append(ch)
    return "".join(out)


def clip_chunks(tokenizer, *, comma_backtrack: int = 20) -> TokenizeLine:
    """A WebUI-like ``tokenize_line`` from a ``CLIPTokenizer``: emphasis, BREAK, comma backtrack.

    Like the WebUI, a chunk that fills up moves the tail after its last comma (when within
    ``comma_backtrack`` tokens) to the next chunk, so words are not split across chunks.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    comma = tokenizer.convert_tokens_to_ids(",</w>")

    def close(chunk: list[int]) -> list[int]:
        return [bos, *chunk, *[pad] * (INNER - len(chunk)), eos]

    def tokenize_line(text: str) -> list[list[int]]:
        chunks: list[list[int]] = []
        current: list[int] = []
        for part_index, part in enumerate(_BREAK.split(text)):
            if part_index and (current or not chunks):
                chunks.append(close(current))
                current = []
            ids = tokenizer(strip_emphasis(part), add_special_tokens=False, verbose=False)[
                "input_ids"
            ]
            for token in ids:
                if len(current) == INNER:
                    last_comma = max((i for i, t in enumerate(current) if t == comma), default=-1)
                    if last_comma >= 0 and INNER - 1 - last_comma <= comma_backtrack:
                        tail = current[last_comma + 1 :]
                        chunks.append(close(current[: last_comma + 1]))
                        current = tail
                    else:
                        chunks.append(close(current))
                        current = []
                current.append(token)
        if current or not chunks:
            chunks.append(close(current))
        return chunks

    return tokenize_line


def _content(tokenize_line: TokenizeLine, text: str, skip: frozenset[int]) -> list[int]:
    """The ids of ``text`` without BOS/EOS/padding or placeholders."""
    ids: list[int] = []
    for chunk in tokenize_line(text):
        ids.extend(t for t in chunk[1:-1] if t not in skip and t != chunk[-1])
    return ids


def _find(haystack: Sequence[int], needle: Sequence[int]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(haystack) - n + 1) if list(haystack[i : i + n]) == list(needle)]


def _positions_in(
    tokenize_line: TokenizeLine, prompt: str, words: Sequence[str], skip: frozenset[int]
) -> tuple[int, ...]:
    chunks = tokenize_line(prompt)
    flat: list[int] = []
    index: list[int] = []
    for c, chunk in enumerate(chunks):
        for i, token in enumerate(chunk):
            if 0 < i < CHUNK - 1 and token not in skip and token != chunk[-1]:
                flat.append(token)
                index.append(CHUNK * c + i)
    found: set[int] = set()
    for text in words:
        needle = _content(tokenize_line, text, skip)
        if not needle:
            continue
        starts = _find(flat, needle)
        if starts:
            for s in starts:
                found.update(index[s : s + len(needle)])
            continue
        for word in text.split():  # the phrase is not contiguous in the prompt: match its words
            piece = _content(tokenize_line, word, skip)
            for s in _find(flat, piece) if piece else ():
                found.update(index[s : s + len(piece)])
    return tuple(sorted(found))


def subprompt_positions(
    tokenize_line: TokenizeLine,
    prompt: str,
    phrase: str,
    *,
    extra_words: Sequence[str] = (),
    placeholder_ids: Sequence[int] = (0,),
    step: int = 0,
    steps: int = 1,
) -> tuple[tuple[int, ...], ...]:
    """Positions of ``phrase`` (and ``extra_words``) in each AND sub-prompt of ``prompt``."""
    skip = frozenset(placeholder_ids)
    words = [w for w in (strip_emphasis(phrase), *extra_words) if w.strip()]
    resolved = resolve_schedule(prompt, step, steps)
    return tuple(
        _positions_in(tokenize_line, sub.strip(), words, skip) for sub in _AND.split(resolved)
    )


def token_positions(
    tokenize_line: TokenizeLine,
    prompt: str,
    phrase: str,
    *,
    extra_words: Sequence[str] = (),
    placeholder_ids: Sequence[int] = (0,),
    step: int = 0,
    steps: int = 1,
) -> tuple[int, ...]:
    """Context indices of ``phrase`` (plus inserted trigger ``extra_words``) in ``prompt``.

    BOS, EOS, padding and textual-inversion placeholders (``placeholder_ids``) are never
    returned; an empty tuple means the phrase tokenises to nothing or is not in the prompt.
    """
    for positions in subprompt_positions(
        tokenize_line,
        prompt,
        phrase,
        extra_words=extra_words,
        placeholder_ids=placeholder_ids,
        step=step,
        steps=steps,
    ):
        if positions:
            return positions
    return ()
