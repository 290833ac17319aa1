"""Crash safety: SIGKILL the indexer at several points; the store must open, serve the last
good snapshot, and complete on the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pixtention.curator import index_folder, open_library
from pixtention.curator.store import StoreError
from tests.test_curator_fixtures import HashEmbedder, write_lora, write_themed_library

REPO = Path(__file__).resolve().parents[1]

DRIVER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from tests.test_curator_fixtures import HashEmbedder
import pixtention.curator.indexer as ix
ix.READ_BATCH = ix.EMBED_BATCH = 8
folder, store, stage, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def progress(p):
    if p.stage == stage and p.done >= at:
        os.kill(os.getpid(), signal.SIGKILL)

ix.index_folder(folder, store, captions=False, embedder=HashEmbedder(), progress=progress)
print("finished")
"""


def drive(folder: Path, store: Path, stage: str = "never", at: int = 0) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(repo=str(REPO)), str(folder), str(store), stage,
         str(at)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def killed_at(folder: Path, store: Path, stage: str, at: int) -> None:
    proc = drive(folder, store, stage, at)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]


def complete(folder: Path, store: Path):
    emb = HashEmbedder()
    report = index_folder(folder, store, captions=False, embedder=emb)
    lib = open_library(store, embedder=emb)
    files = {str(p) for p in folder.rglob("*.safetensors")}
    assert {r.path for r in lib.records} == files
    # the snapshot is coherent: every record's own document finds itself first
    scores, ids = lib.search(lib.embed([r.document for r in lib.records]), 1, len(lib.centroids))
    assert (ids[:, 0] == np.arange(len(lib))).all() or np.allclose(scores[:, 0], 1, atol=1e-5)
    return report, lib


@pytest.fixture
def library(tmp_path):
    folder = tmp_path / "Lora"
    write_themed_library(folder, per_theme=6)  # 24 adapters: three read batches of 8
    return folder


@pytest.mark.parametrize(("stage", "at"), [("read", 8), ("read", 16), ("embed", 8)])
def test_killed_during_first_run(library, tmp_path, stage, at):
    store = tmp_path / "s"
    killed_at(library, store, stage, at)
    assert len(open_library(store)) == 0  # nothing published yet: an empty, valid library
    report, _ = complete(library, store)
    assert report.unchanged >= 8  # committed batches were kept, not read again


@pytest.mark.parametrize("at", [1, 2])
def test_killed_while_publishing_serves_the_previous_snapshot(library, tmp_path, at):
    store = tmp_path / "s"
    complete(library, store)
    before = open_library(store, embedder=HashEmbedder())
    for i in range(5):
        write_lora(library / "new" / f"added_{i}.safetensors", seed=100 + i)
    killed_at(library, store, "publish", at)  # 1: before the vector file; 2: before commit
    lib = open_library(store, embedder=HashEmbedder())
    assert len(lib) == len(before) == 24 and not lib.messages
    np.testing.assert_array_equal(lib.vectors, before.vectors)
    report, lib = complete(library, store)
    assert len(lib) == 29 and report.published
    assert len(list(store.glob("vectors-*.faiss"))) == 1  # the orphaned file was cleaned up
    assert not list(store.glob(".*.tmp"))


def test_killed_after_publishing_has_the_new_snapshot(library, tmp_path):
    store = tmp_path / "s"
    killed_at(library, store, "publish", 3)
    assert len(open_library(store)) == 24
    report, _ = complete(library, store)
    assert not report.published and report.unchanged == 24


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.4, 1.2, 2.0, 2.8])
def test_killed_at_arbitrary_moments(tmp_path, delay):
    folder = tmp_path / "Lora"
    write_themed_library(folder, per_theme=40)  # 160 adapters: a run of a few seconds
    store = tmp_path / "s"
    proc = drive(folder, store)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    try:
        lib = open_library(store)
        assert len(lib) in (0, 160)  # the last good state: nothing yet, or everything
    except StoreError as exc:
        assert "no index" in str(exc)  # killed before the catalog existed
    complete(folder, store)
