"""Issue 15 items 6 and 8: the demo, run once with the real embedder, shows themes in a table that
fits 100 columns, loads the embedding model once and keeps stderr to a few ``pixtention:`` lines."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pixtention.cli import main, models
from pixtention.cli.demo_cmds import DEMO_PROMPTS


@dataclass(frozen=True)
class Demo:
    code: int
    out: str
    err: str
    model_loads: int
    home: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    import transformers

    home = tmp_path_factory.mktemp("demo_home")
    loads = []
    real = transformers.AutoModel.from_pretrained.__func__
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXTENTION_HOME", str(home))
        patch.setattr(models, "_EMBEDDERS", {})  # as in a fresh process
        patch.setattr(
            transformers.AutoModel,
            "from_pretrained",
            classmethod(lambda cls, *a, **kw: loads.append(a) or real(cls, *a, **kw)),
        )
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["demo"])
    return Demo(code, out.getvalue(), err.getvalue(), len(loads), home)


def test_the_demo_runs_and_loads_the_embedding_model_once(demo: Demo) -> None:
    assert demo.code == 0, demo.err
    assert demo.out.count("$ python -m pixtention suggest") == len(DEMO_PROMPTS)
    assert demo.model_loads == 1


def test_stderr_holds_only_pixtention_lines(demo: Demo) -> None:
    lines = demo.err.strip().splitlines()
    assert lines and all(line.startswith("pixtention: ") for line in lines), demo.err
    assert len(lines) <= 3


def test_the_sample_library_shows_themes(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    match = re.search(r"^(\d+) adapters in (\d+) clusters$", demo.out, re.MULTILINE)
    assert match, demo.out
    adapters, clusters = int(match[1]), int(match[2])
    assert adapters >= 50 and clusters > 1
    monkeypatch.setenv("PIXTENTION_HOME", str(demo.home))
    assert main(["clusters", "--json"]) == 0  # the demo's index is now the one built last


def test_every_table_line_fits_100_columns(demo: Demo) -> None:
    lines = demo.out.splitlines()
    wide = [
        line
        for i, line in enumerate(lines)
        if len(line) > 100
        and not line.startswith("$ ")  # the echoed command carries the user's paths
        and not (i and lines[i - 1] == "prompt with triggers:")  # meant to be copied whole
        and not line.startswith(("  to ", "pixtention demo:"))  # paths again
    ]
    assert wide == []
    assert "no adapter fits this prompt" in demo.out  # the ramen prompt: PixTention abstains


def test_json_mode_keeps_stderr_quiet(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    store = demo.home / "sample-loras" / ".pixtention"
    assert main(["suggest", DEMO_PROMPTS[0], "--store", str(store), "--json"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) >= 2 and err == ""
