"""Terminal escapes and newlines from file names and metadata never reach the console as such
(issue 12, item 11): ``show`` prints titles sanitised, and a file name holding a newline cannot
forge an ``ok`` line in ``doctor`` or ``index`` output."""

from __future__ import annotations

import pytest

from pixtention.cli import main
from tests.test_curator_fixtures import write_lora

ESCAPES = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def no_escapes(text: str) -> bool:
    return not any(ch in text for ch in ESCAPES)


def test_show_prints_metadata_sanitised(tmp_path, capsys):
    path = write_lora(
        tmp_path / "plain.safetensors",
        seed=1,
        metadata={
            "modelspec.title": "Evil\x1b]0;owned\x07 Title\x1b[2J",
            "modelspec.description": "first\x1b[31m line\nsecond\r line",
            "modelspec.tags": "a\x1b[1mtag, \u202eflipped",
            "modelspec.trigger_phrase": "tr\x9bigger",
        },
    )
    assert main(["show", str(path), "--no-hashes"]) == 0
    out = capsys.readouterr().out
    assert no_escapes(out) and "Evil]0;owned Title[2J" in out


def test_show_prints_an_escaping_file_name_visibly(tmp_path, capsys):
    path = write_lora(tmp_path / "name\x1b[2Jwith escape.safetensors", seed=2)
    assert main(["show", str(path), "--no-hashes"]) == 0
    out = capsys.readouterr().out
    assert no_escapes(out) and "name\\x1b[2Jwith escape" in out


@pytest.fixture
def forging_folder(tmp_path):
    folder = tmp_path / "Lora"
    write_lora(folder / "real.safetensors", seed=1)
    forged = "x\nok       forged.safetensors  lora r4 sd1  'Forged'\nz"
    write_lora(folder / f"{forged}.safetensors", seed=2)
    (folder / "broken\nok       fake.safetensors").write_bytes(b"\0" * 16)
    return folder


def test_doctor_lines_cannot_be_forged_by_file_names(forging_folder, capsys):
    assert main(["doctor", str(forging_folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # three files and the summary
    assert [line.split()[0] for line in lines[:3]].count("ok") == 2
    assert not any(line.startswith("ok       forged") for line in lines)
    assert all(no_escapes(line) for line in lines)


def test_index_problem_lines_cannot_be_forged_by_file_names(forging_folder, tmp_path, capsys):
    store = tmp_path / "s"
    assert main(["index", str(forging_folder), "--store", str(store), "--no-captions"]) == 0
    out, err = capsys.readouterr()
    assert not any(line.startswith("ok ") for line in (out + err).splitlines())
    assert all(no_escapes(line) for line in (out + err).splitlines())
    problems = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(problems) == 1 and "\\nok" in problems[0]
