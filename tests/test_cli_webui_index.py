"""Issue 15 item 8: the CLI uses the WebUI's defaults and finds the WebUI's index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixtention.cli import build_parser, main, models
from pixtention.cli.stores import for_folder, for_reading
from pixtention.curator.store import default_store_dir
from pixtention.webui import settings
from pixtention.webui.args import WebuiArgs
from tests.test_curator_fixtures import HashEmbedder, write_lora


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private per-user store and a cheap embedder for every test here."""
    monkeypatch.setenv("PIXTENTION_HOME", str(tmp_path / "home"))
    embedder = HashEmbedder()
    monkeypatch.setattr(models, "embedder", lambda spec=None, device="cpu": embedder)
    return tmp_path / "home"


def _webui(root: Path) -> Path:
    """A WebUI folder (launcher + models/Lora) holding two adapters; returns its Lora folder."""
    (root / "launch.py").parent.mkdir(parents=True, exist_ok=True)
    (root / "launch.py").write_text("# the WebUI's launcher\n")
    lora = root / "models" / "Lora"
    write_lora(lora / "ink.safetensors", metadata={"ss_output_name": "ink wash painting"})
    write_lora(lora / "cat.safetensors", seed=1, metadata={"ss_output_name": "tabby cat"})
    (root / "models" / "Stable-diffusion").mkdir()
    return lora


def test_suggest_defaults_are_the_webuis() -> None:
    webui = WebuiArgs()
    args = build_parser().parse_args(["suggest", "a cat"])
    assert (args.k, args.clusters, args.threshold, args.per_phrase, args.mode) == (
        webui.k, webui.clusters, webui.threshold, webui.per_phrase, webui.mode,
    )  # fmt: skip
    assert args.threshold == settings.DEFAULTS["pixtention_default_threshold"]
    assert build_parser().parse_args(["demo"]).k == webui.k


def test_index_of_a_webui_folder_goes_where_the_webui_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lora = _webui(tmp_path / "webui")
    expected = settings.index_dir(None, None, str(lora))  # the WebUI's own rule
    for folder in (tmp_path / "webui", lora):  # the WebUI root or its models/Lora
        assert main(["index", str(folder), "--no-captions", "--json"]) == 0
        out, err = capsys.readouterr()
        report = json.loads(out)
        assert Path(report["store"]) == expected.resolve() and report["adapters"] == 2
        assert Path(report["folder"]) == lora.resolve()  # never the checkpoints beside it
        assert "the WebUI's index" in err
    assert not default_store_dir().exists()


def test_suggest_inside_a_webui_folder_reads_the_webuis_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lora = _webui(tmp_path / "webui")
    assert main(["index", str(lora), "--no-captions"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path / "webui")
    assert main(["suggest", "an ink wash painting", "--json", "--threshold", "0"]) == 0
    out, err = capsys.readouterr()
    assert {p["name"] for p in json.loads(out)} >= {"ink"}
    assert f"store {(lora / '.pixtention').resolve()} (the WebUI's index of this folder)" in err
    monkeypatch.chdir(tmp_path)
    assert main(["clusters", "--lora-dir", str(tmp_path / "webui"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["adapters"] == 2


def test_the_webuis_index_dir_setting_is_honoured(tmp_path: Path) -> None:
    _webui(tmp_path / "webui")
    elsewhere = tmp_path / "indexes" / "pixtention"
    (tmp_path / "webui" / "config.json").write_text(
        json.dumps({"pixtention_index_dir": str(elsewhere)})
    )
    folder, choice = for_folder(str(tmp_path / "webui"), None)
    assert folder.name == "Lora" and choice.path == elsewhere


def test_suggest_elsewhere_reads_the_index_built_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lora = _webui(tmp_path / "webui")
    monkeypatch.chdir(tmp_path)
    assert for_reading(None).path == default_store_dir()  # nothing built yet
    assert main(["index", str(lora), "--no-captions"]) == 0
    capsys.readouterr()
    choice = for_reading(None)
    assert choice.path == (lora / ".pixtention").resolve() and "built last" in choice.reason
    assert main(["suggest", "a tabby cat", "--json", "--threshold", "0"]) == 0
    assert "cat" in {p["name"] for p in json.loads(capsys.readouterr().out)}


def test_a_plain_folder_still_uses_the_per_user_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lora(tmp_path / "loras" / "ink.safetensors")
    assert main(["index", str(tmp_path / "loras"), "--no-captions", "--json"]) == 0
    assert Path(json.loads(capsys.readouterr().out)["store"]) == default_store_dir()
    assert not (tmp_path / "loras" / ".pixtention").exists()
