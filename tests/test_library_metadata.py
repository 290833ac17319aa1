"""Metadata merge, sidecars, HTML → text and previews (pixtention.library.metadata & co.)."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from pixtention.library import read_adapter
from pixtention.library.html_text import html_to_text
from pixtention.library.metadata import (
    DESCRIPTION_CHARS,
    decode_tag_frequency,
    folders_between,
    infer_category,
    read_metadata,
    top_training_tags,
)
from pixtention.library.previews import embedded_previews, find_previews, has_embedded_preview
from pixtention.library.sidecars import SIDECAR_CAP, read_sidecars
from tests.test_library_read import write_lora

# -- HTML ----------------------------------------------------------------------------------


def test_html_keeps_paragraphs_breaks_and_lists_and_drops_scripts() -> None:
    html = (
        "<h1>Lux</h1><p>Use weight <strong>0.8</strong> &amp; the word <em>lux</em>.</p>"
        "<p>Line one<br>line two<br/>line three</p><script>alert('x')</script>"
        "<style>p { color: red }</style><ul><li>first</li><li>second</li></ul>"
        "<p>caf&eacute; &#x2713; &lt;tag&gt;</p>"
    )
    assert html_to_text(html) == (
        "Lux\n\nUse weight 0.8 & the word lux.\n\nLine one\nline two\nline three\n\n"
        "- first\n- second\n\ncafé ✓ <tag>"
    )


@pytest.mark.parametrize(
    "html",
    ["<p>unclosed <b>bold <i>both", "</div></p>stray closers", "<<<>>>&&&;;", "<!-- open", "<a"],
)
def test_malformed_html_never_raises_and_keeps_the_words(html: str) -> None:
    text = html_to_text(html)
    assert "<b>" not in text and "<i>" not in text
    for word in ("unclosed", "bold", "both", "stray", "closers"):
        if word in html:
            assert word in text


def test_plain_text_keeps_its_line_breaks_and_limit_truncates_at_a_word() -> None:
    assert html_to_text("one\n\ntwo &amp; three") == "one\n\ntwo & three"
    text = html_to_text("<p>" + "word " * 100 + "</p>", limit=52)
    assert len(text) <= 52 and text.endswith("…") and text[:-1].split()[-1] == "word"


# -- tag frequency -------------------------------------------------------------------------


def test_tag_frequency_is_summed_across_datasets() -> None:
    datasets = {
        "10_lux": {"1girl": 40, "blonde hair": 35, " staff ": 3},
        "5_lux_outfit": {"1girl": 12, "armor": 20, "staff": "4"},
        "bad": ["not", "a", "dict"],
    }
    counts, warning = decode_tag_frequency(json.dumps(datasets))
    assert warning is None
    expected: Counter[str] = Counter()
    for tags in datasets.values():
        if isinstance(tags, dict):
            for tag, count in tags.items():
                expected[tag.strip()] += float(count)
    assert counts == expected
    assert top_training_tags(counts)[:3] == ["1girl", "blonde hair", "armor"]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "[" * 100000 + "]" * 100000])
def test_malformed_tag_frequency_is_a_warning(raw: str) -> None:
    counts, warning = decode_tag_frequency(raw)
    assert not counts and warning and warning.startswith("ss_tag_frequency")


def test_caption_style_tags_become_frequent_words() -> None:
    counts = Counter(
        {"a watercolor painting of a fox in snow": 3, "a watercolor painting of a city": 2}
    )
    assert top_training_tags(counts)[:2] == ["painting", "watercolor"]


# -- sidecars ------------------------------------------------------------------------------


def _lora(tmp_path: Path, name: str = "lux", metadata: dict[str, str] | None = None) -> Path:
    return write_lora(tmp_path / f"{name}.safetensors", metadata)


def test_oversized_malformed_and_odd_sidecars_are_skipped_with_warnings(tmp_path: Path) -> None:
    path = _lora(tmp_path)
    (tmp_path / "lux.json").write_bytes(b"{" + b" " * SIDECAR_CAP + b"}")
    (tmp_path / "lux.civitai.info").write_bytes(b'{"trainedWords": ["x"')
    (tmp_path / "lux.api_info.json").write_text("[1, 2, 3]")
    os.mkfifo(tmp_path / "lux.metadata.json")
    (tmp_path / "lux.txt").write_bytes(b"\xff\xfe binary \x00 junk")
    sidecars = read_sidecars(path)
    assert sidecars.user == {} and sidecars.civitai_info == {} and sidecars.api_info == {}
    assert sidecars.found == ("lux.txt",)
    assert "binary" in sidecars.text and "\x00" not in sidecars.text
    joined = "\n".join(sidecars.warnings)
    assert "lux.json" in joined and "exceeds" in joined
    assert "lux.civitai.info: malformed JSON" in joined
    assert "lux.api_info.json: expected a JSON object" in joined
    assert "lux.metadata.json: not a regular file" in joined
    info = read_adapter(path)  # and the adapter itself still reads
    assert len(info.metadata.warnings) == 4


def test_deeply_nested_sidecar_json_is_a_warning(tmp_path: Path) -> None:
    path = _lora(tmp_path)
    (tmp_path / "lux.json").write_text("[" * 200000 + "]" * 200000)
    assert any("lux.json" in w for w in read_sidecars(path).warnings)


# -- merge precedence ----------------------------------------------------------------------

SS = {
    "ss_output_name": "lux_kohya",
    "ss_training_comment": "trained on 40 images",
    "ss_tag_frequency": json.dumps({"10_lux": {"1girl": 9, "blonde hair": 7}}),
    "ss_base_model_version": "sd_v1",
    "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
}
MODELSPEC = {
    "modelspec.title": "Lux (modelspec)",
    "modelspec.description": "modelspec description",
    "modelspec.trigger_phrase": "lux_ms",
    "modelspec.usage_hint": "Use with weight 0.65",
    "modelspec.tags": "character, league of legends",
    "modelspec.architecture": "stable-diffusion-v1/lora",
}
CIVITAI_INFO = {
    "id": 7582,
    "modelId": 3774,
    "name": "lux_v1",
    "baseModel": "SD 1.5",
    "trainedWords": ["luxanna crownguard, staff"],
    "description": "<p>Version <b>notes</b></p>",
    "model": {"name": "Lux from League of Legends", "type": "LORA"},
    "images": [{"meta": {"prompt": "luxanna crownguard <lora:lux:0.9>"}}, {"meta": None}],
}
USER = {
    "description": "My own <i>words</i>",
    "activation text": "lux, blonde",
    "preferred weight": 0.75,
    "sd version": "SD1",
    "notes": "keep",
    "negative text": "staff",
}


def _merged(tmp_path: Path, header: dict[str, str], sidecars: dict[str, object]):
    path = _lora(tmp_path, metadata=header)
    for suffix, content in sidecars.items():
        target = tmp_path / f"lux{suffix}"
        target.write_text(content if isinstance(content, str) else json.dumps(content))
    return read_metadata(path, header, tmp_path)[0]


def test_user_metadata_wins_over_every_other_source(tmp_path: Path) -> None:
    meta = _merged(
        tmp_path,
        {**SS, **MODELSPEC},
        {".json": USER, ".civitai.info": CIVITAI_INFO, ".txt": "text file description"},
    )
    assert meta.description == "My own words"
    assert meta.triggers == ("lux", "blonde")
    assert (meta.preferred_weight, meta.weight_source) == (0.75, "user")
    assert (meta.notes, meta.negative_text) == ("keep", "staff")
    assert meta.base_model_hint == "SD1"
    assert meta.title == "Lux from League of Legends"  # name.json has no title
    assert meta.sources == ("lux.json", "lux.civitai.info", "lux.txt", "modelspec.*", "ss_*")


def test_civitai_then_modelspec_then_kohya_then_text_files(tmp_path: Path) -> None:
    civitai = _merged(tmp_path / "a", {**SS, **MODELSPEC}, {".civitai.info": CIVITAI_INFO})
    assert civitai.description == "Version notes"
    assert civitai.triggers == ("luxanna crownguard", "staff")
    assert (civitai.preferred_weight, civitai.weight_source) == (0.9, "civitai")
    assert civitai.civitai == {
        "model_id": 3774,
        "version_id": 7582,
        "url": "https://civitai.com/models/3774?modelVersionId=7582",
        "type": "LORA",
        "version_name": "lux_v1",
    }
    assert civitai.example_prompts == ("luxanna crownguard <lora:lux:0.9>",)
    assert civitai.base_model_hint == "SD 1.5"

    modelspec = _merged(tmp_path / "b", {**SS, **MODELSPEC}, {".txt": "from the text file"})
    assert modelspec.title == "Lux (modelspec)"
    assert modelspec.description == "modelspec description"
    assert modelspec.triggers == ("lux_ms",)
    assert (modelspec.preferred_weight, modelspec.weight_source) == (0.65, "modelspec")
    assert modelspec.category == "character"
    assert modelspec.tags == ("1girl", "blonde hair", "character", "league of legends")

    kohya = _merged(tmp_path / "c", SS, {".description.txt": "described", ".txt": "plain"})
    assert kohya.title == "lux_kohya"
    assert kohya.description == "trained on 40 images"
    assert kohya.triggers == () and kohya.preferred_weight is None
    assert kohya.base_model_hint == "sd_v1"

    bare = _merged(tmp_path / "d", {}, {".description.txt": "described", ".txt": "plain"})
    assert (bare.title, bare.description) == ("lux", "described")
    assert _merged(tmp_path / "e", {}, {".txt": "plain"}).description == "plain"


def test_api_info_model_object_picks_the_version_that_lists_the_file(tmp_path: Path) -> None:
    model = {
        "id": 10,
        "name": "Model Name",
        "type": "LORA",
        "description": "<p>About the model</p>",
        "tags": [{"name": "style"}, "watercolor"],
        "modelVersions": [
            {"id": 2, "name": "v2", "baseModel": "SDXL 1.0", "trainedWords": ["new"],
             "files": [{"name": "other.safetensors"}]},
            {"id": 1, "name": "v1", "baseModel": "SD 1.5", "trainedWords": ["old"],
             "files": [{"name": "LUX.safetensors"}]},
        ],
    }  # fmt: skip
    meta = _merged(tmp_path, {}, {".api_info.json": model})
    assert meta.title == "Model Name"
    assert meta.triggers == ("old",)
    assert meta.base_model_hint == "SD 1.5"
    assert meta.tags == ("style", "watercolor")
    assert meta.category == "style"
    assert meta.description == "About the model"
    assert meta.civitai["version_id"] == 1


def test_lora_manager_metadata_json(tmp_path: Path) -> None:
    sidecar = {
        "model_name": "LM Name",
        "base_model": "Illustrious",
        "tags": ["clothing", "dress"],
        "modelDescription": "<p>LM description</p>",
        "usage_tips": json.dumps({"strength": 0.6}),
        "notes": "lm notes",
        "civitai": {"id": 5, "modelId": 6, "trainedWords": ["red dress"]},
    }
    meta = _merged(tmp_path, {}, {".metadata.json": sidecar})
    assert (meta.title, meta.description, meta.notes) == ("LM Name", "LM description", "lm notes")
    assert (meta.preferred_weight, meta.weight_source) == (0.6, "lora-manager")
    assert meta.triggers == ("red dress",)
    assert meta.category == "clothing"
    assert meta.base_model_hint == "Illustrious"
    assert meta.civitai["model_id"] == 6


def test_user_weight_zero_means_default_and_wrong_types_are_ignored(tmp_path: Path) -> None:
    user = {"preferred weight": 0, "activation text": ["not", "text"], "description": 5}
    meta = _merged(tmp_path, MODELSPEC, {".json": user})
    assert meta.weight_source == "modelspec"
    assert meta.triggers == ("lux_ms",)
    assert meta.description == "modelspec description"


def test_long_descriptions_are_truncated_and_reported(tmp_path: Path) -> None:
    long = "<p>" + "lorem ipsum " * 1000 + "</p>"
    meta = _merged(tmp_path, {}, {".civitai.info": {"description": long}})
    assert len(meta.description) <= DESCRIPTION_CHARS
    assert any("truncated" in w for w in meta.warnings)


def test_folders_are_relative_to_the_root_and_name_categories(tmp_path: Path) -> None:
    path = write_lora(tmp_path / "Characters" / "games" / "lux.safetensors")
    assert folders_between(path, tmp_path) == ("Characters", "games")
    assert folders_between(path, tmp_path / "elsewhere") == ()
    assert folders_between(path, None) == ()
    meta = read_metadata(path, {}, tmp_path)[0]
    assert meta.folders == ("Characters", "games") and meta.category == "character"
    assert infer_category(["anime", "watercolor style"]) == "style"
    assert infer_category(["anime"], ["Backgrounds"]) == "background"
    assert infer_category(["anime", "girl"]) is None


# -- previews ------------------------------------------------------------------------------


def test_preview_files_best_first_and_case_insensitive(tmp_path: Path) -> None:
    path = _lora(tmp_path)
    for name in ("lux.png", "lux.preview.JPG", "lux.preview.webp", "unrelated.png"):
        (tmp_path / name).write_bytes(b"img")
    (tmp_path / "lux.jpeg").mkdir()  # a folder is not a preview
    assert [Path(p).name for p in find_previews(path)] == [
        "lux.preview.JPG",
        "lux.preview.webp",
        "lux.png",
    ]


def test_embedded_previews_from_kohya_and_modelspec() -> None:
    png = b"\x89PNG\r\n\x1a\n fake"
    cover = {"ssmd_cover_images": json.dumps([base64.b64encode(png).decode()])}
    thumb = {"modelspec.thumbnail": "data:image/png;base64," + base64.b64encode(png).decode()}
    assert embedded_previews(cover) == [png] and has_embedded_preview(cover)
    assert embedded_previews(thumb) == [png] and has_embedded_preview(thumb)
    assert not has_embedded_preview({"ssmd_cover_images": "not json"})
    assert not has_embedded_preview({"modelspec.thumbnail": "http://example.com/x.png"})
