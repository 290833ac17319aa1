"""Incremental publishing: a few added, changed or removed files patch the snapshot in place.

The reference for every patched snapshot is what a reader must be able to rely on: row ``i`` of
the records is row ``i`` of the vectors and embeds from that record's own document, each row's
cluster is its nearest centroid, and files on disk are exactly the records.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixtention.curator import index_folder, open_library
from pixtention.curator.catalog import Catalog
from pixtention.curator.publish import plan_patch
from pixtention.curator.store import CATALOG_NAME
from tests.test_curator_crash import killed_at
from tests.test_curator_fixtures import HashEmbedder, write_lora, write_themed_library


def run(folder, store, emb):
    return index_folder(folder, store, captions=False, embedder=emb)


def meta(store, key):
    cat = Catalog(store / CATALOG_NAME)
    try:
        return cat.get_meta(key)
    finally:
        cat.close()


def table_sizes(store) -> list[int]:
    cat = Catalog(store / CATALOG_NAME)
    try:
        return [size for _, _, size in cat.read_clusters()]
    finally:
        cat.close()


def assert_coherent(lib, emb, folder):
    """The reader's contract, checked against the documents and the files themselves."""
    assert {r.path for r in lib.records} == {str(p) for p in folder.rglob("*.safetensors")}
    assert [r.id for r in lib.records] == list(range(len(lib)))
    expected = emb.embed([r.document for r in lib.records])
    np.testing.assert_allclose(lib.vectors, expected, atol=1e-6)
    nearest = np.argmax(lib.vectors @ lib.centroids.T, axis=1)
    assert [r.cluster for r in lib.records] == nearest.tolist()
    assert lib.cluster_sizes == np.bincount(nearest, minlength=len(lib.centroids)).tolist()
    sizes = {label: size for label, size in zip(lib.cluster_labels, lib.cluster_sizes)}
    assert sum(sizes.values()) == len(lib)


@pytest.fixture
def indexed(tmp_path):
    folder = tmp_path / "Lora"
    write_themed_library(folder, per_theme=15)  # 60 adapters → several clusters
    store, emb = tmp_path / "s", HashEmbedder()
    run(folder, store, emb)
    return folder, store, emb, open_library(store, embedder=emb)


def test_one_new_file_joins_its_cluster_without_refitting(indexed):
    folder, store, emb, before = indexed
    fit = meta(store, "n_at_fit")
    new = write_lora(folder / "cats" / "one_more_cat.safetensors", seed=500)
    report = run(folder, store, emb)
    assert report.new == 1 and report.published
    lib = open_library(store, embedder=emb)
    assert len(lib) == len(before) + 1 == lib._index.ntotal
    assert meta(store, "n_at_fit") == fit  # no re-clustering
    np.testing.assert_array_equal(lib.centroids, before.centroids)
    assert lib.cluster_labels == before.cluster_labels
    old = {r.path: r.cluster for r in before.records}
    assert {r.path: r.cluster for r in lib.records if r.path in old} == old
    found = lib.find("one_more_cat")
    assert found is not None and found.path == str(new) and found.id == len(before)
    _, ids = lib.search(lib.embed([found.document]), 1, 1)
    assert ids[0, 0] == found.id
    assert_coherent(lib, emb, folder)
    assert table_sizes(store) == lib.cluster_sizes  # what `clusters` would list
    assert len(list(store.glob("vectors-*.faiss"))) == 1


def test_removed_files_leave_search_and_rows_stay_contiguous(indexed):
    folder, store, emb, before = indexed
    gone = [before.records[3], before.records[20]]  # not the last rows: rows must move
    for record in gone:
        Path(record.path).unlink()
    report = run(folder, store, emb)
    assert report.removed == 2 and report.published
    lib = open_library(store, embedder=emb)
    assert len(lib) == len(before) - 2 == lib._index.ntotal
    for record in gone:
        assert lib.find(record.path) is None
        _, ids = lib.search(lib.embed([record.document]), len(lib), len(lib.centroids))
        assert record.path not in {lib.records[i].path for i in ids[0] if i >= 0}
    # the last rows filled the holes (rows 3 and 20), every other row kept its id
    assert [lib.records[i].path for i in (3, 20)] == [r.path for r in before.records[-2:]]
    assert all(
        lib.records[i].path == before.records[i].path for i in range(len(lib)) if i not in (3, 20)
    )
    old = {r.path: r.cluster for r in before.records}
    assert all(r.cluster == old[r.path] for r in lib.records)
    assert_coherent(lib, emb, folder)
    assert table_sizes(store) == lib.cluster_sizes


def test_add_change_move_and_remove_in_one_refresh(indexed):
    folder, store, emb, before = indexed
    records = before.records
    Path(records[0].path).unlink()
    shutil.move(records[1].path, folder / "moved_here.safetensors")
    write_lora(Path(records[2].path), seed=900, metadata={"ss_output_name": "renewed"})
    write_lora(folder / "armor" / "extra_armor.safetensors", seed=901)
    report = run(folder, store, emb)
    assert (report.new, report.changed, report.moved, report.removed) == (1, 1, 1, 2)
    lib = open_library(store, embedder=emb)
    assert len(lib) == len(before) and meta(store, "n_at_fit") == str(len(before))
    assert lib.find("moved_here").fingerprint == records[1].fingerprint
    assert lib.find(records[2].path).fingerprint != records[2].fingerprint
    assert_coherent(lib, emb, folder)


def test_many_small_refreshes_stay_coherent_until_the_refit(indexed):
    folder, store, emb, before = indexed
    for i in range(4):
        write_lora(folder / "more" / f"extra_{i}.safetensors", seed=700 + i)
        Path(before.records[10 * i].path).unlink()
        run(folder, store, emb)
        lib = open_library(store, embedder=emb)
        assert len(lib) == len(before)
        assert_coherent(lib, emb, folder)
    assert meta(store, "changes_since_fit") == "8" and meta(store, "n_at_fit") == "60"
    for i in range(6):  # 14 changes > 20 % of 60: re-cluster
        write_lora(folder / "more" / f"late_{i}.safetensors", seed=800 + i)
    run(folder, store, emb)
    assert meta(store, "changes_since_fit") == "0" and meta(store, "n_at_fit") == "66"
    assert_coherent(open_library(store, embedder=emb), emb, folder)


def test_snapshot_rows_without_paths_get_a_full_publish(indexed):
    """Stores written by schema 1 have no path in their rows: the next publish rewrites all."""
    folder, store, emb, before = indexed
    conn = sqlite3.connect(store / CATALOG_NAME)
    conn.execute("UPDATE snapshot SET path = NULL")
    conn.commit()
    conn.close()
    write_lora(folder / "cats" / "late_cat.safetensors", seed=501)
    run(folder, store, emb)
    lib = open_library(store, embedder=emb)
    assert len(lib) == len(before) + 1
    np.testing.assert_array_equal(lib.centroids, before.centroids)  # the fit still holds
    assert_coherent(lib, emb, folder)


@pytest.mark.parametrize("at", [1, 2])
def test_killed_during_an_incremental_publish_keeps_the_last_snapshot(indexed, at):
    folder, store, emb, before = indexed
    write_lora(folder / "cats" / "one_more_cat.safetensors", seed=500)
    Path(before.records[7].path).unlink()
    killed_at(folder, store, "publish", at)  # 1: before the vector file; 2: before commit
    lib = open_library(store, embedder=emb)
    assert [r.path for r in lib.records] == [r.path for r in before.records]
    np.testing.assert_array_equal(lib.vectors, before.vectors)
    report = run(folder, store, emb)
    assert report.published and report.unchanged == len(before)  # read work was kept
    lib = open_library(store, embedder=emb)
    assert len(lib) == len(before) and lib.find("one_more_cat") is not None
    assert_coherent(lib, emb, folder)
    assert len(list(store.glob("vectors-*.faiss"))) == 1 and not list(store.glob(".*.tmp"))


def apply_as_list(rows: list, stale: list[int], fresh: list) -> list:
    """Reference: what the patched table must hold, simulated on a Python list."""
    out = list(rows)
    patch = plan_patch(len(rows), stale, len(fresh))
    out += [None] * max(0, max(patch.placed, default=-1) + 1 - len(out))
    for src, dst in patch.moved:
        out[dst] = out[src]
    for row, item in zip(patch.placed, fresh):
        out[row] = item
    return out[: patch.n_new]


@given(
    st.integers(0, 40).flatmap(
        lambda n: st.tuples(
            st.just(n), st.sets(st.integers(0, max(n - 1, 0)), max_size=n), st.integers(0, 12)
        )
    )
)
def test_plan_patch_keeps_every_live_row_and_ids_contiguous(case):
    n, stale, n_fresh = case
    stale = sorted(s for s in stale if s < n)
    rows = [("old", i) for i in range(n)]
    fresh = [("new", j) for j in range(n_fresh)]
    out = apply_as_list(rows, stale, fresh)
    live = [r for i, r in enumerate(rows) if i not in set(stale)]
    assert len(out) == n - len(stale) + n_fresh
    assert sorted(out) == sorted(live + fresh)  # nothing lost, nothing duplicated
    kept_in_place = [
        i for i in range(min(n, len(out))) if i not in set(stale) and out[i] == rows[i]
    ]
    moved = len(live) - len(kept_in_place)
    assert moved <= max(0, len(stale) - n_fresh)  # only holes that new items cannot fill move rows
