"""Documents: structured, bounded text; gibberish trigger tokens kept for prompting only."""

from __future__ import annotations

import pytest

from pixtention.curator.documents import (
    MAX_CHARS,
    build_document,
    embeddable_trigger,
    infer_kind,
    is_gibberish_word,
)
from pixtention.library.info import (
    AdapterFile,
    AdapterInfo,
    AdapterMetadata,
    BaseModel,
    Layout,
)


def make_info(**meta) -> AdapterInfo:
    defaults = dict(name="my_lora", title="My LoRA")
    defaults.update(meta)
    return AdapterInfo(
        file=AdapterFile("/lib/my_lora.safetensors", 10, 0.0, "10:abc", {}, {}),
        layout=Layout("lora", 8, 8.0, ("m",), (), ()),
        base_model=BaseModel("sd1", "sd1.5"),
        metadata=AdapterMetadata(**defaults),
    )


@pytest.mark.parametrize(
    "word", ["sks", "ohwx", "3f9a2c7e1b", "k4r3n", "xzqrt", "bcdfgh", "zxcv", "1234"]
)
def test_gibberish_words_are_detected(word):
    assert is_gibberish_word(word)


@pytest.mark.parametrize(
    "word", ["vhs", "watercolor", "knight", "1girl", "armor1", "cyberpunk", "strength", "日本"]
)
def test_real_words_are_not_gibberish(word):
    assert not is_gibberish_word(word)


def test_embeddable_trigger_keeps_only_words():
    assert embeddable_trigger("ohwx man") == "man"
    assert embeddable_trigger("sks") == ""
    assert embeddable_trigger("vhs footage of") == "vhs footage of"


def test_gibberish_triggers_are_kept_for_prompting_but_not_embedded():
    info = make_info(title="Lux", triggers=("ohwx", "luxanna crownguard", "sks woman"))
    doc = build_document(info)
    assert doc.triggers == ("ohwx", "luxanna crownguard", "sks woman")
    assert doc.embedded_triggers == ("luxanna crownguard", "woman")
    assert "ohwx" not in doc.text and "sks" not in doc.text
    assert "luxanna crownguard" in doc.text


def test_document_fields_order_and_captions():
    info = make_info(
        title="Neon City",
        tags=("cyberpunk", "scenery", "neon"),
        folders=("backgrounds", "scifi"),
        description="Rainy streets full of signs.",
    )
    doc = build_document(info, captions=["a city street at night", "a city street at night"])
    assert list(doc.fields) == ["title", "kind", "tags", "folders", "caption", "description"]
    assert doc.fields["caption"] == "a city street at night"  # duplicates collapse
    assert doc.kind == "background"  # "scenery" names the kind
    assert doc.text.index("Neon City") < doc.text.index("cyberpunk") < doc.text.index("Rainy")


def test_document_is_bounded_and_description_is_cut_first():
    info = make_info(title="Huge", tags=("castle",), description="word " * 5000)
    doc = build_document(info)
    assert len(doc.text) <= MAX_CHARS + 1
    assert doc.text.startswith("Huge.") and "castle" in doc.text


def test_title_falls_back_to_file_name():
    doc = build_document(make_info(name="pixel_art-style.v2", title=""))
    assert doc.fields["title"] == "pixel art style v2"


def test_infer_kind():
    assert infer_kind("Character", ()) == "character"
    assert infer_kind(None, ("anime", "style")) == "style"
    assert infer_kind(None, ("outfit", "girl")) == "clothing"
    assert infer_kind(None, ("random",), "Watercolor Style") == "style"
    assert infer_kind(None, ("random",)) is None
