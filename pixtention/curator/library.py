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
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from pixtention.curator import clusters as clustering
from pixtention.curator.catalog import Catalog, is_corruption
from pixtention.curator.documents import document_digest
from pixtention.curator.embedder import Embedder, EmbedderError, make_embedder
from pixtention.curator.precision import autocast_cpu, native_dtype
from pixtention.curator.records import AdapterRecord
from pixtention.curator.serial import record_from_json
from pixtention.curator.store import CATALOG_NAME, StoreError, resolve_store_dir

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
    name, dim = meta["vectors_file"], int(meta["dim"])
    path = store / name
    try:
        clustering.verify_file(path, meta["vectors_digest"])
        return clustering.read_index(path, len(records), dim), []
    except FileNotFoundError:
        if may_retry:
            raise
        message = f"vector file {path} is missing; using vectors from the catalog"
    except (ValueError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        message = f"vector file {path} is unusable ({reason}); using vectors from the catalog"
    log.warning(message)
    blobs = []
    for r in records:
        row = cat.conn.execute(
            "SELECT vector FROM embeddings WHERE fingerprint=? AND embedder=? AND doc_digest=?",
            (r.fingerprint, meta["snapshot_embedder"], document_digest(r.document)),
        ).fetchone()
        if row is None:
            raise StoreError(f"{message}, but some are missing: run the indexer again")
        blobs.append(row[0])
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(records), dim)
    assignment = np.array([r.cluster for r in records])
    centroids = np.zeros((max(n_labels, 1), dim), np.float32)
    np.add.at(centroids, assignment, vectors)
    empty = np.linalg.norm(centroids, axis=1) < 1e-12
    centroids[empty, 0] = 1.0  # an empty cluster keeps a valid unit centre
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return clustering.build_index(vectors, centroids), [message]


def open_library(
    store_dir: str | os.PathLike[str] | None = None, *, embedder: Embedder | str | None = None
) -> Library:
    """Open the last published snapshot of a store (no lock; safe while an indexer runs)."""
    store = resolve_store_dir(store_dir)
    path = store / CATALOG_NAME
    if not path.exists():
        raise StoreError(f"no index at {store}: run `python -m pixtention index FOLDER` first")
    the_embedder = None if embedder is None else make_embedder(embedder)
    for attempt in (1, 2):
        try:
            cat = Catalog(path)
            try:
                with cat.reading() as conn:
                    meta = dict(conn.execute("SELECT key, value FROM meta"))
                    labels = [label for _, label, _ in cat.read_clusters()]
                    records = [
                        record_from_json(text, id=row, cluster=c, cluster_label=labels[c])
                        for row, c, text in cat.read_snapshot()
                    ]
                    if not records or not meta.get("vectors_file"):
                        return Library((), None, [], meta.get("snapshot_embedder", ""),
                                       the_embedder, store=store)  # fmt: skip
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
            raise
        return Library(
            records,
            index,
            labels,
            meta["snapshot_embedder"],
            the_embedder,
            store=store,
            messages=messages,
        )
    raise StoreError(f"the index at {store} keeps changing under the reader; try again")
