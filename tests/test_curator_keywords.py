"""The keyword index (SQLite FTS5 over each adapter's full text): searchable beyond the clip the
embedded document gets, incremental, consistent with the published snapshot, safe with HTML and
huge sidecars."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixtention.curator import index_folder, keywords, open_library
from pixtention.curator.publish import Publisher
from pixtention.selector.lexical import LexicalIndex
from pixtention.selector.select import lexical_index
from tests.test_curator_fixtures import (
    HashEmbedder,
    civitai_info,
    write_lora,
    write_themed_library,
)

WEIGHTS = (3.0, 2.0, 1.0)
# A description whose telling word comes long after the 400 characters a document keeps.
PADDING = "A versatile adapter trained on many hand-picked images of good quality. " * 12


def _hits(library, word: str) -> set[str]:
    """Names of the adapters the library's keyword index finds for ``word``."""
    scores = lexical_index(library).scores([word], WEIGHTS, 0.0, 100)
    return {library.records[i].name for i in np.flatnonzero(scores)}


def _rows(store: Path) -> list[tuple]:
    conn = sqlite3.connect(store / "catalog.sqlite")
    try:
        return conn.execute(
            "SELECT k.path, k.current, k.published, f.name, f.tags, f.body FROM keyword_rows k "
            "JOIN keywords f ON f.rowid = k.id ORDER BY k.id"
        ).fetchall()
    finally:
        conn.close()


def _index(folder: Path, store: Path):
    emb = HashEmbedder()
    report = index_folder(folder, store, captions=False, embedder=emb)
    return report, open_library(store, embedder=emb)


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "Lora"
    desc = f"<p>{PADDING}</p><p>Best with a <b>zeppelin</b> over the harbour.</p>"
    write_lora(folder / "airship.safetensors", seed=1,
               civitai=civitai_info("Airship", ["airship"], ["vehicle"], desc))  # fmt: skip
    write_lora(folder / "teapot.safetensors", seed=2,
               civitai=civitai_info("Teapot", ["teapot"], ["object"], "A porcelain teapot."))  # fmt: skip
    return folder


def test_a_word_only_in_the_sidecar_beyond_the_clip_finds_its_adapter(folder, tmp_path) -> None:
    _, library = _index(folder, tmp_path / "s")
    airship = library.find("airship")
    assert "zeppelin" not in airship.document.lower()  # the embedded text is clipped before it
    assert _hits(library, "zeppelin") == {"airship"}
    assert _hits(library, "teapot") == {"teapot"}
    assert lexical_index(library).size == len(library) == 2


def test_html_is_read_as_text(tmp_path) -> None:
    folder = tmp_path / "Lora"
    desc = (
        '<p style="color:red">Fish &amp; chips</p><script>var hiddenword = 1;</script>'
        '<a href="https://example.com/secretlink">a link</a>'
    )
    write_lora(folder / "food.safetensors", civitai=civitai_info("Food", [], [], desc))
    _, library = _index(folder, tmp_path / "s")
    (row,) = _rows(tmp_path / "s")
    assert "Fish & chips" in row[5]
    assert "<" not in row[5] and "hiddenword" not in row[5]
    assert _hits(library, "chips") == {"food"}
    for word in ("hiddenword", "secretlink", "color", "amp", "href"):
        assert _hits(library, word) == set(), word


def test_huge_metadata_is_bounded(tmp_path) -> None:
    folder = tmp_path / "Lora"
    huge = "<p>" + "lorem ipsum dolor " * 90_000 + "</p>"  # 1.6 MB, under the sidecar cap
    tags = [f"tag{i}" for i in range(5000)]
    write_lora(folder / "big.safetensors", civitai=civitai_info("Big", ["w"] * 3000, tags, huge))
    report, library = _index(folder, tmp_path / "s")
    assert report.adapters == 1
    (row,) = _rows(tmp_path / "s")
    assert len(row[4]) <= keywords.FIELD_CHARS and len(row[5]) <= keywords.BODY_CHARS
    assert _hits(library, "ipsum") == {"big"}


def test_a_changed_sidecar_replaces_its_row_and_a_deleted_file_drops_it(folder, tmp_path) -> None:
    store = tmp_path / "s"
    _index(folder, store)
    info = civitai_info("Airship", ["airship"], ["vehicle"], "Now a hot air balloon.")
    (folder / "airship.civitai.info").write_text(json.dumps(info))
    report, library = _index(folder, store)
    assert report.changed == 1
    assert _hits(library, "balloon") == {"airship"} and _hits(library, "zeppelin") == set()
    rows = _rows(store)
    assert len(rows) == 2 and all(r[1] == r[2] == 1 for r in rows)  # one current row each
    (folder / "teapot.safetensors").unlink()
    report, library = _index(folder, store)
    assert report.removed == 1
    assert [Path(r[0].decode()).name for r in _rows(store)] == ["airship.safetensors"]
    assert _hits(library, "teapot") == set()


def test_a_refresh_without_changes_does_no_keyword_work(folder, tmp_path, monkeypatch) -> None:
    store = tmp_path / "s"
    _index(folder, store)
    calls = []
    monkeypatch.setattr(keywords, "keyword_text", lambda *a: calls.append(a))
    report, _ = _index(folder, store)
    assert not report.published and calls == []


def test_readers_see_the_published_rows_until_the_next_snapshot(folder, tmp_path, monkeypatch):
    """A run that dies after writing the new rows but before publishing: readers (an open
    library, a new one) keep the old text, never the new; the next run publishes it."""
    store = tmp_path / "s"
    _, before = _index(folder, store)
    info = civitai_info("Airship", ["airship"], ["vehicle"], "Now a hot air balloon.")
    (folder / "airship.civitai.info").write_text(json.dumps(info))

    def killed(self):
        raise KeyboardInterrupt("killed before publishing")

    monkeypatch.setattr(Publisher, "publish", killed)
    with pytest.raises(KeyboardInterrupt):
        _index(folder, store)
    assert len(_rows(store)) == 3  # the new row is written, the old one still published
    reopened = open_library(store, embedder=HashEmbedder())
    for library in (before, reopened):
        assert _hits(library, "zeppelin") == {"airship"} and _hits(library, "balloon") == set()
    monkeypatch.undo()
    _, after = _index(folder, store)
    assert _hits(after, "balloon") == {"airship"} and _hits(after, "zeppelin") == set()
    assert _hits(before, "zeppelin") == set()  # its row is gone; never another adapter's
    assert len(_rows(store)) == 2


def test_a_store_indexed_before_the_keyword_index_is_filled_on_the_next_run(folder, tmp_path):
    store = tmp_path / "s"
    _index(folder, store)
    conn = sqlite3.connect(store / "catalog.sqlite")
    with conn:  # as a schema-2 catalog migrated by this version: tables there, rows missing
        conn.execute("DELETE FROM keywords")
        conn.execute("DELETE FROM keyword_rows")
        conn.execute("DELETE FROM meta WHERE key = 'keywords_version'")
    conn.close()
    library = open_library(store, embedder=HashEmbedder())
    assert isinstance(lexical_index(library), LexicalIndex)  # falls back to the records' text
    assert _hits(library, "zeppelin") == set() and _hits(library, "teapot") == {"teapot"}
    report, library = _index(folder, store)
    assert report.published and report.unchanged == 2
    assert _hits(library, "zeppelin") == {"airship"}


DRIVER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from tests.test_curator_fixtures import HashEmbedder
import pixtention.curator.indexer as ix
from pixtention.curator import keywords
ix.READ_BATCH = keywords.SYNC_BATCH = 8
seen = []

def progress(p):
    seen.append((p.stage, p.done))
    if seen.count(("read", 8)) == 2:  # the read stage said 8 once; now the keyword sync does
        os.kill(os.getpid(), signal.SIGKILL)

ix.index_folder(sys.argv[1], sys.argv[2], captions=False, embedder=HashEmbedder(),
                progress=progress)
"""


def test_killed_while_writing_keywords_then_completed(tmp_path) -> None:
    folder = tmp_path / "Lora"
    write_themed_library(folder, per_theme=6)  # 24 adapters: three keyword batches of 8
    store = tmp_path / "s"
    repo = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER.format(repo=repo), str(folder), str(store)],
        env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    conn = sqlite3.connect(store / "catalog.sqlite")
    assert conn.execute("SELECT COUNT(*), SUM(published) FROM keyword_rows").fetchone() == (8, 0)
    conn.close()
    report, library = _index(folder, store)
    assert report.unchanged == 24 and len(library) == 24
    rows = _rows(store)
    assert len(rows) == 24 and all(r[1] == r[2] == 1 for r in rows)
    assert {Path(r[0].decode()).stem for r in rows} == {r.name for r in library.records}
    assert len(_hits(library, "kitten")) == 6  # a word of one theme's description


def test_names_that_are_not_utf8_are_searchable(tmp_path) -> None:
    folder = tmp_path / "Lora"
    name = os.fsdecode(b"caf\xe9_dragon.safetensors")  # Latin-1 bytes: not UTF-8
    write_lora(folder / name, civitai=civitai_info("Dragon", [], [], "A dragon."))
    _, library = _index(folder, tmp_path / "s")
    assert _hits(library, "dragon") == {library.records[0].name}
    memory = LexicalIndex.for_library(
        type("Bare", (), {"records": library.records, "store": None})()
    )
    assert memory.scores(["dragon"], WEIGHTS, 0.0, 10)[0] > 0
