"""A store that does not trust its folder (issue 12): planted links, names pointing out of the
store, damaged files, a full or read-only disk, crafted vector files, concurrent first opens.
Each case ends in one clear line and, where possible, a rebuild; readers never write."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pixtention.curator import index_folder, open_library
from pixtention.curator import library as library_module
from pixtention.curator.catalog import Catalog
from pixtention.curator.store import CATALOG_NAME, LOCK_NAME, StoreError
from tests.test_curator_fixtures import HashEmbedder, write_themed_library

REPO = Path(__file__).resolve().parents[1]
N = 8  # adapters in the test library


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A Lora folder and a good store of it, shared by the tests that only read them."""
    base = tmp_path_factory.mktemp("built")
    folder = base / "Lora"
    write_themed_library(folder, per_theme=2)
    index_folder(folder, base / "store", captions=False, embedder=HashEmbedder())
    return folder, base / "store"


@pytest.fixture
def store(built, tmp_path):
    """A private copy of the folder and a fresh store of it, for a test to damage."""
    folder = tmp_path / "Lora"
    shutil.copytree(built[0], folder)
    index_folder(folder, tmp_path / "store", captions=False, embedder=HashEmbedder())
    return folder, tmp_path / "store"


def reindex(folder: Path, store: Path):
    return index_folder(folder, store, captions=False, embedder=HashEmbedder())


def complete(folder: Path, store: Path) -> None:
    """The store serves every adapter of ``folder`` and its catalog is sound."""
    lib = open_library(store, embedder=HashEmbedder())
    assert {r.path for r in lib.records} == {str(p) for p in folder.rglob("*.safetensors")}
    conn = sqlite3.connect(store / CATALOG_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def vectors_file(store: Path) -> Path:
    (found,) = store.glob("vectors-*.faiss")
    return found


def set_meta(store: Path, **values: str) -> None:
    conn = sqlite3.connect(store / CATALOG_NAME)
    with conn:
        for key, value in values.items():
            conn.execute("UPDATE meta SET value=? WHERE key=?", (value, key))
    conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 5: files the store writes are never reached through a link ------------------------------


def test_a_planted_lock_link_does_not_overwrite_its_target(store, tmp_path):
    folder, s = store
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (s / LOCK_NAME).unlink()
    (s / LOCK_NAME).symlink_to(victim)
    report = reindex(folder, s)
    assert victim.read_text() == "precious"
    assert not (s / LOCK_NAME).is_symlink()
    assert any("symbolic link" in m and LOCK_NAME in m for m in report.messages)


@pytest.mark.parametrize("kind", ["empty", "database"])
def test_a_planted_catalog_link_does_not_write_its_target(built, tmp_path, kind):
    folder, _ = built
    victim = tmp_path / "victim.db"
    if kind == "empty":
        victim.write_bytes(b"")
    else:
        conn = sqlite3.connect(victim)
        conn.execute("CREATE TABLE mine (x)")
        conn.commit()
        conn.close()
    before = digest(victim)
    s = tmp_path / "s"
    s.mkdir()
    (s / CATALOG_NAME).symlink_to(victim)
    with pytest.raises(StoreError, match="symbolic link"):
        open_library(s)  # a reader refuses it
    report = reindex(folder, s)
    assert digest(victim) == before and not Path(str(victim) + "-wal").exists()
    assert any("symbolic link" in m for m in report.messages)
    complete(folder, s)


def test_a_wal_link_is_neither_written_nor_read(store, tmp_path):
    folder, s = store
    victim = tmp_path / "victim.wal"
    victim.write_bytes(b"keep me")
    wal = s / (CATALOG_NAME + "-wal")
    wal.unlink(missing_ok=True)
    wal.symlink_to(victim)
    with pytest.raises(StoreError, match="-wal is a symbolic link"):
        open_library(s)
    report = reindex(folder, s)
    assert victim.read_bytes() == b"keep me"
    assert any("-wal" in m and "symbolic link" in m for m in report.messages)
    complete(folder, s)


def test_a_catalog_naming_a_file_outside_the_store_touches_nothing(store, tmp_path):
    folder, s = store
    victim = tmp_path / "victim"
    victim.write_text("precious")
    set_meta(s, vectors_file="../victim")
    with pytest.raises(StoreError, match="not a file name the store makes"):
        open_library(s)
    report = reindex(folder, s)
    assert victim.read_text() == "precious"
    assert any("damaged" in m and "vectors_file" in m for m in report.messages)
    complete(folder, s)


# -- 13: damage ends in one clear line and a rebuild; readers never write ----------------------


def test_a_zero_byte_catalog_is_reported_by_readers_and_rebuilt_by_the_writer(store):
    folder, s = store
    (s / CATALOG_NAME).write_bytes(b"")
    for extra in ("-wal", "-shm"):
        (s / (CATALOG_NAME + extra)).unlink(missing_ok=True)
    with pytest.raises(StoreError, match=r"no index .* empty \(0 bytes"):
        open_library(s)
    assert (s / CATALOG_NAME).stat().st_size == 0  # the reader did not create a catalog
    report = reindex(folder, s)
    assert any("empty" in m for m in report.messages)
    complete(folder, s)


def test_readers_neither_create_nor_migrate_the_catalog(store):
    folder, s = store
    conn = sqlite3.connect(s / CATALOG_NAME)
    with conn:
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = digest(s / CATALOG_NAME)
    assert len(open_library(s, embedder=HashEmbedder())) == N  # schema 1 is read as it is
    assert digest(s / CATALOG_NAME) == before
    cat = Catalog(s / CATALOG_NAME, readonly=True)
    assert cat.get_meta("schema_version") == "1"
    cat.close()


def test_garbage_dimension_metadata_is_one_line_then_repaired(store):
    folder, s = store
    set_meta(s, dim="not a number", generation="x")
    with pytest.raises(StoreError, match="dim"):
        open_library(s)
    report = reindex(folder, s)
    assert any("damaged" in m for m in report.messages)
    complete(folder, s)


def test_vector_file_or_lock_replaced_by_a_folder(store):
    folder, s = store
    vectors = vectors_file(s)
    vectors.unlink()
    vectors.mkdir()
    (s / LOCK_NAME).unlink()
    (s / LOCK_NAME).mkdir()
    lib = open_library(s, embedder=HashEmbedder())  # the reader serves from the catalog
    assert len(lib) == N and any("folder" in m for m in lib.messages)
    report = reindex(folder, s)
    assert report.published
    assert any(LOCK_NAME in m for m in report.messages)
    assert any(vectors.name in m for m in report.messages)
    complete(folder, s)


def _garble_page_holding(path: Path, needle: bytes) -> None:
    """Overwrite the B-tree page that holds ``needle`` with garbage (a bad sector, say)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at > 0
    start = at - at % page
    data[start : start + page] = os.urandom(page)
    path.write_bytes(bytes(data))


def test_a_garbage_page_is_found_and_the_catalog_rebuilt(store):
    folder, s = store
    _garble_page_holding(s / CATALOG_NAME, b"Soft Watercolor Painting")
    report = reindex(folder, s)
    assert any("corrupt" in m and "rebuilding" in m for m in report.messages)
    assert list(s.glob(CATALOG_NAME + ".corrupt-*"))
    complete(folder, s)
    before = (s / CATALOG_NAME).stat().st_mtime_ns
    again = reindex(folder, s)  # a sound catalog the writer left is not checked again
    assert not again.messages and again.unchanged == N
    assert (s / CATALOG_NAME).stat().st_mtime_ns >= before


def test_a_full_disk_is_one_line_and_the_next_run_recovers(store, monkeypatch):
    folder, s = store
    for i, path in enumerate(sorted(folder.rglob("*.safetensors")) * 4):
        (folder / f"more{i % 4}").mkdir(exist_ok=True)
        shutil.copy(path, folder / f"more{i % 4}" / f"{i}.safetensors")  # the catalog must grow
    real_init = Catalog.__init__

    def tiny(self, path, **kwargs):
        real_init(self, path, **kwargs)
        if not getattr(self, "readonly", False):
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count={pages}")  # no page more: SQLITE_FULL

    monkeypatch.setattr(Catalog, "__init__", tiny)
    with pytest.raises(StoreError, match="disk full"):
        reindex(folder, s)
    assert len(open_library(s, embedder=HashEmbedder())) == N  # the last good state serves
    assert sqlite3.connect(s / CATALOG_NAME).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    monkeypatch.setattr(Catalog, "__init__", real_init)
    reindex(folder, s)
    complete(folder, s)


def test_a_vector_write_failure_is_one_line(store, monkeypatch):
    folder, s = store
    import faiss

    write_lora_changed = next(folder.rglob("*.safetensors"))
    os.utime(write_lora_changed, ns=(1, 1))
    (folder / "extra").mkdir()
    shutil.copy(write_lora_changed, folder / "extra" / "copy.safetensors")

    def full(index, path):
        raise RuntimeError("Error in faiss::FileIOWriter: write error (No space left on device)")

    monkeypatch.setattr(faiss, "write_index", full)
    with pytest.raises(StoreError, match="disk full"):
        reindex(folder, s)
    assert not list(s.glob(".*.tmp"))
    monkeypatch.undo()
    reindex(folder, s)
    complete(folder, s)


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


DRIVER = """
import sys
sys.path.insert(0, {repo!r})
from tests.test_curator_fixtures import HashEmbedder
from pixtention.curator import index_folder, open_library
from pixtention.curator.store import StoreError
folder, store, what = sys.argv[1:4]
if what == "read":
    print("adapters", len(open_library(store, embedder=HashEmbedder())))
else:
    try:
        report = index_folder(folder, store, captions=False, embedder=HashEmbedder())
        print("indexed", report.adapters)
    except StoreError as exc:
        print("StoreError", exc)
"""


def _in_namespace(setup: str, folder: Path, store: Path, *steps: str) -> list[str]:
    """Run the driver once per step (``read``, ``index`` or a shell command) in a private mount
    namespace prepared by ``setup``; returns the drivers' lines."""
    run = '"$0" -c "$1" "$2" "$3"'
    script = " && ".join([setup] + [f"{run} {s}" if s in ("read", "index") else s for s in steps])
    args = [sys.executable, DRIVER.format(repo=str(REPO)), str(folder), str(store)]
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, *args], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout.decode().strip().splitlines()


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm (user + mount namespaces)")
def test_a_read_only_store_is_read_and_refused_to_the_writer_in_one_line(store):
    folder, s = store
    for extra in ("-wal", "-shm"):
        (s / (CATALOG_NAME + extra)).unlink(missing_ok=True)
    os.utime(next(folder.rglob("*.safetensors")), ns=(1, 1))  # the writer has work to do
    ro = f"mount --bind -o ro '{s}' '{s}'"
    read, write = _in_namespace(ro, folder, s, "read", "index")
    assert read == f"adapters {N}"
    assert write.startswith("StoreError") and "read-only" in write


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm (user + mount namespaces)")
def test_a_really_full_disk_is_one_line_and_recovers_once_freed(built, tmp_path):
    folder, _ = built
    s = tmp_path / "tiny"
    s.mkdir()
    mount = f"mount -t tmpfs -o size=48k tmpfs '{s}'"
    roomy = f"mount -o remount,size=64m '{s}'"
    full, again, read = _in_namespace(mount, folder, s, "index", roomy, "index", "read")
    assert full.startswith("StoreError") and "disk full" in full
    assert again == f"indexed {N}" and read == f"adapters {N}"


# -- 15: a crafted vector file is unusable, not a crash --------------------------------------


def _huge_allocation_fails() -> bool:
    """Whether asking for 1 TB fails at once (heuristic overcommit, less RAM than that)
    rather than being granted and touched."""
    try:
        mode = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return False
    return mode in ("0", "2") and total < (1 << 37)


def _craft(path: Path, data: bytes, s: Path) -> None:
    """Write ``data`` as the vector file and make the catalog's checksum agree with it."""
    path.write_bytes(data)
    set_meta(s, vectors_digest=hashlib.blake2b(data, digest_size=16).hexdigest())


@pytest.mark.skipif(not _huge_allocation_fails(), reason="a 1 TB request might be granted here")
def test_a_crafted_vector_file_raising_memory_error_is_read_around(store):
    folder, s = store
    path = vectors_file(s)
    data = bytearray(path.read_bytes())
    quantizer = data.find(b"IxFI")  # the flat quantizer holding the centroids (1 × 64 floats)
    at = data.find(struct.pack("<Q", 64), quantizer)  # its vector's length, in floats
    assert quantizer > 0 and at > 0
    data[at : at + 8] = struct.pack("<Q", (1 << 38) - 1)  # "1 TB of centroids follow"
    import faiss

    with pytest.raises(MemoryError):
        faiss.deserialize_index(np.frombuffer(bytes(data), dtype=np.uint8))
    _craft(path, bytes(data), s)
    lib = open_library(s, embedder=HashEmbedder())
    assert len(lib) == N and any("MemoryError" in m for m in lib.messages)
    report = reindex(folder, s)
    assert any("MemoryError" in m for m in report.messages)
    complete(folder, s)
    assert not open_library(s, embedder=HashEmbedder()).messages


def test_any_faiss_failure_on_a_vector_file_is_read_around(store, monkeypatch):
    """Whatever faiss raises on a file (MemoryError, RuntimeError) is 'unusable', never a crash."""
    folder, s = store
    import faiss

    for error in (MemoryError("std::bad_alloc"), RuntimeError("Error: bad fourcc")):

        def broken(*args, error=error):
            raise error

        monkeypatch.setattr(faiss, "read_index", broken)
        lib = open_library(s, embedder=HashEmbedder())
        assert len(lib) == N and any(type(error).__name__ in m for m in lib.messages)
        monkeypatch.undo()
        os.utime(vectors_file(s), ns=(2, 2))  # a new state: the next open reads it again


# -- 7: fifty concurrent first opens read the store once ----------------------------------------


def _count_snapshot_reads(monkeypatch) -> list[int]:
    calls = [0]
    real = Catalog.read_snapshot

    def counted(self):  # as slow as reading thousands of records: the first open takes a while
        calls[0] += 1
        time.sleep(0.1)
        return real(self)

    monkeypatch.setattr(Catalog, "read_snapshot", counted)
    return calls


def test_fifty_concurrent_opens_read_the_store_once(built, monkeypatch):
    _, s = built
    calls = _count_snapshot_reads(monkeypatch)
    barrier = threading.Barrier(50)
    opened: list[object] = []

    def open_one() -> None:
        barrier.wait()
        opened.append(open_library(s))

    threads = [threading.Thread(target=open_one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 50 and len({id(lib) for lib in opened}) == 1
    assert calls[0] == 1
    assert open_library(s) is opened[0]  # still held: the same snapshot is shared


def test_fifty_concurrent_status_calls_on_a_fresh_service_open_the_store_once(built, monkeypatch):
    from pixtention.webui.service import LibraryService

    folder, s = built
    calls = _count_snapshot_reads(monkeypatch)
    getattr(library_module, "_OPEN", {}).clear()
    service = LibraryService(folder, s, captions=False)
    barrier = threading.Barrier(50)
    states: list[str] = []

    def status() -> None:
        barrier.wait()
        states.append(service.status().state)

    threads = [threading.Thread(target=status) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert states == ["ready"] * 50
    assert calls[0] == 1


def test_a_new_snapshot_is_opened_afresh(store):
    folder, s = store
    emb = HashEmbedder()
    first = open_library(s, embedder=emb)
    assert open_library(s, embedder=emb) is first
    source = next(folder.rglob("*.safetensors"))
    (folder / "new").mkdir()
    shutil.copy(source, folder / "new" / "copy.safetensors")
    reindex(folder, s)
    second = open_library(s, embedder=emb)
    assert second is not first and len(second) == N + 1 and len(first) == N
