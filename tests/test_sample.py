"""The sample library: real SD1.5/SDXL key names and shapes, realistic headers, sidecars, previews."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from PIL import Image

from pixtention.cli import main
from pixtention.library.errors import LibraryError
from pixtention.library.keymap import map_stems, map_to_model
from pixtention.library.safetensors_file import read_header
from pixtention.library.sample import sd15_unet_modules, write_sample
from pixtention.library.weights import delta_weight, load_weights
from tests.rig.factory import sdxl_modules


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("sample")
    return root, write_sample(root, broken=True, seed=0)


def _adapters(written):
    return [item for item in written if item.problem is None]


def test_sixty_themed_adapters_in_six_theme_folders(sample):
    """Enough adapters for the indexer to cluster them (it keeps < 50 in one cluster)."""
    root, written = sample
    adapters = _adapters(written)
    assert 50 <= len(adapters) <= 64
    folders = {item.path.parent.name for item in adapters}
    assert folders == {"styles", "characters", "backgrounds", "clothing", "objects", "concepts"}
    assert len({item.path.stem for item in adapters}) == len(adapters)
    assert all(item.path.stat().st_size < 200_000 for item in adapters)
    kinds = {load_weights(item.path).kind for item in adapters}
    assert {"lora", "locon", "loha", "lokr"} <= kinds


def test_sd15_adapters_use_real_sd15_names_and_shapes(sample):
    _, written = sample
    real = {
        "lora_unet_" + name.replace(".", "_"): shape for name, shape in sd15_unet_modules().items()
    }
    sd15 = [i for i in _adapters(written) if "xl" not in i.path.stem]
    for item in sd15:
        header = read_header(item.path)
        weights = load_weights(item.path)
        assert 2 <= len(weights.unet) <= 8, item.path
        for stem, delta in weights.unet.items():
            out = real[stem][0]
            factors = delta.factors
            produced = factors.up.shape[0] if hasattr(factors, "up") else None
            assert produced in (out, None)
            assert stem in real
        attn2_k = [n for n, t in header.tensors.items() if "attn2_to_k.lora_down" in n]
        assert all(header.tensors[n].shape[1] == 768 for n in attn2_k)


def test_sd15_stems_map_onto_the_full_size_ldm_unet(sample):
    """Real SD1.5 widths (320/640/1280 channels, 768 context) on the ldm UNet built on "meta"."""
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    from tests.rig.unet import SD15_LAYOUT

    with torch.device("meta"):
        unet = UNetModel(
            image_size=64, model_channels=320, context_dim=768, num_heads=8, **SD15_LAYOUT
        )
    _, written = sample
    live = dict(unet.named_modules())
    for item in _adapters(written):
        if "xl" in item.path.stem:
            continue
        weights = load_weights(item.path)
        mapped = map_to_model(weights, live)
        assert mapped.unmatched == (), item.path
        for name, delta in mapped.targets.items():
            weight = live[name].weight
            assert delta_weight(delta, torch.zeros(weight.shape)).shape == weight.shape


def test_sdxl_adapter_has_2048_context_and_maps_on_sdxl(sample):
    _, written = sample
    (xl,) = [i for i in _adapters(written) if "xl" in i.path.stem]
    weights = load_weights(xl.path)
    modules = sdxl_modules()
    found, unmatched = map_stems(weights.unet, list(modules))
    assert unmatched == ()
    for stem, name in found.items():
        assert weights.unet[stem].factors.down.shape[1] == modules[name][1] == 2048
    assert {s[:8] for s in weights.text_encoder} == {"lora_te1", "lora_te2"}


def test_headers_are_realistic(sample):
    _, written = sample
    for item in _adapters(written):
        header = read_header(item.path)
        meta = header.metadata
        assert meta["ss_output_name"] == item.path.stem
        frequency = json.loads(meta["ss_tag_frequency"])
        assert all(isinstance(c, int) for tags in frequency.values() for c in tags.values())
        assert meta["ss_network_dim"] == str(header_rank(header))
        blob = item.path.read_bytes()
        (length,) = struct.unpack("<Q", blob[:8])
        assert meta["sshs_model_hash"] == hashlib.sha256(blob[8 + length :]).hexdigest()
        if "modelspec.hash_sha256" in meta:
            assert meta["modelspec.hash_sha256"] == "0x" + meta["sshs_model_hash"]


def header_rank(header) -> int:
    from pixtention.library.layout import classify

    return classify(header.tensors).rank


def test_sidecars_and_previews(sample):
    _, written = sample
    adapters = _adapters(written)
    infos = [i.path.with_suffix(".civitai.info") for i in adapters]
    infos = [p for p in infos if p.exists()]
    users = [p for p in (i.path.with_suffix(".json") for i in adapters) if p.exists()]
    texts = [p for p in (i.path.with_suffix(".txt") for i in adapters) if p.exists()]
    assert len(infos) >= 3 and len(users) >= 3 and len(texts) >= 2
    for path in infos:
        info = json.loads(path.read_text())
        assert info["trainedWords"] and info["baseModel"] and "<" in info["description"]
    for path in users:
        user = json.loads(path.read_text())
        assert {"description", "activation text", "preferred weight", "sd version"} <= set(user)
    for item in adapters:
        previews = [item.path.with_suffix(s) for s in (".png", ".preview.png")]
        (preview,) = [p for p in previews if p.exists()]
        with Image.open(preview) as image:
            assert image.size == (128, 128) and len(set(image.getdata())) > 3


def test_broken_files_fail_with_one_line_reasons(sample):
    _, written = sample
    problems = [item for item in written if item.problem]
    assert len(problems) == 4
    suffixes = {item.path.suffix for item in problems}
    assert ".pt" in suffixes
    for item in problems:
        with pytest.raises(LibraryError) as info:
            load_weights(item.path)
        assert "\n" not in str(info.value)


def test_deterministic_for_a_seed(tmp_path):
    first = write_sample(tmp_path / "a", seed=7)
    second = write_sample(tmp_path / "b", seed=7)
    other = write_sample(tmp_path / "c", seed=8)
    for a, b, c in zip(first, second, other):
        assert a.path.read_bytes() == b.path.read_bytes()
        assert a.path.read_bytes() != c.path.read_bytes()


def test_command_line(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "lib"), "--broken", "--list"]) == 0
    out = capsys.readouterr().out
    assert "sample adapters" in out and "broken/empty.safetensors" in out
    assert len(list((tmp_path / "lib").rglob("*.safetensors"))) >= 15


def test_factory_sidecars_preview_and_metadata(tmp_path):
    from tests.rig.factory import write_lora

    path = write_lora(
        tmp_path / "sub" / "my_style.safetensors",
        metadata={"ss_output_name": "renamed", "modelspec.title": "My Style"},
        sidecars={
            ".json": {"activation text": "mystyle"},
            ".txt": "notes",
            ".civitai.info": {"trainedWords": ["a"]},
        },
        preview=True,
    )
    meta = read_header(path).metadata
    assert meta["ss_output_name"] == "renamed" and meta["modelspec.title"] == "My Style"
    assert json.loads(meta["ss_tag_frequency"])
    assert json.loads(path.with_suffix(".json").read_text()) == {"activation text": "mystyle"}
    assert path.with_suffix(".txt").read_text() == "notes"
    assert path.with_suffix(".civitai.info").exists()
    with Image.open(path.with_suffix(".preview.png")) as image:
        assert image.size == (128, 128)


def test_synthetic_library_headers_are_varied_and_readable(tmp_path):
    from tests.rig.factory import write_synthetic_library

    paths = write_synthetic_library(tmp_path, 60, seed=1, per_folder=25)
    assert len(paths) == 60 and len({p.parent for p in paths}) == 3
    names = {read_header(p).metadata["ss_output_name"] for p in paths}
    comments = {read_header(p).metadata["ss_training_comment"].split(",")[0] for p in paths}
    assert len(names) == 60 and len(comments) > 20
    fingerprints = {read_header(p).fingerprint for p in paths}
    assert len(fingerprints) == 60
    assert load_weights(paths[0]).rank == 1


def test_a_part_of_the_sample(tmp_path):
    """The selector's hand-made benchmark indexes the dozen its cases were written for."""
    from pixtention.library.sample_themes import FIRST_DOZEN

    written = write_sample(tmp_path, themes=FIRST_DOZEN)
    assert [item.path.stem for item in written] == [theme.name for theme in FIRST_DOZEN]
