"""What a job's infotext records is what ran (issue 12): a pick whose file changed after
indexing, or whose tag weight is not a number a LoRA can use, is skipped with a note and is
not listed among the picks."""

from __future__ import annotations

from pixtention.curator.indexer import index_folder
from tests.test_webui_job import ON, PROMPTS, Rig, pixtention_info
from tests.webui_support import THEMES, stand_in, write_tiny_library  # noqa: F401


def _own_library(tmp_path):
    loras, store = tmp_path / "Lora", tmp_path / "store"
    write_tiny_library(loras)
    assert index_folder(loras, store, captions=False).adapters == len(THEMES)
    return loras, store


def test_a_file_changed_after_indexing_is_skipped_and_not_recorded(stand_in, tmp_path, capfd):  # noqa: F811
    loras, store = _own_library(tmp_path)
    (broken,) = loras.rglob("redcar.safetensors")
    broken.write_bytes(broken.read_bytes()[:200])  # truncated since the index was made
    rig = Rig((loras, store))
    capfd.readouterr()
    _, processed = rig.run(ON, prompts=PROMPTS[:1], steps=2)
    info = pixtention_info(processed.infotexts[0])
    assert {pick["name"] for pick in info["picks"]} == {"tabbycat"}  # only what was applied
    assert any(note.startswith("redcar:") for note in info["notes"]), info
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert rig.hook_count() == 0


def test_a_tag_weight_that_is_not_usable_is_skipped_with_a_note(stand_in, tmp_path):  # noqa: F811
    rig = Rig(_own_library(tmp_path))
    prompt = "a tabby cat <lora:tabbycat:50>, a red sports car <lora:redcar:0.7>"
    _, processed = rig.run([True, "regionalise", 2], prompts=[prompt], steps=2)
    info = pixtention_info(processed.infotexts[0])
    assert [(pick["name"], pick["w"]) for pick in info["picks"]] == [("redcar", 0.7)]
    assert any("tabbycat" in note and "not a usable weight" in note for note in info["notes"])
    # Not a number at all: the prompt parser reads the tag's weight as unset (1), never inf.
    inf = "a tabby cat <lora:tabbycat:1e999>, a red sports car"
    _, processed = rig.run([True, "regionalise", 2], prompts=[inf], steps=2)
    weights = [pick["w"] for pick in pixtention_info(processed.infotexts[0])["picks"]]
    assert weights == [1.0]
