"""Text from file names and metadata, made safe to show on a terminal or in a log line.

File names and header metadata come from downloads. They may hold ESC sequences (which recolour,
retitle or clear a terminal), carriage returns and newlines (which forge output lines), bidi
controls (which reorder what is shown) and, on Linux, bytes that are not UTF-8. Two tools:

- :func:`terminal_safe` for anything printed: every such character becomes a visible escape
  (``\\x1b``, ``\\n``, ``\\u202e``; undecodable file-name bytes ``\\xNN``), so a line printed
  is exactly one line and looks like what is on disk.
- :func:`clean_text` for metadata kept in records (titles, tags, descriptions): control and
  bidi characters are dropped (whitespace ones become a space), so stored text is display-safe
  wherever it is shown later.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, line/paragraph separators, bidi marks, embeddings, overrides and
# isolates, the Arabic letter mark and the byte-order mark; and lone surrogates (undecodable
# file-name bytes reach Python as U+DC80..U+DCFF).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
    "\ud800-\udfff]"
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SPACE_LIKE = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if 0xDC80 <= code <= 0xDCFF:  # a surrogate-escaped byte: show the byte that is on disk
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_safe(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, bidi and undecodable character shown as an escape.

    With ``keep_newlines`` a plain ``\\n`` stays a line break (for multi-line blocks whose lines
    are printed indented); everything else is still escaped.
    """
    text = str(text)
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escape, line) for line in text.split("\n"))
    return _UNSAFE.sub(_escape, text)


def clean_text(text: str, *, keep_newlines: bool = False) -> str:
    """Metadata text without control or bidi characters (whitespace controls become a space).

    Lone surrogates become U+FFFD: stored text must be valid UTF-8.
    """

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char == "\n" and keep_newlines:
            return "\n"
        if "\ud800" <= char <= "\udfff":
            return "\ufffd"
        return " " if char in _SPACE_LIKE else ""

    return _UNSAFE.sub(replace, text)
