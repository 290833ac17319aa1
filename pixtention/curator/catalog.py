"""The SQLite catalog: scan state, parsed adapters, cached captions and vectors, snapshots.

One writer (the indexer, under the store lock) and any number of readers. WAL mode lets readers
see the last committed state while the writer works; every batch the writer commits is durable,
so a killed run keeps its completed work. Paths are stored as bytes (``os.fsencode``) so file
names that are not valid UTF-8 survive the round trip.

Readers never write: they open the file read-only (``mode=ro``; ``immutable`` on a read-only
store, where no writer can run) and neither create nor migrate it, so an empty or damaged
catalog is reported, not silently replaced by an empty library. The writer checks the catalog
and its ``-wal``/``-shm``/``-journal`` companions with ``lstat`` before SQLite opens them: a
symbolic link there would make SQLite write through it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pixtention.curator.catalog_file import (
    CatalogCorrupt,
    check_for_reader,
    display_text,
    is_read_only,
    prepare_for_writer,
    sqlite_uri,
)
from pixtention.curator.catalog_schema import MIGRATIONS, SCHEMA_VERSION
from pixtention.curator.store import StoreError

# Adapters joined with their vector for one embedder (``?``) and their current document.
_CURRENT_VECTORS = (
    "SELECT a.path, a.record, e.vector FROM adapters a JOIN embeddings e "
    "ON e.fingerprint = a.fingerprint AND e.embedder = ? AND e.doc_digest = a.doc_digest "
)


def encode_path(path: str) -> bytes:
    return os.fsencode(path)


def decode_path(blob: bytes) -> str:
    return os.fsdecode(blob)


def _column(name: str, value: object) -> object:
    if name == "preview":
        return encode_path(str(value))
    return display_text(value) if isinstance(value, str) else value


class Catalog:
    """A connection to one catalog file.

    The writer's (default) is created and migrated on open; ``notes`` receives what was
    cleared away first (:func:`prepare_for_writer`). A reader's (``readonly=True``) never writes:
    a missing, empty, linked or unknown catalog raises :class:`StoreError`.
    """

    def __init__(
        self,
        path: Path,
        *,
        create: bool = True,
        readonly: bool = False,
        notes: list[str] | None = None,
    ) -> None:
        self.path = path
        self.readonly = readonly or not create
        if self.readonly:
            check_for_reader(path)
            self.conn = self._connect_reader(path)
            try:
                self._check_schema()
            except BaseException:
                self.conn.close()
                raise
            return
        found = prepare_for_writer(path)
        if notes is not None:
            notes.extend(found)
        self.conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except BaseException:
            self.conn.close()
            raise

    @staticmethod
    def _connect_reader(path: Path) -> sqlite3.Connection:
        """Read-only; on a store nobody can write (read-only disk), ``immutable`` (SQLite then
        needs no ``-shm`` file, which it could not create there)."""
        conn = sqlite3.connect(
            sqlite_uri(path, mode="ro"), uri=True, timeout=30.0, isolation_level=None
        )
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            writable = os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)
            if writable or not is_read_only(exc):
                raise
        return sqlite3.connect(
            sqlite_uri(path, mode="ro", immutable="1"), uri=True, timeout=30.0, isolation_level=None
        )

    def close(self) -> None:
        self.conn.close()

    def _schema_version(self) -> int:
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        text = self.get_meta("schema_version", "0") if has_meta else "0"
        try:
            return int(text)
        except ValueError:
            raise CatalogCorrupt(
                f"catalog {self.path} is corrupt: its schema version is {text[:40]!r}"
            ) from None

    def _check_schema(self) -> None:
        """A reader's check: a schema it can read (any released one up to ours), no writes."""
        try:
            version = self._schema_version()
        except CatalogCorrupt as exc:
            raise StoreError(f"{exc}; run `python -m pixtention index FOLDER` to rebuild") from None
        if version < 1:
            raise StoreError(
                f"catalog {self.path} holds no index (no schema); run "
                "`python -m pixtention index FOLDER` to build it"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"catalog {self.path} has schema {version}, newer than this PixTention "
                f"understands ({SCHEMA_VERSION}); update PixTention or use another --store"
            )

    def quick_check(self) -> str | None:
        """None when SQLite's ``quick_check`` finds the file sound, else its first finding."""
        rows = [r[0] for r in self.conn.execute("PRAGMA quick_check(5)")]
        return None if rows == ["ok"] else "; ".join(str(r) for r in rows)[:300]

    def meta_int(self, key: str, default: int = 0) -> int | None:
        """An integer metadata value; None when the stored text is not one (damage)."""
        text = self.get_meta(key, str(default))
        try:
            return int(text)
        except ValueError:
            return None

    def _migrate(self) -> None:
        version = self._schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"catalog {self.path} has schema {version}, newer than this PixTention "
                f"understands ({SCHEMA_VERSION}); update PixTention or use another --store"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in MIGRATIONS[target]:
                    self.conn.execute(statement)
                self.set_meta("schema_version", str(target))
        if not self.get_meta("store_id"):  # tells readers a rebuilt catalog from the old one
            with self.transaction():
                self.set_meta("store_id", os.urandom(8).hex())

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error): one durable batch."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:  # SQLite already rolled back after SQLITE_FULL, IOERR
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to tell
                    self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state."""
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def get_meta(self, key: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str | int) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, str(value)),
        )

    def bump_version(self) -> None:
        """Mark the catalog as changed since the last published snapshot (inside a batch)."""
        self.set_meta("catalog_version", int(self.get_meta("catalog_version", "0")) + 1)

    def file_states(self) -> dict[str, tuple[int, int, str]]:
        """path → (size, mtime_ns, sidecar signature) of every known file: the no-change test."""
        rows = self.conn.execute("SELECT path, size, mtime_ns, sidecars FROM files")
        return {decode_path(p): (s, m, c) for p, s, m, c in rows}

    def fingerprints_of(self, paths: Iterable[str]) -> dict[str, str]:
        out = {}
        for path in paths:
            row = self.conn.execute(
                "SELECT fingerprint FROM files WHERE path=?", (encode_path(path),)
            ).fetchone()
            if row and row[0]:
                out[path] = row[0]
        return out

    def remove_files(self, paths: Iterable[str]) -> None:
        blobs = [(encode_path(p),) for p in paths]
        self.conn.executemany("DELETE FROM files WHERE path=?", blobs)
        self.conn.executemany("DELETE FROM adapters WHERE path=?", blobs)

    def put_file(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        sidecars: str,
        fingerprint: str | None,
        error: str | None,
    ) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (encode_path(path), size, mtime_ns, sidecars, fingerprint,
             "error" if error else "ok", display_text(error)),
        )  # fmt: skip
        if error:
            self.conn.execute("DELETE FROM adapters WHERE path=?", (encode_path(path),))

    def put_adapter(self, path: str, columns: dict[str, object]) -> None:
        names = ("fingerprint", "name", "title", "base_family", "base_variant", "kind", "rank",
                 "preview", "info", "record", "doc_digest")  # fmt: skip
        self.conn.execute(
            f"INSERT OR REPLACE INTO adapters (path, {', '.join(names)}) "
            f"VALUES (?{', ?' * len(names)})",
            (encode_path(path), *(_column(n, columns[n]) for n in names)),
        )

    def problems(self) -> list[tuple[str, str]]:
        rows = self.conn.execute("SELECT path, error FROM files WHERE status='error' ORDER BY path")
        return [(decode_path(p), e or "") for p, e in rows]

    def caption_for(self, fingerprint: str, captioner: str) -> str | None:
        row = self.conn.execute(
            "SELECT caption FROM captions WHERE fingerprint=? AND captioner=?",
            (fingerprint, captioner),
        ).fetchone()
        return row[0] if row else None

    def put_caption(self, fingerprint: str, captioner: str, caption: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO captions VALUES (?, ?, ?)", (fingerprint, captioner, caption)
        )

    def pending_captions(self, captioner: str) -> list[tuple[str, str]]:
        """(fingerprint, preview path) of adapters with a preview but no caption yet."""
        rows = self.conn.execute(
            "SELECT a.fingerprint, MIN(a.preview) FROM adapters a LEFT JOIN captions c "
            "ON c.fingerprint = a.fingerprint AND c.captioner = ? "
            "WHERE a.preview != x'' AND c.fingerprint IS NULL GROUP BY a.fingerprint",
            (captioner,),
        )
        return [(fp, decode_path(preview)) for fp, preview in rows]

    def adapters_with(self, fingerprints: Iterable[str]) -> list[tuple[str, str]]:
        """(path, info JSON) of every adapter file carrying one of ``fingerprints``."""
        out = []
        for fp in fingerprints:
            rows = self.conn.execute("SELECT path, info FROM adapters WHERE fingerprint=?", (fp,))
            out.extend((decode_path(p), info) for p, info in rows)
        return out

    def pending_embeddings(self, embedder: str) -> list[tuple[str, str, str]]:
        """(fingerprint, doc_digest, record JSON) of documents with no vector for ``embedder``."""
        rows = self.conn.execute(
            "SELECT a.fingerprint, a.doc_digest, MIN(a.record) FROM adapters a "
            "LEFT JOIN embeddings e ON e.fingerprint = a.fingerprint AND e.embedder = ? "
            "AND e.doc_digest = a.doc_digest WHERE e.fingerprint IS NULL "
            "GROUP BY a.fingerprint, a.doc_digest",
            (embedder,),
        )
        return list(rows)

    def put_embeddings(self, embedder: str, rows: Iterable[tuple[str, str, bytes]]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
            ((fp, embedder, digest, blob) for fp, digest, blob in rows),
        )

    def embedded_adapters(self, embedder: str) -> list[tuple[bytes, str, bytes]]:
        """(path, record JSON, vector blob) of every adapter with a current vector, by path."""
        rows = self.conn.execute(_CURRENT_VECTORS + "ORDER BY a.path", (embedder,))
        return list(rows)

    def unpublished_adapters(self, embedder: str) -> list[tuple[bytes, str, bytes]]:
        """(path, record JSON, vector blob) of current adapters the snapshot lacks or has stale."""
        rows = self.conn.execute(
            _CURRENT_VECTORS + "LEFT JOIN snapshot s ON s.path = a.path AND s.record = a.record "
            "WHERE s.row IS NULL ORDER BY a.path",
            (embedder,),
        )
        return list(rows)

    def stale_snapshot_rows(self, embedder: str) -> list[int]:
        """Snapshot rows whose file is gone, changed, or has no current vector (ascending)."""
        rows = self.conn.execute(
            "SELECT s.row FROM snapshot s WHERE s.path IS NULL OR NOT EXISTS (SELECT 1 FROM "
            "adapters a JOIN embeddings e ON e.fingerprint = a.fingerprint AND e.embedder = ? "
            "AND e.doc_digest = a.doc_digest WHERE a.path = s.path AND a.record = s.record) "
            "ORDER BY s.row",
            (embedder,),
        )
        return [r for (r,) in rows]

    def count(self, table: str, where: str = "") -> int:
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table} {where}").fetchone()[0])

    def drop_orphan_embeddings(self) -> None:
        """Forget vectors of documents no file has any more (captions are kept: they are dear)."""
        self.conn.execute(
            "DELETE FROM embeddings WHERE NOT EXISTS (SELECT 1 FROM adapters a WHERE "
            "a.fingerprint = embeddings.fingerprint AND a.doc_digest = embeddings.doc_digest)"
        )

    def write_snapshot(self, rows: Iterable[tuple[int, int, str, bytes]], clusters) -> None:
        """Replace the published rows (row, cluster, record JSON, path) and the cluster table."""
        self.conn.execute("DELETE FROM snapshot")
        self.conn.executemany("INSERT INTO snapshot (row, cluster, record, path) VALUES "
                              "(?, ?, ?, ?)", rows)  # fmt: skip
        self.conn.execute("DELETE FROM clusters")
        self.conn.executemany("INSERT INTO clusters VALUES (?, ?, ?)", clusters)

    def patch_snapshot(
        self,
        dropped: Iterable[int],
        moved: Iterable[tuple[int, int]],
        added: Iterable[tuple[int, int, str, bytes]],
    ) -> None:
        """Edit the published rows in place: drop rows, renumber (from, to), add rows, and keep
        the cluster sizes in step (labels stay those of the last fit). Cost: the rows touched."""
        for row in dropped:
            gone = self.conn.execute("SELECT cluster FROM snapshot WHERE row=?", (row,)).fetchone()
            self.conn.execute("DELETE FROM snapshot WHERE row=?", (row,))
            self.conn.execute("UPDATE clusters SET size = size - 1 WHERE id=?", (gone[0],))
        self.conn.executemany(
            "UPDATE snapshot SET row=? WHERE row=?", ((to, src) for src, to in moved)
        )
        for row in added:
            self.conn.execute(
                "INSERT INTO snapshot (row, cluster, record, path) VALUES (?, ?, ?, ?)", row
            )
            self.conn.execute("UPDATE clusters SET size = size + 1 WHERE id=?", (row[1],))

    def read_snapshot(self) -> list[tuple[int, int, str]]:
        return list(self.conn.execute("SELECT row, cluster, record FROM snapshot ORDER BY row"))

    def read_clusters(self) -> list[tuple[int, str, int]]:
        return list(self.conn.execute("SELECT id, label, size FROM clusters ORDER BY id"))
