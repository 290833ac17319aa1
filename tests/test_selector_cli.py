"""``python -m pixtention suggest`` on the sample library, indexed by the real indexer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pixtention.cli import main
from pixtention.curator.indexer import index_folder
from pixtention.library.sample import write_sample


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("selector_cli")
    write_sample(root / "Lora")
    report = index_folder(root / "Lora", root / "store", captions=False)
    assert report.adapters >= 12
    return str(root / "store")


def _suggest(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["suggest", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_picks(store, capsys) -> None:
    prompt = "a samurai warrior standing in an autumn forest, watercolor painting"
    code, out, _ = _suggest(capsys, prompt, "--store", store, "--k", "3", "--json")
    assert code == 0
    picks = json.loads(out)
    names = {p["name"] for p in picks}
    assert names == {"samurai_warrior", "autumn_forest", "watercolor_wash"}
    for pick in picks:
        assert {"name", "score", "phrase", "weight", "triggers"} <= set(pick)
        start, end = pick["phrase_span"]
        assert " ".join(prompt[start:end].split()) == pick["phrase"]
    by_name = {p["name"]: p["phrase"] for p in picks}
    assert "forest" in by_name["autumn_forest"] and "watercolor" in by_name["watercolor_wash"]


def test_table_and_base_model_filter(store, capsys) -> None:
    code, out, _ = _suggest(capsys, "an ink sketch of a crimson dragon", "--store", store)
    assert code == 0 and "red_dragon" in out and "prompt with triggers:" in out
    _, sd1, _ = _suggest(capsys, "an ink sketch", "--store", store, "--base-model", "sd1", "--json")
    _, xl, _ = _suggest(capsys, "an ink sketch", "--store", store, "--base-model", "sdxl", "--json")
    assert "ink_sketch_xl" not in {p["name"] for p in json.loads(sd1)}
    assert {p["name"] for p in json.loads(xl)} == {"ink_sketch_xl"}
    code, out, _ = _suggest(capsys, "quarterly tax spreadsheet", "--store", store)
    assert code == 0 and "no adapter fits" in out


def test_problems_are_one_clear_line(store, tmp_path, capsys) -> None:
    code, _, err = _suggest(capsys, "a cat", "--store", str(tmp_path / "none"))
    assert code == 2 and "pixtention index" in err
    code, _, err = _suggest(capsys, "a cat", "--store", store, "--embedder", "some/other-model")
    assert code == 2 and "re-embed" in err and "python -m pixtention index FOLDER" in err
    code, _, err = _suggest(capsys, "a cat", "--store", store, "--base-model", "bogus")
    assert code == 2 and "unknown base model" in err


@pytest.mark.slow
def test_module_entry_point(store) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pixtention", "suggest", "a red dragon", "--store", store, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [p["name"] for p in json.loads(done.stdout)] == ["red_dragon"]
