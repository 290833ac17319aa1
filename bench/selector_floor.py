"""The floor the selector must beat: a full-text BM25 a user could run themselves.

SQLite FTS5 (it ships with Python) over every model's whole ``.civitai.info`` as the bench wrote
it to disk — model name and file name, all tags and trained words, the full model and version
descriptions as plain text, the version name — ranked by FTS5's bm25() with name and tags
counting twice. The prompt is the query, every word of it OR-ed. It shares no code with the
product (its own HTML-to-text, its own table), so a change in the product cannot move it, and it
filters by base-model family like ``select(base_model=…)`` does.
"""

from __future__ import annotations

import json
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

WEIGHTS = (2.0, 2.0, 1.0)  # name, tags, text: name and tags ×2
_WORD = re.compile(r"\w+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain(html: str) -> str:
    parser = _Text()
    parser.feed(html or "")
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def sidecar_row(stem: str, info: dict) -> tuple[str, str, str]:
    """(name, tags, text) of one ``.civitai.info`` (the Civitai model-version shape)."""
    model = info.get("model") or {}
    tags = [t if isinstance(t, str) else t.get("name", "") for t in model.get("tags") or []]
    name = f"{model.get('name', '')} {stem.replace('_', ' ')}"
    text = " ".join(
        (plain(model.get("description") or ""), plain(info.get("description") or ""),
         info.get("name") or "")
    )  # fmt: skip
    return name, " ".join(tags + list(info.get("trainedWords") or [])), text


class FullTextFloor:
    """An in-memory FTS5 table of every model beside its label and base-model family."""

    def __init__(self, folder: Path, families: dict[str, str]) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute(
            "CREATE VIRTUAL TABLE docs USING fts5(name, tags, text, family UNINDEXED)"
        )
        self.stems: list[str] = []
        for sidecar in sorted(folder.glob("*.civitai.info")):
            stem = sidecar.name[: -len(".civitai.info")]
            if stem not in families:
                continue
            info = json.loads(sidecar.read_text(encoding="utf-8"))
            self.conn.execute(
                "INSERT INTO docs (rowid, name, tags, text, family) VALUES (?, ?, ?, ?, ?)",
                (len(self.stems), *sidecar_row(stem, info), families[stem]),
            )
            self.stems.append(stem)
        self.conn.commit()

    def rank(self, prompt: str, family: str, k: int) -> list[str]:
        """The ``k`` best models of ``family`` for ``prompt`` (none when no word matches)."""
        words = dict.fromkeys(w.lower() for w in _WORD.findall(prompt))
        if not words:
            return []
        query = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        w = ", ".join(str(x) for x in WEIGHTS)
        rows = self.conn.execute(
            f"SELECT rowid FROM docs WHERE docs MATCH ? AND family IN (?, 'unknown') "
            f"ORDER BY bm25(docs, {w}, 0) LIMIT ?",
            (query, family, k),
        )
        return [self.stems[row] for (row,) in rows]
