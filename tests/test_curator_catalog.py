"""Catalog: schema migrations, WAL, byte-exact paths, corruption classification."""

from __future__ import annotations

import os
import sqlite3

import pytest

from pixtention.curator.catalog import Catalog
from pixtention.curator.catalog_file import is_corruption
from pixtention.curator.catalog_schema import SCHEMA_VERSION
from pixtention.curator.store import StoreError


def test_new_catalog_is_migrated_and_in_wal_mode(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    try:
        assert cat.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in cat.conn.execute("SELECT name FROM sqlite_master")}
        assert {"files", "adapters", "captions", "embeddings", "clusters", "snapshot"} <= tables
    finally:
        cat.close()
    Catalog(tmp_path / "c.sqlite").close()  # reopening does not migrate twice


def test_catalog_from_a_newer_version_is_refused(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    with cat.transaction():
        cat.set_meta("schema_version", SCHEMA_VERSION + 1)
    cat.close()
    with pytest.raises(StoreError, match="newer"):
        Catalog(tmp_path / "c.sqlite")


def test_non_utf8_paths_round_trip(tmp_path):
    odd = os.fsdecode(b"/lib/caf\xe9/\xff\xfe.safetensors")
    cat = Catalog(tmp_path / "c.sqlite")
    try:
        with cat.transaction():
            cat.put_file(odd, 5, 7, "", "5:x", None)
        assert cat.file_states() == {odd: (5, 7, "")}
        assert cat.fingerprints_of([odd]) == {odd: "5:x"}
    finally:
        cat.close()


def test_error_rows_drop_the_adapter_row(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cols = dict(fingerprint="1:a", name="a", title="A", base_family="sd1", base_variant=None,
                kind="lora", rank=4, preview="", info="{}", record="{}", doc_digest="d")  # fmt: skip
    try:
        with cat.transaction():
            cat.put_file("/a.safetensors", 1, 1, "", "1:a", None)
            cat.put_adapter("/a.safetensors", cols)
        assert cat.count("adapters") == 1
        with cat.transaction():
            cat.put_file("/a.safetensors", 2, 2, "", None, "broken")
        assert cat.count("adapters") == 0
        assert cat.problems() == [("/a.safetensors", "broken")]
    finally:
        cat.close()


def test_garbage_file_is_classified_as_corruption(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError) as info:
        Catalog(path)
    assert is_corruption(info.value)
    assert not is_corruption(sqlite3.OperationalError("database is locked"))


def test_schema_1_catalog_is_migrated_in_place(tmp_path):
    """A store written before snapshot rows knew their file keeps its rows (path NULL)."""
    from pixtention.curator.catalog_schema import MIGRATIONS

    path = tmp_path / "c.sqlite"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO snapshot VALUES (0, 0, '{}')")
    conn.commit()
    conn.close()
    cat = Catalog(path)
    try:
        assert cat.get_meta("schema_version") == str(SCHEMA_VERSION) == "3"
        assert cat.read_snapshot() == [(0, 0, "{}")]
        assert cat.count("snapshot", "WHERE path IS NULL") == 1
        assert cat.stale_snapshot_rows("any") == [0]  # such rows are replaced on next publish
    finally:
        cat.close()
