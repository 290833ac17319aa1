"""civitai descriptions are HTML; documents and the command line want plain text.

Built on the standard library's forgiving ``html.parser``: block elements become paragraph
breaks, ``<br>`` a line break, list items a "- " line; scripts, styles and other invisible
elements are dropped with their content; entities are decoded. Malformed markup never raises.
"""

from __future__ import annotations

import html as html_entities
import re
from html.parser import HTMLParser

# Space-separated word lists read better than 30 quoted strings.
_BLOCK = frozenset(
    "p div section article header footer blockquote pre table tr ul ol dl h1 h2 h3 h4 h5 h6 "  # noqa: SIM905
    "hr figure figcaption details summary".split()
)
_HIDDEN = frozenset("script style head title template noscript iframe object svg".split())  # noqa: SIM905
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[A-Za-z/!]")
MAX_INPUT = 500_000  # characters parsed; descriptions are cut far shorter afterwards


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
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.parts.append(data.replace("\n", " "))


def html_to_text(html: str, limit: int | None = None) -> str:
    """Plain text of an HTML fragment, paragraphs kept, at most ``limit`` characters.

    Text without any tag is taken as plain text (its own line breaks kept, entities decoded).
    """
    html = html[:MAX_INPUT]
    if _TAG.search(html):
        collector = _TextCollector()
        collector.feed(html)
        collector.close()
        raw = "".join(collector.parts)
    else:
        raw = html_entities.unescape(html)
    lines = (_SPACES.sub(" ", line).strip() for line in raw.split("\n"))
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
