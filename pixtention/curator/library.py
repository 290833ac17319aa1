"""The read side of the index: records, vectors, clusters and search, without the writer lock.

A :class:`Library` is one consistent snapshot: the records and the vector file named by the
same committed catalog transaction. Row ``i`` of :attr:`Library.records` is row ``i`` of
:attr:`Library.vectors` and id ``i`` in :meth:`Library.search` results.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from pixtention.curator import clusters as clustering
from pixtention.curator.catalog import Catalog
from pixtention.curator.catalog_file import check_for_reader, is_corruption
from pixtention.curator.documents import document_digest
from pixtention.curator.embedder import Embedder, EmbedderError, make_embedder
from pixtention.curator.precision import autocast_cpu, native_dtype
from pixtention.curator.records import AdapterRecord
from pixtention.curator.serial import record_from_json
from pixtention.curator.store import (
    CATALOG_NAME,
    StoreError,
    file_identity,
    is_vectors_name,
    resolve_store_dir,
    vectors_path,
)

log = logging.getLogger("pixtention.curator")
if not log.handlers:  # the host (CLI, WebUI) decides where messages go
    log.addHandler(logging.NullHandler())


class Library:
    """An indexed adapter library, searchable cluster-first in one faiss call."""

    def __init__(
        self,
        records: Sequence[AdapterRecord],
        index: faiss.Index | None,
        cluster_labels: Sequence[str],
        embedder_id: str,
        embedder: Embedder | None = None,
        *,
        store: Path | None = None,
        messages: Sequence[str] = (),
    ) -> None:
        self._records = tuple(records)
        self._index = index
        self._labels = list(cluster_labels)
        self._embedder_id = embedder_id
        self._embedder = embedder
        self.store = store
        self.messages = tuple(messages)
        self._vectors: np.ndarray | None = None
        self._by_key: dict[str, AdapterRecord] | None = None
        self._state: tuple | None = None  # the store snapshot it was opened from, if any

    @classmethod
    def from_records(
        cls,
        records: Sequence[AdapterRecord],
        vectors: np.ndarray,
        embedder: Embedder | str | None = None,
        *,
        k: int | None = None,
    ) -> Library:
        """Cluster ``vectors`` (one row per record, any scale) in memory; ids become row numbers."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(records) != len(vectors):
            raise ValueError(f"{len(records)} records but {len(vectors)} vectors")
        the_embedder = embedder if embedder is None else make_embedder(embedder)
        embedder_id = the_embedder.id if the_embedder is not None else ""
        if not len(records):
            return cls((), None, [], embedder_id, the_embedder)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
        centroids = clustering.fit_centroids(vectors, k or clustering.choose_k(len(records)))
        index = clustering.build_index(vectors, centroids)
        assignment = clustering.assign(index, vectors)
        texts = [clustering.cluster_text(r.fields) for r in records]
        labels = clustering.label_clusters(texts, assignment, len(centroids))
        rows = [
            dataclasses.replace(r, id=i, cluster=int(c), cluster_label=labels[int(c)])
            for i, (r, c) in enumerate(zip(records, assignment))
        ]
        library = cls(rows, index, labels, embedder_id, the_embedder)
        library._vectors = vectors
        return library

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> Sequence[AdapterRecord]:
        return self._records

    @property
    def vectors(self) -> np.ndarray:
        """(N, d) float32, unit rows; row i belongs to ``records[i]``."""
        if self._vectors is None:
            self._vectors = (
                clustering.vectors_of(self._index)
                if self._index is not None
                else np.zeros((0, 0), np.float32)
            )
        return self._vectors

    @property
    def centroids(self) -> np.ndarray:
        """(C, d) unit-norm cluster centres (the IVF coarse quantizer)."""
        if self._index is None:
            return np.zeros((0, 0), np.float32)
        return clustering.centroids_of(self._index)

    @property
    def cluster_labels(self) -> list[str]:
        return list(self._labels)

    @property
    def cluster_sizes(self) -> list[int]:
        sizes = [0] * len(self._labels)
        for r in self._records:
            sizes[r.cluster] += 1
        return sizes

    @property
    def embedder_id(self) -> str:
        return self._embedder_id

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed with the model the index was built with; never mixes vector spaces."""
        if self._embedder is None:
            if not self._embedder_id:
                raise EmbedderError("this library has no vectors, so it has no embedder")
            self._embedder = make_embedder(self._embedder_id)
        if self._embedder.id != self._embedder_id:
            raise EmbedderError(
                f"the index was built with embedder {self._embedder_id!r} but "
                f"{self._embedder.id!r} is configured; re-index to switch embedders"
            )
        with autocast_cpu(native_dtype(self._embedder)):
            return self._embedder.embed(list(texts))

    def search(self, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` adapters per query row among the ``nprobe`` nearest clusters.

        Returns (scores, ids), each (n_queries, k); missing results have id -1, score -inf.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self._index is None or k <= 0:
            n = len(queries)
            return np.full((n, max(k, 0)), -np.inf, np.float32), np.full((n, max(k, 0)), -1)
        nlist = faiss.extract_index_ivf(self._index).nlist
        params = faiss.SearchParametersIVF(nprobe=max(1, min(int(nprobe), nlist)))
        scores, ids = self._index.search(queries, int(k), params=params)
        scores[ids < 0] = -np.inf
        return scores, ids

    def find(self, name_or_hash: str) -> AdapterRecord | None:
        """An adapter by file stem, title, short hash (AutoV2), fingerprint or path."""
        if self._by_key is None:
            keys: dict[str, AdapterRecord] = {}
            for r in reversed(self._records):  # first record wins on duplicate keys
                for key in (r.path, r.fingerprint, r.short_hash, r.title, r.name):
                    if key:
                        keys[key.lower()] = r
            self._by_key = keys
        return self._by_key.get(name_or_hash.strip().lower())


def _meta_number(meta: dict[str, str], key: str, path: Path) -> int:
    try:
        return int(meta.get(key, "0") or 0)
    except ValueError:
        raise StoreError(
            f"catalog {path} is damaged (its {key} is {meta[key][:40]!r}); run "
            "`python -m pixtention index FOLDER` to repair it"
        ) from None


def _load_vectors(
    store: Path,
    cat: Catalog,
    meta: dict[str, str],
    records: list[AdapterRecord],
    n_labels: int,
    may_retry: bool,
) -> tuple[faiss.Index, list[str]]:
    """The snapshot's faiss index; rebuilt in memory from cached vectors if its file is bad.

    A missing file on the first try means a writer just replaced the snapshot (raise, so the
    caller reads the catalog again); otherwise the catalog's vectors and cluster assignments
    rebuild exactly the same snapshot.
    """
    path = vectors_path(store, meta["vectors_file"])
    dim = _meta_number(meta, "dim", cat.path)
    try:
        return clustering.read_index(path, len(records), dim, meta.get("vectors_digest", "")), []
    except FileNotFoundError:
        if may_retry:
            raise
        message = f"vector file {path} is missing; using vectors from the catalog"
    except (ValueError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        message = f"vector file {path} is unusable ({reason}); using vectors from the catalog"
    log.warning(message)
    damaged = f"{message}, but the catalog is damaged: run the indexer again"
    if not 0 < dim <= 65536 or any(not 0 <= r.cluster < max(n_labels, 1) for r in records):
        raise StoreError(damaged)
    blobs = []
    for r in records:
        row = cat.conn.execute(
            "SELECT vector FROM embeddings WHERE fingerprint=? AND embedder=? AND doc_digest=?",
            (r.fingerprint, meta["snapshot_embedder"], document_digest(r.document)),
        ).fetchone()
        if row is None:
            raise StoreError(f"{message}, but some are missing: run the indexer again")
        if not isinstance(row[0], bytes) or len(row[0]) != dim * 4:
            raise StoreError(damaged)
        blobs.append(row[0])
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(records), dim)
    if not np.isfinite(vectors).all():
        raise StoreError(damaged)
    assignment = np.array([r.cluster for r in records])
    centroids = np.zeros((max(n_labels, 1), dim), np.float32)
    np.add.at(centroids, assignment, vectors)
    empty = np.linalg.norm(centroids, axis=1) < 1e-12
    centroids[empty, 0] = 1.0  # an empty cluster keeps a valid unit centre
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return clustering.build_index(vectors, centroids), [message]


# Libraries already open, per store and embedder, while someone holds them: fifty concurrent
# first requests (a WebUI starting, a status poll after every index run) open the store once.
_OPEN: weakref.WeakValueDictionary[tuple, Library] = weakref.WeakValueDictionary()
_OPEN_LOCKS: dict[tuple, threading.Lock] = {}
_OPEN_GUARD = threading.Lock()
_STATE_KEYS = ("store_id", "generation", "vectors_file", "vectors_digest", "snapshot_rows")


def _snapshot_state(path: Path, meta: dict[str, str]) -> tuple:
    """What identifies a published snapshot: the catalog file, its snapshot metadata and the
    vector file as it is on disk (a damaged or replaced file is read again)."""
    info = os.stat(path)
    name = meta.get("vectors_file", "")
    vectors = file_identity(path.parent / name) if is_vectors_name(name) else ""
    return (info.st_dev, info.st_ino, vectors, *(meta.get(key, "") for key in _STATE_KEYS))


def _current_state(path: Path) -> tuple | None:
    """The snapshot state now (one small read-only query), or None if it cannot be read."""
    try:
        cat = Catalog(path, readonly=True)
    except (StoreError, sqlite3.Error, OSError):
        return None
    try:
        marks = ",".join("?" * len(_STATE_KEYS))
        meta = dict(cat.conn.execute(f"SELECT key, value FROM meta WHERE key IN ({marks})",
                                     _STATE_KEYS))  # fmt: skip
        return _snapshot_state(path, meta)
    except (sqlite3.Error, OSError):
        return None
    finally:
        cat.close()


def _embedder_key(embedder: Embedder | str | None) -> tuple:
    if embedder is None or isinstance(embedder, str):
        return ("id", embedder)
    return ("object", id(embedder))  # the cached library holds it, so the id stays its own


def open_library(
    store_dir: str | os.PathLike[str] | None = None, *, embedder: Embedder | str | None = None
) -> Library:
    """Open the last published snapshot of a store (no lock; safe while an indexer runs).

    Never writes the store. Concurrent and repeated calls for a snapshot that has not changed
    share one :class:`Library` (opened once, kept while anyone holds it).
    """
    store = resolve_store_dir(store_dir)
    key = (os.path.realpath(store), _embedder_key(embedder))
    with _OPEN_GUARD:
        lock = _OPEN_LOCKS.setdefault(key, threading.Lock())
    with lock:
        cached = _OPEN.get(key)
        unchanged = cached is not None and cached._state is not None
        if unchanged and _current_state(store / CATALOG_NAME) == cached._state:
            return cached
        library = _open_uncached(store, embedder)
        if library._state is not None:
            _OPEN[key] = library
        return library


def _open_uncached(store: Path, embedder: Embedder | str | None) -> Library:
    path = store / CATALOG_NAME
    check_for_reader(path)
    the_embedder = None if embedder is None else make_embedder(embedder)
    for attempt in (1, 2):
        try:
            cat = Catalog(path, readonly=True)
            try:
                with cat.reading() as conn:
                    meta = dict(conn.execute("SELECT key, value FROM meta"))
                    state = _snapshot_state(path, meta)
                    labels = [label for _, label, _ in cat.read_clusters()]
                    records = _snapshot_records(cat, labels)
                    if not records or not meta.get("vectors_file"):
                        library = Library((), None, [], meta.get("snapshot_embedder", ""),
                                          the_embedder, store=store)  # fmt: skip
                        library._state = state
                        return library
                    try:
                        index, messages = _load_vectors(
                            store, cat, meta, records, len(labels), attempt == 1
                        )
                    except FileNotFoundError:
                        continue  # a writer replaced the snapshot meanwhile: read again
            finally:
                cat.close()
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise StoreError(
                    f"catalog {path} is corrupt ({exc}); run `python -m pixtention index FOLDER`"
                    " to set it aside and rebuild"
                ) from exc
            raise StoreError(f"cannot read the catalog {path}: {exc}") from exc
        library = Library(
            records,
            index,
            labels,
            meta.get("snapshot_embedder", ""),
            the_embedder,
            store=store,
            messages=messages,
        )
        library._state = state
        return library
    raise StoreError(f"the index at {store} keeps changing under the reader; try again")


def _snapshot_records(cat: Catalog, labels: list[str]) -> list[AdapterRecord]:
    """The published rows; a row naming a cluster that does not exist is damage, said so."""
    records = []
    for row, c, text in cat.read_snapshot():
        if not 0 <= c < len(labels):
            raise StoreError(
                f"catalog {cat.path} is damaged (row {row} names cluster {c}); run "
                "`python -m pixtention index FOLDER` to repair it"
            )
        try:
            records.append(record_from_json(text, id=row, cluster=c, cluster_label=labels[c]))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise StoreError(
                f"catalog {cat.path} is damaged (row {row}: {type(exc).__name__}); run "
                "`python -m pixtention index FOLDER` to repair it"
            ) from None
    return records
