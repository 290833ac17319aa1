"""Issue 15 item 5: every benchmark runs from a fresh clone or says what it needs in one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pixtention.cli import main

NEEDS_DATA = [
    ["selector"],
    ["curator", "--sizes", "1000"],
    ["curator", "--quick"],
]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv", NEEDS_DATA, ids=lambda a: " ".join(a))
def test_missing_benchmark_data_says_where_it_comes_from(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *argv, "--data", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert out == "" and "Traceback" not in err
    assert f"needs civitai_lora_library.jsonl in {tmp_path}" in line
    assert "../shared/retrieval-bench" in line and "dfanr/CivitaiModelList" in line
    if argv[0] == "curator":
        assert "--civitai-limit 0" in line  # the synthetic libraries need no data


def test_integrator_without_ldm_names_the_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ldm" else real(name, *a)
    )
    assert main(["bench", "integrator", "--quick"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "'ldm'" in line and "stable-diffusion-sdkit" in line and "--no-deps" in line


def test_a_module_missing_inside_a_benchmark_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pixtention.cli import bench_cmds

    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "cli.py").write_text("import some_package_nobody_has\n")
    monkeypatch.setattr(bench_cmds, "_bench_dir", lambda: tmp_path / "bench")
    assert main(["bench", "cli"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "'some_package_nobody_has'" in line and "pip install" in line


@pytest.mark.parametrize("name", ["curator", "selector", "integrator", "cli", "captioner"])
def test_quick_help_gives_a_duration(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", name, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    options = help_text[help_text.index("options:") :]
    quick = options[options.index("--quick") : options.index("--json")]
    assert "minute" in quick, quick
    assert "< 3 minutes" not in help_text


def test_a_benchmark_may_define_dataclasses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """dataclasses look a class's module up in sys.modules (bench reliability has some)."""
    from pixtention.cli import bench_cmds

    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "cli.py").write_text(
        "from __future__ import annotations\n"
        "import dataclasses\n"
        "@dataclasses.dataclass\n"
        "class Row:\n"
        "    name: str\n"
        "def main(argv):\n"
        "    print(Row('ok').name)\n"
        "    return 0\n"
    )
    monkeypatch.setattr(bench_cmds, "_bench_dir", lambda: tmp_path / "bench")
    assert main(["bench", "cli"]) == 0
    assert capsys.readouterr().out == "ok\n"
