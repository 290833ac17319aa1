"""civitai descriptions are HTML; documents and the command line want plain text.

Built on the standard library's forgiving ``html.parser``: block elements become paragraph
breaks, ``<br>`` a line break, list items a "- " line; scripts, styles and other invisible
elements are dropped with their content; entities are decoded. Malformed markup never raises.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = frozenset(
    "p div section article header footer blockquote pre table tr ul ol dl h1 h2 h3 h4 h5 h6 "
    "hr figure figcaption details summary".split()
)
_HIDDEN = frozenset("script style head title template noscript iframe object svg".split())
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden_depth = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _HIDDEN:
            self.hidden_depth += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag in _BLOCK or tag == "li":
            self.parts.append("\n\n" if tag in _BLOCK else "\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.parts.append(data.replace("\n", " "))


def html_to_text(html: str, limit: int | None = None) -> str:
    """Plain text of an HTML fragment, paragraphs kept, at most ``limit`` characters."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(collector.parts).split("\n"))
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    return truncate(text, limit)


def truncate(text: str, limit: int | None) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary when one is near, marking the cut."""
    if limit is None or len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"
