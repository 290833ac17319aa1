"""The keyword index: SQLite FTS5 over everything the user has about each adapter.

The embedded document is clipped (a 400-character description); the keyword side must not be:
outfit tag lists and example prompts pasted into a description are exactly the words a prompt
repeats. So each adapter gets one FTS5 row of three columns — ``name`` (title, file stem,
version name, folders), ``tags`` (all tags and trigger words) and ``body`` (every description
the sidecars hold, HTML turned into text, notes, example prompts) — ranked by FTS5's own bm25().

Consistency follows the rest of the catalog. A row is keyed by the adapter's path and a
*source* key (file size, mtime, sidecar signature and fingerprint): a changed file or sidecar
gets a new row, committed in batches (:func:`sync`, after the read stage), while the old row
stays what readers use; the publishing transaction (:func:`publish`) then drops replaced and
orphaned rows and marks the rest published, together with the snapshot. A run killed anywhere
leaves the previous rows published, and the next run finds what is missing by one anti-join.
Row ids come from an AUTOINCREMENT table, so a reader never sees one id name two texts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pixtention.curator.catalog_file import display_text
from pixtention.curator.serial import info_from_json
from pixtention.library.civitai import from_sidecar
from pixtention.library.html_text import html_to_text
from pixtention.library.sidecars import read_sidecars

if TYPE_CHECKING:  # the catalog imports this module for its schema
    from pixtention.curator.catalog import Catalog

log = logging.getLogger("pixtention.curator")

COLUMNS = ("name", "tags", "body")
TOKENIZER = "unicode61 remove_diacritics 0"  # words as retrieval.tokenize splits them
BODY_CHARS = 64 * 1024  # of all description text kept per adapter (a sidecar may hold MBs)
FIELD_CHARS = 8 * 1024  # of the name or tags column
SYNC_BATCH = 256

# Schema of the keyword index (catalog migration 3).
SCHEMA: tuple[str, ...] = (
    """CREATE TABLE keyword_rows (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path BLOB NOT NULL, source TEXT NOT NULL,
        current INTEGER NOT NULL DEFAULT 1, published INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX keyword_rows_path ON keyword_rows (path, source)",
    f"CREATE VIRTUAL TABLE keywords USING fts5({', '.join(COLUMNS)}, tokenize='{TOKENIZER}')",
    "CREATE VIRTUAL TABLE keywords_vocab USING fts5vocab(keywords, 'row')",
)

# What identifies the text of an adapter's row: its file and sidecars as scanned.
_SOURCE = "f.size || ':' || f.mtime_ns || ':' || f.sidecars || ':' || a.fingerprint"
_MISSING = (
    f"SELECT a.path, a.info, {_SOURCE} FROM adapters a JOIN files f ON f.path = a.path "
    "WHERE NOT EXISTS (SELECT 1 FROM keyword_rows k WHERE k.path = a.path AND k.current = 1 "
    f"AND k.source = {_SOURCE})"
)


@dataclass(frozen=True)
class KeywordText:
    """One adapter's row of the keyword index."""

    name: str
    tags: str
    body: str


def _join(parts: Iterable[object], limit: int, sep: str = "\n") -> str:
    """Distinct non-empty text parts joined, at most ``limit`` characters."""
    seen: dict[str, str] = {}
    total = 0
    for part in parts:
        text = part.strip() if isinstance(part, str) else ""
        if text and text.lower() not in seen:
            seen[text.lower()] = text
            total += len(text) + len(sep)
            if total > limit:
                break
    return sep.join(seen.values())[:limit]


def _sidecar_texts(path: str, root: str | None) -> tuple[list[str], list[str], list[str]]:
    """(names, tags, description texts) of every sidecar beside ``path``, not only the one the
    metadata merge chose (a user's own description does not hide civitai's)."""
    sidecars = read_sidecars(path, root)
    names: list[str] = []
    tags: list[str] = []
    texts: list[str] = []
    for data in (sidecars.civitai_info, sidecars.api_info, sidecars.lora_manager):
        if data:
            view = from_sidecar(data, path)
            names += [view.model_name, view.version_name]
            tags += [*view.tags, *view.trained_words]
            texts += [html_to_text(d, BODY_CHARS) for d in view.descriptions]
            texts += [view.notes, *view.prompts]
    user = sidecars.user
    for key in ("description", "notes", "activation text"):
        value = user.get(key)
        if isinstance(value, str):
            (tags if key == "activation text" else texts).append(value[:BODY_CHARS])
    texts += [sidecars.description_txt[:BODY_CHARS], sidecars.text[:BODY_CHARS]]
    return names, tags, texts


def keyword_text(info_json: str, root: str | None) -> KeywordText:
    """The row of one adapter from its stored info and its sidecars (read again, bounded)."""
    info = info_from_json(info_json)
    meta = info.metadata
    path = info.file.path
    try:
        names, tags, texts = _sidecar_texts(path, root)
    except (OSError, ValueError) as exc:  # gone or unreadable since the read stage
        log.debug("keywords of %s from its stored metadata only: %s", path, exc)
        names, tags, texts = [], [], []
    stem = meta.name.replace("_", " ").replace("-", " ")
    name = _join([meta.title, stem, *names, *meta.folders], FIELD_CHARS)
    tag_text = _join([*meta.tags, *meta.triggers, *tags], FIELD_CHARS, ", ")
    body = _join([meta.description, *texts, meta.notes, *meta.example_prompts], BODY_CHARS)
    return KeywordText(*(display_text(t) for t in (name, tag_text, body)))


def needs_sync(cat: Catalog) -> bool:
    """False when the rows were brought up to date at the catalog's current version."""
    return cat.get_meta("keywords_version") != cat.get_meta("catalog_version", "0")


def sync(cat: Catalog, root: str | None, progress: Callable[[int, int], None] | None = None) -> int:
    """Add a row for every adapter whose file or sidecars changed since its row was made
    (cost: the changed adapters only); returns how many rows were added."""
    if not needs_sync(cat):
        return 0
    missing = list(cat.conn.execute(_MISSING))
    for start in range(0, len(missing), SYNC_BATCH):
        batch = missing[start : start + SYNC_BATCH]
        rows = [(path, source, keyword_text(info, root)) for path, info, source in batch]
        with cat.transaction() as conn:
            for path, source, text in rows:
                conn.execute(
                    "UPDATE keyword_rows SET current = 0 WHERE path = ? AND current = 1", (path,)
                )
                row = conn.execute(
                    "INSERT INTO keyword_rows (path, source) VALUES (?, ?)", (path, source)
                ).lastrowid
                conn.execute(
                    "INSERT INTO keywords (rowid, name, tags, body) VALUES (?, ?, ?, ?)",
                    (row, text.name, text.tags, text.body),
                )
            cat.bump_version()  # the snapshot must be published to serve the new rows
        if progress is not None:
            progress(min(start + SYNC_BATCH, len(missing)), len(missing))
    with cat.transaction():
        cat.set_meta("keywords_version", cat.get_meta("catalog_version", "0"))
    return len(missing)


def publish(cat: Catalog) -> None:
    """Inside the publishing transaction: drop replaced rows and rows of adapters gone, and
    serve the current ones."""
    stale = (
        "SELECT id FROM keyword_rows k WHERE k.current = 0 OR NOT EXISTS "
        "(SELECT 1 FROM adapters a WHERE a.path = k.path)"
    )
    cat.conn.execute(f"DELETE FROM keywords WHERE rowid IN ({stale})")
    cat.conn.execute(f"DELETE FROM keyword_rows WHERE id IN ({stale})")
    cat.conn.execute("UPDATE keyword_rows SET published = 1 WHERE published = 0")


def published_rows(conn) -> list[tuple[int, str]]:
    """(row id, adapter path) of every published row."""
    rows = conn.execute("SELECT id, path FROM keyword_rows WHERE published = 1")
    return [(i, os.fsdecode(p)) for i, p in rows]


def has_keywords(conn) -> bool:
    """True when the catalog holds the keyword index (schema 3 or later)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='keyword_rows'"
    ).fetchone()
    return found is not None
