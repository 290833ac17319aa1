"""``python -m pixtention index`` and ``clusters``: JSON output, store location, exit codes."""

from __future__ import annotations

import json

from pixtention.cli import main
from pixtention.curator.store import default_store_dir, writer_lock
from tests.test_curator_fixtures import write_themed_library


def test_index_json_then_clusters_json(tmp_path, capsys):
    folder = tmp_path / "Lora"
    write_themed_library(folder, per_theme=4)
    (folder / "old.ckpt").write_bytes(b"\x80\x02")
    store = tmp_path / "store"
    assert main(["index", str(folder), "--store", str(store), "--no-captions", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["adapters"] == 16 and report["new"] == 17
    assert [p["error"] for p in report["problems"]] == [
        "unsupported format (pickle) — convert it to .safetensors"
    ]
    assert f"store {store}" in err

    assert main(["clusters", "--store", str(store), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["adapters"] == 16 and sum(c["size"] for c in data["clusters"]) == 16
    assert all(c["examples"] and c["label"] for c in data["clusters"])

    assert main(["index", str(folder), "--store", str(store), "--no-captions"]) == 0
    out = capsys.readouterr().out
    assert "17 unchanged" in out and "old.ckpt" in out


def test_default_store_and_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIXTENTION_HOME", str(tmp_path / "home"))
    assert default_store_dir() == tmp_path / "home" / "store"
    assert main(["clusters"]) == 2
    assert "no index" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing"), "--no-captions"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "Lora").mkdir()
    with writer_lock(default_store_dir()):
        assert main(["index", str(tmp_path / "Lora"), "--no-captions", "--no-wait"]) == 2
    assert "another indexer" in capsys.readouterr().err
