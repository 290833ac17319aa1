"""The document the indexer would build for one file, and whether the store holds that text.

``show FILE --doc`` uses it so users can see exactly what gets embedded (and which trigger words
are kept for prompting but left out of the embedded text), with the same folder themes and
cached captions the indexer would use.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pixtention.curator.catalog import Catalog, encode_path
from pixtention.curator.documents import Document, build_document, document_digest
from pixtention.curator.store import CATALOG_NAME, StoreError


@dataclass(frozen=True)
class DocumentView:
    """One file's document; ``store_state`` is ``current``, ``stale``, ``absent`` or None
    (no store to compare with)."""

    path: str
    name: str
    fingerprint: str
    root: str | None
    captions: tuple[str, ...]
    document: Document
    digest: str
    store: str | None
    store_state: str | None


class _StoreView:
    """Read-only questions to a store's catalog; a missing or damaged store answers nothing."""

    def __init__(self, store: Path | None) -> None:
        self.cat: Catalog | None = None
        if store is not None and (store / CATALOG_NAME).is_file():
            try:
                self.cat = Catalog(store / CATALOG_NAME, readonly=True)
            except (sqlite3.DatabaseError, StoreError):
                self.cat = None  # `index` sets a damaged catalog aside; `show` only reads

    def root(self) -> str | None:
        return (self.cat.get_meta("root") or None) if self.cat is not None else None

    def captions(self, fingerprint: str) -> tuple[str, ...]:
        """Cached preview captions of a file, whichever captioner made them."""
        if self.cat is None:
            return ()
        rows = self.cat.conn.execute(
            "SELECT caption FROM captions WHERE fingerprint=? ORDER BY captioner", (fingerprint,)
        )
        return tuple(text for (text,) in rows if text)

    def state(self, path: str, digest: str) -> str | None:
        """``current``: the store embedded this text; ``stale``: another; ``absent``: none."""
        if self.cat is None:
            return None
        row = self.cat.conn.execute(
            "SELECT doc_digest FROM adapters WHERE path=?", (encode_path(path),)
        ).fetchone()
        if row is None:
            return "absent"
        return "current" if row[0] == digest else "stale"

    def close(self) -> None:
        if self.cat is not None:
            self.cat.close()


def document_for(
    file: str | os.PathLike[str],
    store: Path | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> DocumentView:
    """Build ``file``'s document as the indexer does; compare with ``store`` when it exists.

    Folder themes come from ``root``, else from the store's indexed folder when the file lies
    inside it; cached captions of the file's fingerprint are included as the indexer would.
    Raises ``LibraryError`` for files that are not adapters.
    """
    from pixtention.library import read_adapter

    path = os.path.abspath(os.fspath(file))
    view = _StoreView(store)
    try:
        indexed_root = view.root()
        if root is None and indexed_root and _inside(path, indexed_root):
            root = indexed_root
        info = read_adapter(path, root)
        captions = view.captions(info.file.fingerprint)
        doc = build_document(info, captions)
        digest = document_digest(doc.text)
        state = view.state(path, digest)
    finally:
        view.close()
    return DocumentView(
        path=path,
        name=info.metadata.name,
        fingerprint=info.file.fingerprint,
        root=os.fspath(root) if root is not None else None,
        captions=captions,
        document=doc,
        digest=digest,
        store=str(store) if state is not None else None,
        store_state=state,
    )


def _inside(path: str, folder: str) -> bool:
    try:
        Path(path).relative_to(folder)
    except ValueError:
        return False
    return True
