"""The benchmark's floor: a full-text BM25 over the sidecars a user has, independent of the
product (it must not move when the product's keyword side changes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.selector_floor import FullTextFloor, plain, sidecar_row

REPO = Path(__file__).resolve().parents[1]


def _sidecar(folder: Path, stem: str, name: str, tags: list[str], description: str) -> None:
    info = {"name": "v1", "trainedWords": [], "description": "",
            "model": {"name": name, "tags": tags, "description": description}}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.civitai.info").write_text(json.dumps(info), encoding="utf-8")


def test_the_floor_reads_whole_descriptions_and_keeps_the_family(tmp_path) -> None:
    long = "<p>" + "Plain words about nothing in particular. " * 40 + "A <b>zeppelin</b>.</p>"
    _sidecar(tmp_path, "airship", "Airship", ["vehicle"], long)
    _sidecar(tmp_path, "airship_xl", "Airship XL", ["vehicle"], long)
    _sidecar(tmp_path, "teapot", "Teapot", ["zeppelin"], "A teapot.")
    floor = FullTextFloor(tmp_path, {"airship": "sd1", "airship_xl": "sdxl", "teapot": "sd1"})
    assert floor.rank("a zeppelin at dawn", "sd1", 10) == ["teapot", "airship"]  # tags ×2
    assert floor.rank("a zeppelin", "sdxl", 10) == ["airship_xl"]
    assert floor.rank("qqq www", "sd1", 10) == []
    assert plain("<p>Fish &amp; <i>chips</i></p>") == "Fish & chips"
    name, tags, text = sidecar_row("my_file", {"model": {"name": "N", "tags": [{"name": "t"}]}})
    assert (name, tags) == ("N my file", "t")


def test_the_floor_imports_nothing_of_the_product() -> None:
    code = "import sys, bench.selector_floor; print(any(m.startswith('pixtention') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
