"""Publishing a snapshot: the faiss file and the snapshot rows readers see, switched atomically.

A full publish clusters (or re-uses the last fit's centroids), builds the IVF index and writes
every row. When the last fit still holds (fewer changes than the re-cluster fraction) and the
previous vector file is sound, only what changed is touched: new vectors join their nearest
cluster, vanished rows are filled by the last rows (row ids stay 0…N-1), labels stay those of
the fit. Either way the new vector file gets a new generation name and the catalog switches to it
in one transaction, so a reader sees the old snapshot or the new one, never a mix; a writer
killed before the commit leaves an orphan file that the next run deletes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from pixtention.curator import clusters as clustering
from pixtention.curator import keywords
from pixtention.curator.catalog import Catalog
from pixtention.curator.progress import Reporter
from pixtention.curator.store import (
    VECTORS_PREFIX,
    is_vectors_name,
    remove_stale_files,
    set_aside,
    vectors_name,
)

# Integer metadata the publisher reads; damage to any of them means "publish afresh".
INT_META = (
    "generation",
    "catalog_version",
    "snapshot_rows",
    "dim",
    "n_at_fit",
    "k_at_fit",
    "changes_since_fit",
)


def stat_key(path: Path) -> str:
    st = os.lstat(path)  # the file itself: a link standing there is not the snapshot
    return f"{st.st_size}:{st.st_mtime_ns}"


def repair_snapshot_meta(cat: Catalog, store: Path) -> str | None:
    """Reset damaged snapshot metadata (garbage numbers, a vector file name that is not one the
    store makes) so that the next publish starts afresh; returns the message, or None."""
    bad = [key for key in INT_META if cat.meta_int(key) is None]
    name = cat.get_meta("vectors_file")
    if name and not is_vectors_name(name):
        bad.append("vectors_file")
    if not bad:
        return None
    shown = ", ".join(f"{key}={cat.get_meta(key)[:40]!r}" for key in bad)
    taken = [
        int(entry.name[len(VECTORS_PREFIX) :].split(".")[0])
        for entry in store.iterdir()
        if is_vectors_name(entry.name)
    ]
    with cat.transaction():
        for key in INT_META:
            if cat.meta_int(key) is None:
                cat.set_meta(key, 0)
        cat.set_meta("generation", max([cat.meta_int("generation") or 0, *taken]))
        for key in ("vectors_file", "vectors_digest", "vectors_stat", "snapshot_version"):
            cat.set_meta(key, "")
        cat.set_meta("n_at_fit", 0)  # re-cluster: the last fit cannot be trusted either
        cat.bump_version()
    return f"catalog metadata was damaged ({shown}); publishing the snapshot afresh"


@dataclass(frozen=True)
class Patch:
    """How an incremental publish edits rows ``0…n_old-1`` into rows ``0…n_new-1``.

    ``dropped``: rows whose content goes away; ``moved``: (from, to) for last rows that fill the
    holes left when more rows vanish than arrive; ``placed``: the row each new item takes, in
    the order the items were given (holes first, then appended).
    """

    dropped: tuple[int, ...]
    moved: tuple[tuple[int, int], ...]
    placed: tuple[int, ...]
    n_new: int


def plan_patch(n_old: int, stale: list[int], n_fresh: int) -> Patch:
    """Keep row ids contiguous: new items fill stale rows, then surplus holes take the last rows."""
    holes = sorted(stale)
    placed = holes[:n_fresh] + list(range(n_old, n_old + max(0, n_fresh - len(holes))))
    surplus = holes[n_fresh:]
    n_new = n_old - len(surplus) + max(0, n_fresh - len(holes))
    gaps = set(surplus)
    movers = [r for r in range(n_new, n_old) if r not in gaps]
    targets = [h for h in surplus if h < n_new]
    return Patch(tuple(holes), tuple(zip(movers, targets)), tuple(placed), n_new)


def _vectors(blobs: list[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


class Publisher:
    """Turns the catalog's current adapters and vectors into the published snapshot."""

    def __init__(
        self,
        cat: Catalog,
        store: Path,
        embedder_id: str,
        reporter: Reporter,
        say: Callable[[str], None],
    ) -> None:
        self.cat, self.store, self.embedder_id = cat, store, embedder_id
        self.reporter, self.say = reporter, say

    def publish(self) -> tuple[bool, int]:
        """Publish if anything changed; returns (published, number of clusters)."""
        cat = self.cat
        if self._snapshot_usable():
            return False, len(cat.read_clusters())
        self.reporter.stage("publish", 3)
        previous = self._previous_index()  # None: re-cluster
        if previous is not None and not cat.count("snapshot", "WHERE path IS NULL"):
            k = self._incremental(previous)
        else:  # first publish, re-clustering, or rows written before they knew their file
            k = self._full(None if previous is None else clustering.centroids_of(previous))
        remove_stale_files(self.store, keep=cat.get_meta("vectors_file") or None)
        self.reporter.update(3, 3)
        return True, k

    def _snapshot_usable(self) -> bool:
        cat = self.cat
        if cat.get_meta("snapshot_version") != cat.get_meta("catalog_version", "0"):
            return False
        if cat.get_meta("snapshot_embedder") != self.embedder_id:
            return False
        name = cat.get_meta("vectors_file")
        if not name:
            return True
        if not is_vectors_name(name):
            return False  # repair_snapshot_meta said so; publish afresh
        path = self.store / name
        try:
            if stat_key(path) != cat.get_meta("vectors_stat"):  # unchanged files: no re-read
                rows, dim = cat.meta_int("snapshot_rows") or 0, cat.meta_int("dim") or 0
                clustering.read_index(path, rows, dim, cat.get_meta("vectors_digest"))
        except FileNotFoundError:
            self.say(f"vector file {name} is missing; rebuilding it")
            return False
        except ValueError as exc:
            self.say(set_aside(path, str(exc)))
            return False
        except OSError as exc:
            self.say(f"vector file {name} is unreadable ({exc.strerror or exc}); rebuilding it")
            return False
        return True

    def _previous_index(self) -> faiss.Index | None:
        """The last snapshot's index when its clusters still hold, else None (re-cluster)."""
        cat = self.cat
        name = cat.get_meta("vectors_file")
        if not is_vectors_name(name) or cat.get_meta("fit_embedder") != self.embedder_id:
            return None
        if cat.get_meta("snapshot_embedder") != self.embedder_id:
            return None
        n_now = cat.count("adapters")
        n_fit = cat.meta_int("n_at_fit") or 0
        k_fit = cat.meta_int("k_at_fit") or 0
        changes = cat.meta_int("changes_since_fit") or 0
        if clustering.needs_refit(n_now, n_fit, changes, k_fit):
            return None
        path = self.store / name
        try:
            digest = None  # an unchanged file is not hashed again (the refresh stays cheap)
            if stat_key(path) != cat.get_meta("vectors_stat"):
                digest = cat.get_meta("vectors_digest")
            return clustering.read_index(
                path, cat.meta_int("snapshot_rows") or 0, cat.meta_int("dim") or 0, digest
            )
        except (ValueError, OSError) as exc:
            self.say(f"previous vector file {name} is unusable ({exc}); re-clustering")
            return None

    def _incremental(self, index: faiss.Index) -> int:
        """Patch the previous snapshot with what changed; cost grows with the change only."""
        cat = self.cat
        stale = cat.stale_snapshot_rows(self.embedder_id)
        fresh = cat.unpublished_adapters(self.embedder_id)
        patch = plan_patch(index.ntotal, stale, len(fresh))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # ids may now come and go
        moved_vectors = [index.reconstruct(src) for src, _ in patch.moved]
        index.remove_ids(np.array(patch.dropped + tuple(s for s, _ in patch.moved), np.int64))
        new_vectors = _vectors([v for _, _, v in fresh], index.d)
        ids = np.array(patch.placed + tuple(t for _, t in patch.moved), np.int64)
        if len(ids):
            stacked = np.concatenate([new_vectors, np.reshape(moved_vectors, (-1, index.d))])
            index.add_with_ids(np.ascontiguousarray(stacked, dtype=np.float32), ids)
        index.set_direct_map_type(faiss.DirectMap.Array)  # rows 0…N-1 again: fast reconstruct
        assignment = clustering.assign(index, new_vectors)
        self.reporter.update(1, 3)
        name, digest = self._write(index)
        self.reporter.update(2, 3)
        added = [
            (row, int(c), record, path)
            for row, c, (path, record, _) in zip(patch.placed, assignment, fresh)
        ]
        with cat.transaction():
            cat.patch_snapshot(patch.dropped, patch.moved, added)
            self._commit(name, digest, patch.n_new, index.d, refit_k=None)
        return cat.count("clusters")

    def _full(self, centroids: np.ndarray | None) -> int:
        """Write every row; cluster anew unless the last fit's ``centroids`` are given."""
        cat = self.cat
        rows = cat.embedded_adapters(self.embedder_id)
        records = [json.loads(record) for _, record, _ in rows]
        if rows:
            vectors = _vectors([v for _, _, v in rows], len(rows[0][2]) // 4)
            refit = centroids is None
            if refit:
                centroids = clustering.fit_centroids(vectors, clustering.choose_k(len(rows)))
            index = clustering.build_index(vectors, centroids)
            assignment = clustering.assign(index, vectors)
            self.reporter.update(1, 3)
            name, digest = self._write(index)
            dim = index.d
        else:
            refit, centroids, assignment = True, np.zeros((0, 0), "f4"), []
            name = digest = ""
            dim = 0
        self.reporter.update(2, 3)
        k = len(centroids)
        texts = [clustering.cluster_text(r["fields"]) for r in records]
        labels = clustering.label_clusters(texts, np.asarray(assignment), k)
        sizes = np.bincount(np.asarray(assignment, dtype=np.int64), minlength=k) if k else []
        out = [
            (i, int(c), record, path)
            for i, ((path, record, _), c) in enumerate(zip(rows, assignment))
        ]
        with cat.transaction():
            cat.write_snapshot(out, [(c, labels[c], int(sizes[c])) for c in range(k)])
            self._commit(name, digest, len(records), dim, refit_k=k if refit else None)
        return k

    def _write(self, index: faiss.Index) -> tuple[str, str]:
        name = vectors_name((self.cat.meta_int("generation") or 0) + 1)
        return name, clustering.write_index(index, self.store / name)

    def _commit(self, name: str, digest: str, rows: int, dim: int, refit_k: int | None) -> None:
        """Point the catalog at the new snapshot (inside the publishing transaction)."""
        cat = self.cat
        cat.drop_orphan_embeddings()
        keywords.publish(cat)
        for key, value in (
            ("generation", (cat.meta_int("generation") or 0) + 1),
            ("vectors_file", name),
            ("vectors_digest", digest),
            ("vectors_stat", stat_key(self.store / name) if name else ""),
            ("snapshot_rows", rows),
            ("snapshot_embedder", self.embedder_id),
            ("snapshot_version", cat.get_meta("catalog_version", "0")),
            ("dim", dim),
        ):
            cat.set_meta(key, value)
        if refit_k is not None:
            cat.set_meta("n_at_fit", rows)
            cat.set_meta("k_at_fit", refit_k)
            cat.set_meta("changes_since_fit", 0)
            cat.set_meta("fit_embedder", self.embedder_id)
