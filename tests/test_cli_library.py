"""``python -m pixtention show`` and ``doctor`` on good, broken and hostile folders."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pixtention.cli import main
from pixtention.library import file_hashes, read_adapter
from pixtention.library.sample import write_sample
from pixtention.library.sample_themes import THEMES
from tests.test_library_read import kohya_tensors, write_lora


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """A folder with one good adapter per theme and one of each kind of problem."""
    root = tmp_path / "Lora"
    good = write_lora(root / "Styles" / "ink.safetensors", {"ss_output_name": "ink"})
    (good.parent / "ink.civitai.info").write_text(
        json.dumps({"trainedWords": ["ink wash"], "baseModel": "SD 1.5", "model": {"name": "Ink"}})
    )
    write_lora(root / "Characters" / "lux.safetensors", width=1024)
    (root / "broken.safetensors").write_bytes(struct.pack("<Q", 500) + b"{")
    (root / "old.ckpt").write_bytes(b"\x80\x02}q\x00.")
    (root / "huge.safetensors").write_bytes(struct.pack("<Q", 10**10) + b"{}")
    (root / "notes.txt").write_text("not an adapter file, not listed")
    (root / "Characters" / "loop").symlink_to(root, target_is_directory=True)
    (root / "self.safetensors").symlink_to(root / "self.safetensors")
    os.mkfifo(root / "pipe.safetensors")
    return root


def test_doctor_lists_every_file_with_one_line_and_exits_zero(
    library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "doctor", str(library))
    assert code == 0 and err == ""
    lines = out.splitlines()
    by_path = {line.split()[1].rstrip(":"): line for line in lines[:-1]}
    assert sorted(by_path) == [
        "Characters/lux.safetensors",
        "Styles/ink.safetensors",
        "broken.safetensors",
        "huge.safetensors",
        "old.ckpt",
        "pipe.safetensors",
        "self.safetensors",
    ]
    assert by_path["Styles/ink.safetensors"].startswith("ok ")
    assert "sd1/sd1.5" in by_path["Styles/ink.safetensors"]
    assert "sd2" in by_path["Characters/lux.safetensors"]
    assert "truncated" in by_path["broken.safetensors"]
    assert "100 MB cap" in by_path["huge.safetensors"]
    assert "unsupported format (pickle)" in by_path["old.ckpt"]
    assert "not a regular file" in by_path["pipe.safetensors"]
    assert "symbolic links" in by_path["self.safetensors"]
    assert lines[-1].startswith("7 file(s)") and "2 ok, 5 problem(s) (1 pickle)" in lines[-1]


def test_doctor_json_is_one_document_with_a_summary(
    library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "doctor", str(library), "--json")
    assert code == 0
    document = json.loads(out)
    assert document["folder"] == str(library)
    statuses = {row["path"]: row["status"] for row in document["files"]}
    assert statuses["Styles/ink.safetensors"] == "ok"
    assert statuses["broken.safetensors"] == "problem"
    assert all(row.get("reason") for row in document["files"] if row["status"] == "problem")
    assert document["summary"] == {
        "files": 7,
        "ok": 2,
        "problems": 5,
        "pickle": 1,
        "base_models": {"sd1": 1, "sd2": 1},
    }


def test_doctor_survives_an_unlistable_folder(
    library: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = library / "Characters"
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, out, _ = run(capsys, "doctor", str(library))
    assert code == 0
    assert "problem  Characters: cannot list folder: Permission denied" in out.splitlines()


def test_doctor_and_show_print_file_names_that_are_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_lora(tmp_path / "plain.safetensors")
    odd = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.safetensors"))
    os.rename(source, odd)
    code, out, _ = run(capsys, "doctor", str(tmp_path))
    assert code == 0 and out.startswith("ok       caf\\xe9.safetensors  lora r4 sd1")
    code, out, _ = run(capsys, "doctor", str(tmp_path), "--json")
    assert json.loads(out)["files"][0]["path"] == "caf\udce9.safetensors"
    code, out, _ = run(capsys, "show", odd, "--json")
    assert code == 0 and json.loads(out)["path"] == odd


def test_doctor_usage_errors_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "doctor", str(tmp_path / "missing"))
    assert (code, out) == (2, "") and "not a folder" in err
    file = write_lora(tmp_path / "a.safetensors")
    assert run(capsys, "doctor", str(file))[0] == 2


def test_doctor_on_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["summary"]["files"] == 0


def test_show_json_has_metadata_base_model_modules_and_hashes(
    library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = library / "Styles" / "ink.safetensors"
    code, out, _ = run(capsys, "show", str(path), "--json")
    assert code == 0
    document = json.loads(out)
    assert document["title"] == "Ink"
    assert document["metadata"]["triggers"] == ["ink wash"]
    assert document["kind"] == "lora" and document["rank"] == 4 and document["alpha"] == 2.0
    assert document["base_model"]["family"] == "sd1"
    assert document["base_model"]["variant"] == "sd1.5"
    stems = sorted({name.rsplit(".", 2)[0] for name in kohya_tensors()})
    assert document["modules"]["unet"] == stems
    assert document["modules"]["count"] == len(stems)
    hashes = file_hashes(path)
    assert document["hashes"] == {
        "sha256": hashes.sha256,
        "autov2": hashes.autov2,
        "autov3": hashes.autov3,
    }
    assert document["header_metadata"] == {"ss_output_name": "ink"}


def test_show_text_and_no_hashes(library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = library / "Styles" / "ink.safetensors"
    code, out, _ = run(capsys, "show", str(path))
    assert code == 0
    assert out.startswith("ink: Ink\n")
    assert "sd1 (sd1.5) — context width 768" in out
    assert "ink wash" in out and file_hashes(path).autov2 in out
    code, out, _ = run(capsys, "show", str(path), "--json", "--no-hashes")
    assert json.loads(out)["hashes"] is None


def test_show_problems_and_usage_errors(library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = str(library / "broken.safetensors")
    code, out, err = run(capsys, "show", broken)
    assert code == 1 and out == "" and err.count("\n") == 1 and "truncated" in err
    code, out, _ = run(capsys, "show", broken, "--json")
    assert code == 1 and json.loads(out)["status"] == "problem"
    code, _, err = run(capsys, "show", str(library / "missing.safetensors"))
    assert code == 2 and "no such file" in err


def test_module_entry_point_runs_doctor(library: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pixtention", "doctor", str(library), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["ok"] == 2


def test_doctor_on_the_sample_library_matches_what_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_sample(tmp_path, broken=True)
    code, out, _ = run(capsys, "doctor", str(tmp_path), "--json")
    assert code == 0
    rows = {row["path"]: row for row in json.loads(out)["files"]}
    expected = {str(f.path.relative_to(tmp_path)): f.problem for f in written}
    assert set(rows) == set(expected)
    for path, problem in expected.items():
        assert rows[path]["status"] == ("ok" if problem is None else "problem"), path
    families = Counter("sdxl" if theme.base == "sdxl" else "sd1" for theme in THEMES)
    assert json.loads(out)["summary"]["base_models"] == dict(families)
    for theme in THEMES:
        info = read_adapter(tmp_path / theme.folder / f"{theme.name}.safetensors", tmp_path)
        assert info.metadata.folders == (theme.folder,)
        assert info.layout.kind == theme.kind
        assert info.metadata.category == theme.category
        if theme.civitai or theme.modelspec:
            assert info.metadata.title == theme.title
        if theme.user_json or theme.civitai or theme.modelspec:
            assert info.metadata.triggers == theme.triggers


class _Captioner:
    """Stands in for the VLM: one fixed caption per preview image."""

    id = "test-fixed"

    def caption(self, images: list[str]) -> list[str]:
        return ["a watercolour fox in the snow" for _ in images]


def _doc(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run(capsys, "show", *argv, "--doc", "--json")
    assert code == 0, err
    return json.loads(out)


def test_show_doc_prints_what_the_indexer_embedded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pixtention.curator import index_folder, open_library
    from tests.test_curator_fixtures import HashEmbedder, civitai_info
    from tests.test_curator_fixtures import write_lora as write_curator_lora

    root, store = tmp_path / "Lora", tmp_path / "store"
    info = civitai_info("Snow Fox", ["ohwx fox", "k4r3nxq"], ["fox", "animal"], "<p>A fox.</p>")
    fox = write_curator_lora(root / "animals" / "snow_fox.safetensors", civitai=info, preview=True)
    write_curator_lora(root / "other.safetensors", seed=3)
    emb = HashEmbedder()
    index_folder(root, store, embedder=emb, captioner=_Captioner())
    indexed = open_library(store, embedder=emb).find("snow_fox")

    shown = _doc(capsys, str(fox), "--store", str(store))
    doc = shown["document"]
    assert doc["text"] == indexed.document and doc["fields"] == indexed.fields
    assert shown["store"] == {"path": str(store), "state": "current"}
    assert shown["captions"] == ["a watercolour fox in the snow"] and shown["root"] == str(root)
    assert "Folder: animals" in doc["text"] and "watercolour fox" in doc["text"]
    assert doc["triggers"] == ["ohwx fox", "k4r3nxq"] == list(indexed.triggers)
    assert doc["embedded_triggers"] == ["fox"] and doc["prompt_only_triggers"] == ["k4r3nxq"]
    assert "ohwx" not in doc["text"] and "k4r3nxq" not in doc["text"]

    code, out, _ = run(capsys, "show", str(fox), "--doc", "--store", str(store))
    assert code == 0 and out.startswith(f"snow_fox: document ({len(indexed.document)} characters")
    assert "prompt only    k4r3nxq" in out and "indexed with this text" in out
    assert " ".join(out.split()).count(" ".join(indexed.document.split()[:8])) == 1

    # without the store: no captions, no folder themes unless --root says where the library is
    bare = _doc(capsys, str(fox), "--store", str(tmp_path / "none"))
    assert (
        bare["store"] is None
        and bare["captions"] == []
        and "Folder:" not in bare["document"]["text"]
    )
    rooted = _doc(capsys, str(fox), "--store", str(tmp_path / "none"), "--root", str(root))
    assert "Folder: animals" in rooted["document"]["text"]

    # the sidecar changed after indexing: the store's text is stale until the next index run
    info["model"]["description"] = "<p>An arctic fox.</p>"
    (fox.parent / "snow_fox.civitai.info").write_text(json.dumps(info))
    assert _doc(capsys, str(fox), "--store", str(store))["store"]["state"] == "stale"
    stray = write_curator_lora(tmp_path / "elsewhere" / "stray.safetensors", seed=9)
    assert _doc(capsys, str(stray), "--store", str(store))["store"]["state"] == "absent"


def test_show_doc_problems(library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = str(library / "broken.safetensors")
    code, out, _ = run(capsys, "show", broken, "--doc", "--json", "--store", str(library / "s"))
    assert code == 1 and json.loads(out)["status"] == "problem"
    code, out, err = run(capsys, "show", broken, "--doc", "--store", str(library / "s"))
    assert code == 1 and out == "" and "truncated" in err
    code, _, err = run(capsys, "show", str(library / "missing.safetensors"), "--doc")
    assert code == 2 and "no such file" in err
