"""Captioner: the real BLIP code path on a tiny random BLIP built offline; caching; fallback."""

from __future__ import annotations

import pytest

from pixtention.curator import index_folder, open_library
from pixtention.curator.captioner import CaptionerError, TransformersCaptioner, make_captioner
from tests.test_curator_fixtures import HashEmbedder, civitai_info, write_lora

WORDS = ["a", "cat", "dog", "city", "painting", "of", "the", "in", "night", "red", "knight"]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """A randomly initialised BLIP (tiny vision + text towers) and its processor, saved locally."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny_blip")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    text = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=48, max_position_embeddings=64, bos_token_id=2, sep_token_id=3,
                pad_token_id=0, eos_token_id=3)  # fmt: skip
    vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=48, image_size=32, patch_size=8)  # fmt: skip
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    model.save_pretrained(folder)
    return str(folder)


def test_tiny_blip_captions_png_previews(tiny_blip, tmp_path):
    paths = [write_lora(tmp_path / f"l{i}.safetensors", seed=i, preview=True) for i in range(3)]
    previews = [str(p.with_name(p.name[: -len(".safetensors")] + ".preview.png")) for p in paths]
    (tmp_path / "broken.png").write_bytes(b"not an image")
    captioner = TransformersCaptioner(tiny_blip, batch_size=2, max_new_tokens=6)
    captions = captioner.caption([*previews, str(tmp_path / "broken.png")])
    assert len(captions) == 4 and captions[3] == ""
    for caption in captions[:3]:  # random weights, but the words come from our vocabulary
        assert caption and set(caption.split()) <= set(WORDS)
    assert captioner.caption(previews[:1]) == captions[:1]  # deterministic (greedy)


def test_indexing_captions_once_and_caches_by_fingerprint(tiny_blip, tmp_path):
    folder = tmp_path / "Lora"
    info = civitai_info("Night City", ["city"], ["city"])
    write_lora(folder / "a" / "night_city.safetensors", seed=1, civitai=info, preview=True)
    write_lora(folder / "b" / "plain.safetensors", seed=2)  # no preview: nothing to caption

    class Counting(TransformersCaptioner):
        images = 0

        def caption(self, images):
            Counting.images += len(images)
            return super().caption(images)

    captioner = Counting(tiny_blip, max_new_tokens=6)
    report = index_folder(folder, tmp_path / "s", embedder=HashEmbedder(), captioner=captioner)
    assert report.captioned == 1 and Counting.images == 1
    record = open_library(tmp_path / "s").find("night_city")
    assert record.fields["caption"] and "Preview: " + record.fields["caption"] in record.document
    # moving the file (and its preview) keeps its caption: no new captioning
    (folder / "c").mkdir()
    for p in (folder / "a").iterdir():
        p.rename(folder / "c" / p.name)
    report = index_folder(folder, tmp_path / "s", embedder=HashEmbedder(), captioner=captioner)
    assert report.moved == 1 and Counting.images == 1
    assert (
        open_library(tmp_path / "s").find("night_city").fields["caption"]
        == (record.fields["caption"])
    )


def test_unloadable_captioner_is_reported_once_and_indexing_continues(tmp_path):
    folder = tmp_path / "Lora"
    for i in range(3):
        write_lora(folder / f"l{i}.safetensors", seed=i, preview=True)
    missing = str(tmp_path / "no-such-model")
    report = index_folder(folder, tmp_path / "s", embedder=HashEmbedder(), captioner=missing)
    notes = [m for m in report.messages if "captions off" in m]
    assert len(notes) == 1 and "no-such-model" in notes[0]
    assert report.adapters == 3 and report.captioned == 0
    with pytest.raises(CaptionerError, match="cannot load captioning model"):
        make_captioner(missing).caption(["x.png"])
