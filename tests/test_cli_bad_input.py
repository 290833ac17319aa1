"""Issue 15 item 7: bad input gets one accurate line, never a traceback or a misleading reason."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from pixtention.cli import main, models
from pixtention.curator.indexer import index_folder
from pixtention.library.sample import MARKER
from tests.test_curator_fixtures import HashEmbedder, write_lora


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def hash_models(monkeypatch: pytest.MonkeyPatch) -> HashEmbedder:
    """The CLI's embedder, made cheap: these tests are about messages, not retrieval."""
    embedder = HashEmbedder()
    monkeypatch.setattr(models, "embedder", lambda spec=None, device="cpu": embedder)
    return embedder


@pytest.fixture()
def store(tmp_path: Path, hash_models: HashEmbedder) -> Path:
    folder = tmp_path / "Lora"
    write_lora(folder / "ink.safetensors", metadata={"ss_output_name": "ink wash painting"})
    write_lora(folder / "cat.safetensors", seed=1, metadata={"ss_output_name": "tabby cat"})
    index_folder(folder, tmp_path / "store", captions=False, embedder=hash_models)
    return tmp_path / "store"


def test_index_into_a_store_that_is_a_file(tmp_path: Path, capsys, hash_models) -> None:
    (tmp_path / "Lora").mkdir()
    (tmp_path / "store.txt").write_text("not a folder")
    code, out, err = run(
        capsys, "index", str(tmp_path / "Lora"), "--store", str(tmp_path / "store.txt")
    )
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"pixtention index: --store {tmp_path / 'store.txt'} is a file, not a folder; "
        "give a folder for the index"
    ]


def test_sample_into_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    code, out, err = run(capsys, "sample", str(tmp_path / "file"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert (
        err.strip()
        == f"pixtention sample: {tmp_path / 'file'} is a file, not a folder; give a new or empty folder"
    )


def test_sample_refuses_a_folder_that_holds_real_adapters(tmp_path: Path, capsys) -> None:
    lora = tmp_path / "models" / "Lora"
    write_lora(lora / "my_character.safetensors")
    code, _, err = run(capsys, "sample", str(lora))
    assert code == 2 and "already holds 1 adapter file(s)" in err and "--force" in err
    assert sorted(p.name for p in lora.iterdir()) == ["my_character.safetensors"]  # untouched
    assert run(capsys, "sample", str(lora), "--force")[0] == 0
    assert len(list(lora.rglob("*.safetensors"))) == 61


def test_sample_writes_into_an_empty_folder_and_over_its_own_sample(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert run(capsys, "sample", str(tmp_path / "empty"))[0] == 0
    assert (tmp_path / "empty" / MARKER).is_file()
    assert run(capsys, "sample", str(tmp_path / "empty"))[0] == 0  # its own sample: fine


def test_empty_prompt(store: Path, capsys) -> None:
    for prompt in ("", "   "):
        code, out, err = run(capsys, "suggest", prompt, "--store", str(store))
        assert code == 2 and out == ""
        assert err.strip() == "pixtention suggest: the prompt is empty; nothing to suggest for"


def test_k_zero_says_so(store: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "suggest", "ink wash painting of a tabby cat", "--store", str(store), "--k", "0"
    )
    assert code == 0 and "--k is 0" in out and "threshold" not in out
    code, out, err = run(capsys, "suggest", "a cat", "--store", str(store), "--k", "0", "--json")
    assert code == 0 and json.loads(out) == [] and "--k is 0" in err


def test_nothing_above_the_threshold_names_the_threshold(store: Path, capsys) -> None:
    code, out, _ = run(capsys, "suggest", "a cat", "--store", str(store), "--threshold", "1")
    first, *more = out.strip().splitlines()
    assert code == 0 and first == (
        "no adapter fits this prompt (nothing scored above the threshold 1; --threshold lowers it)"
    )
    # what is relevant is still listed, to pin from
    assert more and more[0].startswith("also relevant, not applied") and "cat" in " ".join(more)


def test_empty_folder_and_empty_index(tmp_path: Path, capsys, hash_models) -> None:
    (tmp_path / "empty").mkdir()
    store = tmp_path / "store"
    code, out, err = run(capsys, "index", str(tmp_path / "empty"), "--store", str(store))
    assert code == 0 and out.startswith("0 adapters indexed")
    assert f"found no adapter files (.safetensors) in {tmp_path / 'empty'}" in err
    code, out, err = run(capsys, "suggest", "a cat", "--store", str(store))
    assert code == 2 and out == ""
    assert "holds no adapters" in err and "no adapter fits" not in err


def test_a_folder_of_problem_files_says_none_is_usable(tmp_path: Path, capsys, hash_models) -> None:
    (tmp_path / "Lora").mkdir()
    (tmp_path / "Lora" / "notes.safetensors").write_text("just some notes, renamed by mistake\n")
    code, _, err = run(capsys, "index", str(tmp_path / "Lora"), "--store", str(tmp_path / "s"))
    assert code == 0 and "none of the 1 file(s)" in err


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello, this is a text file renamed to .safetensors\n", "it starts with text"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "no safetensors header at its start"),
    ],
)
def test_a_file_that_is_not_safetensors_is_called_that(
    tmp_path: Path, capsys, content: bytes, reason: str
) -> None:
    path = tmp_path / "renamed.safetensors"
    path.write_bytes(content)
    code, _, err = run(capsys, "show", str(path))
    assert code == 1
    assert err.strip() == f"pixtention show: {path}: not a safetensors file ({reason})"
    assert "cap" not in err and "bytes" not in err


def test_a_real_header_over_the_cap_is_still_reported_as_such(tmp_path: Path, capsys) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 10**10) + b'{"a": 1}')
    code, _, err = run(capsys, "show", str(path))
    assert code == 1 and "exceeds the 100 MB cap" in err
