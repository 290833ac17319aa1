"""Indexer and Library: reconciliation, problem files, odd folders, locking, cancellation."""

from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pytest
from safetensors.torch import save_file

from pixtention.curator import index_folder, open_library
from pixtention.curator.clusters import choose_k
from pixtention.curator.embedder import EmbedderError
from pixtention.curator.library import Library
from pixtention.curator.store import CATALOG_NAME, StoreBusy, StoreError, writer_lock
from tests.test_curator_fixtures import (
    HashEmbedder,
    civitai_info,
    write_lora,
    write_themed_library,
)


@pytest.fixture
def lib_dir(tmp_path):
    folder = tmp_path / "Lora"
    write_themed_library(folder)
    return folder


def run(folder, store, **kw):
    kw.setdefault("embedder", HashEmbedder())
    kw.setdefault("captions", False)
    return index_folder(folder, store, **kw)


class RecordingCaptioner:
    """Stands in for a VLM: remembers which preview files it was asked to caption."""

    id = "test-recording"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def caption(self, images):
        self.seen.extend(images)
        return ["a picture" if os.path.isfile(p) else "" for p in images]


def names(lib) -> set[str]:
    return {r.name for r in lib.records}


def test_index_then_search_finds_the_theme(lib_dir, tmp_path):
    emb = HashEmbedder()
    report = run(lib_dir, tmp_path / "s", embedder=emb)
    assert (report.new, report.adapters, report.problems) == (12, 12, ())
    lib = open_library(tmp_path / "s", embedder=emb)
    assert len(lib) == 12 and lib.vectors.shape == (12, emb.dim)
    assert [r.id for r in lib.records] == list(range(12))
    # row i of records is row i of vectors: each record's own document embeds to its row
    np.testing.assert_allclose(lib.embed([lib.records[5].document])[0], lib.vectors[5], atol=1e-6)
    scores, ids = lib.search(lib.embed(["neon cyberpunk city streets"]), 3, 1)
    assert all("cyberpunk" in lib.records[i].path for i in ids[0])
    assert scores[0, 0] >= scores[0, 1] >= scores[0, 2]
    assert lib.find("neon_cyberpunk_city").title == "Neon Cyberpunk City"
    assert lib.find("NEON CYBERPUNK CITY") is not None and lib.find("nope") is None


def test_no_change_refresh_reads_nothing(lib_dir, tmp_path):
    emb = HashEmbedder()
    run(lib_dir, tmp_path / "s", embedder=emb)
    calls = emb.calls
    report = run(lib_dir, tmp_path / "s", embedder=emb)
    assert (report.unchanged, report.new, report.published) == (12, 0, False)
    assert emb.calls == calls


def test_reconciliation_new_changed_moved_removed(lib_dir, tmp_path):
    store = tmp_path / "s"
    run(lib_dir, store)
    files = sorted(lib_dir.rglob("*.safetensors"))
    # removed
    files[0].unlink()
    # moved (with its sidecar) to another folder
    moved = files[1]
    (lib_dir / "elsewhere").mkdir()
    for p in moved.parent.glob(moved.name[: -len(".safetensors")] + ".*"):
        shutil.move(p, lib_dir / "elsewhere" / p.name)
    # changed: metadata edit in the sidecar is noticed even though the file is untouched
    edited = files[2]
    sidecar = edited.with_name(edited.name[: -len(".safetensors")] + ".civitai.info")
    sidecar.write_text(__import__("json").dumps(civitai_info("Renamed Title", ["word"], ["new"])))
    # new
    write_lora(lib_dir / "fresh" / "brand_new.safetensors", seed=999)
    report = run(lib_dir, store)
    assert (report.removed, report.moved, report.changed, report.new) == (2, 1, 1, 1)
    lib = open_library(store)
    assert len(lib) == 12
    assert "brand_new" in names(lib) and files[0].name[:-12] not in names(lib)
    assert lib.find("Renamed Title") is not None
    assert any("elsewhere" in r.path for r in lib.records)


def test_problem_files_are_recorded_and_the_rest_indexed(lib_dir, tmp_path):
    (lib_dir / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (lib_dir / "old.pt").write_bytes(b"\x80\x02}q\x00.")
    import torch

    save_file({"model.diffusion_model.x.weight": torch.zeros(2, 2)},
              str(lib_dir / "checkpoint.safetensors"))  # fmt: skip
    os.symlink(lib_dir / "missing.safetensors", lib_dir / "dangling.safetensors")
    os.mkfifo(lib_dir / "pipe.safetensors")
    report = run(lib_dir, tmp_path / "s")
    problems = dict((os.path.basename(p), e) for p, e in report.problems)
    assert set(problems) == {"broken.safetensors", "old.pt", "checkpoint.safetensors",
                             "dangling.safetensors", "pipe.safetensors"}  # fmt: skip
    assert "pickle" in problems["old.pt"]
    assert "not a LoRA" in problems["checkpoint.safetensors"]
    assert "symbolic link" in problems["dangling.safetensors"]
    assert all(e and "\n" not in e for e in problems.values())
    assert report.adapters == 12 and len(open_library(tmp_path / "s")) == 12


def test_empty_folder_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    report = run(tmp_path / "empty", tmp_path / "s")
    assert report.adapters == 0
    lib = open_library(tmp_path / "s")
    assert len(lib) == 0
    scores, ids = lib.search(np.ones((2, 8), np.float32), 3, 2)
    assert ids.shape == (2, 3) and (ids == -1).all()
    with pytest.raises(StoreError, match="does not exist"):
        run(tmp_path / "gone", tmp_path / "s")
    with pytest.raises(StoreError, match="no index"):
        open_library(tmp_path / "never")


def test_folder_removed_after_indexing_keeps_the_index_until_refreshed(lib_dir, tmp_path):
    run(lib_dir, tmp_path / "s")
    shutil.rmtree(lib_dir)
    with pytest.raises(StoreError, match="index is unchanged"):
        run(lib_dir, tmp_path / "s")
    assert len(open_library(tmp_path / "s")) == 12


def test_symlink_loops_are_walked_once(tmp_path):
    folder = tmp_path / "Lora"
    write_lora(folder / "plain.safetensors", seed=1)
    write_lora(folder / "sub" / "deeper.safetensors", seed=2)
    os.symlink(folder, folder / "sub" / "loop")  # folder → sub → loop → folder …
    os.symlink(folder / "sub", folder / "sub" / "again")
    report = run(folder, tmp_path / "s")
    assert report.problems == () and report.adapters == 2 and report.files == 2


def test_non_utf8_names_are_indexed_and_refreshed(tmp_path):
    folder = tmp_path / "Lora"
    write_lora(folder / "plain.safetensors", seed=1)
    src = write_lora(folder / "tmp.safetensors", seed=2, preview=True)
    odd_dir = os.path.join(os.fsencode(folder), b"d\xe9j\xe0")
    os.mkdir(odd_dir)
    odd = os.path.join(odd_dir, b"caf\xe9_\xff.safetensors")
    os.rename(os.fsencode(src), odd)
    os.rename(os.fsencode(folder / "tmp.preview.png"), odd[: -len(b".safetensors")] + b".png")
    captioner = RecordingCaptioner()
    report = run(folder, tmp_path / "s", captions=True, captioner=captioner)
    assert report.problems == () and report.adapters == 2
    assert captioner.seen == [os.fsdecode(odd[: -len(b".safetensors")] + b".png")]
    lib = open_library(tmp_path / "s")
    record = lib.find(os.fsdecode(odd))
    assert record.fields["caption"] == "a picture"
    assert record is not None and os.path.exists(record.path)
    assert record.name == os.fsdecode(b"caf\xe9_\xff")  # exact, for <lora:name> tags
    assert run(folder, tmp_path / "s").unchanged == 2  # the odd names compare equal next time


@pytest.mark.slow
def test_ten_thousand_identical_names_in_subfolders(tmp_path, monkeypatch):
    folder = tmp_path / "Lora"
    first = write_lora(folder / "d0" / "model.safetensors")
    for i in range(1, 10_000):
        (folder / f"d{i}").mkdir()
        os.link(first, folder / f"d{i}" / "model.safetensors")
    report = run(folder, tmp_path / "s")
    assert report.adapters == 10_000 and report.problems == ()
    lib = open_library(tmp_path / "s")
    assert len({r.path for r in lib.records}) == 10_000
    assert len({r.fingerprint for r in lib.records}) == 1  # identical files share a fingerprint
    import pixtention.library as library

    reads = []
    real_read = library.read_adapter
    monkeypatch.setattr(
        library, "read_adapter", lambda *a, **k: reads.append(a) or real_read(*a, **k)
    )
    again = run(folder, tmp_path / "s")
    assert again.unchanged == 10_000 and not again.published
    assert reads == []  # a no-change refresh stats files and reads no header (speed: bench)


def test_a_second_indexer_waits_or_exits(lib_dir, tmp_path):
    store = tmp_path / "s"
    run(lib_dir, store)
    with writer_lock(store):
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()}"):
            run(lib_dir, store, wait=False)
        assert len(open_library(store)) == 12  # readers never need the lock
        stages = []
        waiter = threading.Thread(
            target=lambda: stages.append(run(lib_dir, store, progress=lambda p: stages.append(p)))
        )
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive() and stages and stages[0].stage == "waiting"
    waiter.join(10)
    assert not waiter.is_alive() and stages[-1].unchanged == 12


def test_progress_and_cancellation_keep_work(lib_dir, tmp_path):
    seen = []
    cancel = threading.Event()

    def progress(p):
        seen.append(p)
        if p.stage == "embed":
            cancel.set()

    report = run(lib_dir, tmp_path / "s", progress=progress, cancel=cancel)
    assert report.cancelled and not report.published
    stages = [p.stage for p in seen]
    assert stages.index("scan") < stages.index("read") < stages.index("embed")
    assert all(0 <= p.done <= p.total for p in seen)
    assert any(p.eta == 0.0 for p in seen if p.stage == "read")
    emb = HashEmbedder()
    again = run(lib_dir, tmp_path / "s", embedder=emb)
    assert again.new == 0 and again.unchanged == 12  # files read before the cancel were kept
    assert again.published and len(open_library(tmp_path / "s")) == 12


def test_corrupt_catalog_is_set_aside_and_rebuilt(lib_dir, tmp_path):
    store = tmp_path / "s"
    run(lib_dir, store)
    (store / CATALOG_NAME).write_bytes(b"garbage" * 1000)
    for extra in ("-wal", "-shm"):
        (store / (CATALOG_NAME + extra)).unlink(missing_ok=True)
    with pytest.raises(StoreError, match="corrupt"):
        open_library(store)
    report = run(lib_dir, store)
    assert any("corrupt" in m and "moved it" in m for m in report.messages)
    assert list(store.glob(CATALOG_NAME + ".corrupt-*"))
    assert report.new == 12 and len(open_library(store)) == 12


def test_corrupt_vector_file_is_survived_and_rebuilt(lib_dir, tmp_path):
    store = tmp_path / "s"
    emb = HashEmbedder()
    run(lib_dir, store, embedder=emb)
    before = open_library(store, embedder=emb)
    (vectors,) = store.glob("vectors-*.faiss")
    data = bytearray(vectors.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"\x00" * 64
    vectors.write_bytes(bytes(data))
    lib = open_library(store, embedder=emb)  # still answers, from the catalog's vectors
    assert lib.messages and "unusable" in lib.messages[0]
    np.testing.assert_array_equal(lib.vectors, before.vectors)
    q = emb.embed(["knight armor"])
    np.testing.assert_array_equal(lib.search(q, 4, 2)[1], before.search(q, 4, 2)[1])
    report = run(lib_dir, store, embedder=emb)
    assert report.published and any("corrupt" in m for m in report.messages)
    assert not open_library(store, embedder=emb).messages


def test_embedder_mismatch_is_refused(lib_dir, tmp_path):
    run(lib_dir, tmp_path / "s", embedder=HashEmbedder(tag="a"))
    lib = open_library(tmp_path / "s", embedder=HashEmbedder(tag="b"))
    with pytest.raises(EmbedderError, match="re-index"):
        lib.embed(["x"])


def test_switching_embedder_reembeds_everything(lib_dir, tmp_path):
    run(lib_dir, tmp_path / "s", embedder=HashEmbedder(tag="a"))
    report = run(lib_dir, tmp_path / "s", embedder=HashEmbedder(dim=32, tag="b"))
    assert report.embedded == 12 and report.published
    assert open_library(tmp_path / "s").vectors.shape == (12, 32)


def test_small_changes_keep_clusters_large_changes_refit(tmp_path):
    folder = tmp_path / "Lora"
    write_themed_library(folder, per_theme=15)  # 60 adapters → several clusters
    store = tmp_path / "s"
    emb = HashEmbedder()
    run(folder, store, embedder=emb)
    first = open_library(store, embedder=emb).centroids
    assert len(first) == choose_k(60) > 1
    write_lora(folder / "cats" / "one_more_cat.safetensors", seed=500)
    run(folder, store, embedder=emb)
    lib = open_library(store, embedder=emb)
    np.testing.assert_array_equal(lib.centroids, first)  # joined its nearest cluster
    assert len(lib) == 61 and lib.find("one_more_cat").cluster >= 0
    for i in range(20):
        write_lora(folder / "more" / f"extra_{i}.safetensors", seed=600 + i)
    run(folder, store, embedder=emb)
    refit = open_library(store, embedder=emb).centroids
    assert len(refit) == choose_k(81) and not np.array_equal(refit[: len(first)], first)


def test_from_records_clusters_in_memory():
    emb = HashEmbedder()
    from pixtention.curator.records import AdapterRecord

    texts = [f"{w} theme number {i}" for w in ("forest", "ocean", "desert") for i in range(30)]
    records = [
        AdapterRecord(
            id=-1,
            name=f"a{i}",
            path=f"/x/a{i}",
            fingerprint=f"f{i}",
            short_hash=None,
            title=t,
            category=None,
            base_family="sd1",
            base_variant=None,
            kind="lora",
            rank=4,
            triggers=(),
            preferred_weight=None,
            weight_source=None,
            tags=(),
            document=t,
            fields={"title": t},
        )  # fmt: skip
        for i, t in enumerate(texts)
    ]
    lib = Library.from_records(records, emb.embed(texts) * 3.0, emb)
    assert len(lib) == 90 and [r.id for r in lib.records] == list(range(90))
    np.testing.assert_allclose(np.linalg.norm(lib.vectors, axis=1), 1.0, atol=1e-5)
    assert len(lib.centroids) == 9 and len(lib.cluster_labels) == 9
    assert sum(lib.cluster_sizes) == 90
    _, ids = lib.search(emb.embed(["ocean theme"]), 5, 9)
    assert all("ocean" in lib.records[i].title for i in ids[0])
