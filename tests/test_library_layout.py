"""Layout classification from tensor names and shapes (no tensor data)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixtention.library.info import TensorInfo
from pixtention.library.layout import classify, split_key, suffix_role

SD15_K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
SD15_CONV = "lora_unet_down_blocks_0_resnets_0_conv1"
TE = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"


def _t(*shape: int) -> TensorInfo:
    return TensorInfo("F16", tuple(shape))


def _lora(stem: str, rank: int, out: int, inp: int, kernel: int | None = None) -> dict:
    if kernel is None:
        down, up = _t(rank, inp), _t(out, rank)
    else:
        down, up = _t(rank, inp, kernel, kernel), _t(out, rank, 1, 1)
    return {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": _t()}


@pytest.mark.parametrize(
    ("name", "stem", "suffix", "role"),
    [
        (f"{SD15_K}.lora_down.weight", SD15_K, "lora_down.weight", "lora_down"),
        (f"{SD15_K}.alpha", SD15_K, "alpha", "alpha"),
        (f"{SD15_K}.hada_w1_a", SD15_K, "hada_w1_a", "hada_w1_a"),
        (f"{SD15_K}.lokr_w2_b", SD15_K, "lokr_w2_b", "lokr_w2_b"),
        (f"{SD15_K}.diff_b", SD15_K, "diff_b", "diff_b"),
        (f"{SD15_K}.weight", SD15_K, "weight", "ia3_weight"),
        (
            "unet.down_blocks.0.attn2.to_k.lora_A.weight",
            "unet.down_blocks.0.attn2.to_k",
            "lora_A.weight",
            "lora_A",
        ),
        (
            "base_model.model.down_blocks.0.attn2.to_k.lora_B.default.weight",
            "base_model.model.down_blocks.0.attn2.to_k",
            "lora_B.default.weight",
            "lora_B",
        ),
        (
            "unet.mid_block.attn1.to_q.lora.down.weight",
            "unet.mid_block.attn1.to_q",
            "lora.down.weight",
            "lora_A",
        ),
        ("x.lora_magnitude_vector.default", "x", "lora_magnitude_vector.default", "peft_magnitude"),
        (
            "diffusion_model.input_blocks.1.1.proj_in.lora_up.weight",
            "diffusion_model.input_blocks.1.1.proj_in",
            "lora_up.weight",
            "lora_up",
        ),
    ],
)
def test_split_key_separates_stem_and_factor(name, stem, suffix, role):
    assert split_key(name) == (stem, suffix)
    assert suffix_role(suffix) == role


def test_split_key_old_diffusers_attention_processors():
    block = "down_blocks.0.attentions.0.transformer_blocks.0"
    assert split_key(f"{block}.attn1.processor.to_out_lora.up.weight") == (
        f"{block}.attn1.to_out.0",
        "lora.up.weight",
    )
    assert split_key(f"unet.{block}.attn2.processor.to_k_lora.down.weight") == (
        f"unet.{block}.attn2.to_k",
        "lora.down.weight",
    )


def test_split_key_unknown_name_keeps_whole_name():
    assert split_key("bundle_emb.foo.string_to_param.*") == ("bundle_emb.foo.string_to_param.*", "")
    assert split_key("no_suffix_here") == ("no_suffix_here", "")
    assert suffix_role("string_to_param") is None


def test_plain_lora_with_text_encoder():
    tensors = {**_lora(SD15_K, 4, 320, 768), **_lora(TE, 4, 768, 768)}
    layout = classify(tensors)
    assert layout.kind == "lora"
    assert layout.rank == 4
    assert layout.alpha is None
    assert layout.unet_modules == (SD15_K,)
    assert layout.text_encoder_modules == (TE,)
    assert layout.unrecognised == ()


def test_spatial_conv_makes_locon_and_rank_is_most_common():
    tensors = {
        **_lora(SD15_K, 8, 320, 768),
        **_lora(SD15_K.replace("to_k", "to_v"), 8, 320, 768),
        **_lora(SD15_CONV, 2, 320, 320, kernel=3),
    }
    layout = classify(tensors)
    assert layout.kind == "locon"
    assert layout.rank == 8


def test_one_by_one_conv_stays_lora():
    layout = classify(_lora("lora_unet_down_blocks_0_attentions_0_proj_in", 4, 320, 320, kernel=1))
    assert layout.kind == "lora"


def test_tucker_mid_is_locon():
    tensors = {
        f"{SD15_CONV}.lora_down.weight": _t(4, 320, 1, 1),
        f"{SD15_CONV}.lora_mid.weight": _t(4, 4, 3, 3),
        f"{SD15_CONV}.lora_up.weight": _t(320, 4, 1, 1),
    }
    layout = classify(tensors)
    assert (layout.kind, layout.rank) == ("locon", 4)


def test_loha_lokr_ia3_full_dora_peft_kinds():
    loha = {f"{SD15_K}.hada_w1_a": _t(320, 6), f"{SD15_K}.hada_w1_b": _t(6, 768)}
    loha |= {f"{SD15_K}.hada_w2_a": _t(320, 6), f"{SD15_K}.hada_w2_b": _t(6, 768)}
    assert (classify(loha).kind, classify(loha).rank) == ("loha", 6)

    lokr = {f"{SD15_K}.lokr_w1": _t(8, 8), f"{SD15_K}.lokr_w2_a": _t(40, 3)}
    lokr |= {f"{SD15_K}.lokr_w2_b": _t(3, 96)}
    assert (classify(lokr).kind, classify(lokr).rank) == ("lokr", 3)
    full_lokr = {f"{SD15_K}.lokr_w1": _t(8, 8), f"{SD15_K}.lokr_w2": _t(40, 96)}
    assert (classify(full_lokr).kind, classify(full_lokr).rank) == ("lokr", None)

    ia3 = {f"{SD15_K}.weight": _t(768), f"{SD15_K}.on_input": _t()}
    assert (classify(ia3).kind, classify(ia3).rank) == ("ia3", None)

    full = {f"{SD15_K}.diff": _t(320, 768), f"{SD15_K}.diff_b": _t(320)}
    assert classify(full).kind == "full"

    dora = {**_lora(SD15_K, 4, 320, 768), f"{SD15_K}.dora_scale": _t(1, 768)}
    assert (classify(dora).kind, classify(dora).rank) == ("dora", 4)

    stem = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    peft = {f"{stem}.lora_A.weight": _t(16, 768), f"{stem}.lora_B.weight": _t(320, 16)}
    peft |= {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": _t(16, 768)}
    peft |= {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight": _t(768, 16)}
    layout = classify(peft)
    assert (layout.kind, layout.rank) == ("peft", 16)
    assert layout.unet_modules == (stem,)
    assert layout.text_encoder_modules == (
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
    )


def test_mixed_kinds_and_sdxl_text_encoders():
    tensors = {**_lora("lora_te1_text_model_encoder_layers_0_mlp_fc1", 4, 3072, 768)}
    tensors |= _lora("lora_te2_text_model_encoder_layers_0_mlp_fc1", 4, 5120, 1280)
    tensors |= {f"{SD15_K}.diff": _t(320, 768)}
    layout = classify(tensors)
    assert layout.kind == "mixed"
    assert len(layout.text_encoder_modules) == 2
    assert layout.unet_modules == (SD15_K,)


def test_incomplete_and_foreign_tensors_are_reported_not_dropped():
    tensors = {
        f"{SD15_K}.lora_down.weight": _t(4, 768),  # no lora_up partner
        "bundle_emb.sks.string_to_param.*": _t(1, 768),
        "model.diffusion_model.input_blocks.0.0.weight": _t(320, 4, 3, 3),  # a checkpoint's
        **_lora(SD15_CONV, 4, 320, 320, kernel=3),
    }
    layout = classify(tensors)
    assert layout.kind == "locon"
    assert set(layout.unrecognised) == {
        f"{SD15_K}.lora_down.weight",
        "bundle_emb.sks.string_to_param.*",
        "model.diffusion_model.input_blocks.0.0.weight",
    }
    assert layout.unet_modules == (SD15_CONV,)


def test_checkpoint_is_unknown():
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": _t(320, 4, 3, 3),
        "model.diffusion_model.input_blocks.0.0.bias": _t(320),
    }
    layout = classify(tensors)
    assert (layout.kind, layout.rank, layout.unet_modules) == ("unknown", None, ())
    assert len(layout.unrecognised) == 2


@pytest.mark.parametrize(
    ("kind", "expected", "rank"),
    [
        ("lora", "lora", 4),
        ("locon", "locon", 4),
        ("loha", "loha", 4),
        ("lokr", "lokr", 4),
        ("ia3", "ia3", None),
        ("full", "full", None),
        ("dora", "dora", 4),
        ("peft", "peft", 4),
    ],
)
def test_factory_files_of_every_kind(tmp_path, kind, expected, rank):
    from pixtention.library.safetensors_file import read_header
    from tests.rig.factory import sd15_text_encoder_targets, write_lora

    path = write_lora(
        tmp_path / f"{kind}.safetensors",
        kind=kind,
        rank=4,
        text_encoder=sd15_text_encoder_targets(1),
    )
    layout = classify(read_header(path).tensors)
    assert (layout.kind, layout.rank) == (expected, rank)
    assert layout.unrecognised == ()
    assert len(layout.text_encoder_modules) == 1
    assert len(layout.unet_modules) > 30


_SUFFIXES = [
    "lora_down.weight",
    "lora_up.weight",
    "alpha",
    "hada_w1_a",
    "lokr_w2_b",
    "diff",
    "dora_scale",
]
_STEM = st.from_regex(r"lora_(unet|te1)_[a-z0-9_]{1,40}", fullmatch=True).filter(
    lambda s: not s.endswith("_")
)


@given(stem=_STEM, suffix=st.sampled_from(_SUFFIXES))
def test_split_key_round_trips_kohya_names(stem, suffix):
    assert split_key(f"{stem}.{suffix}") == (stem, suffix)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=40),
        st.lists(st.integers(0, 9), max_size=4).map(lambda s: TensorInfo("F16", tuple(s))),
        max_size=12,
    )
)
def test_classify_never_raises_and_accounts_for_every_name(tensors):
    layout = classify(tensors)
    assert layout.kind in (
        "lora",
        "locon",
        "loha",
        "lokr",
        "ia3",
        "full",
        "dora",
        "peft",
        "mixed",
        "unknown",
    )
    stems = set(layout.unet_modules) | set(layout.text_encoder_modules)
    for name in tensors:
        assert name in layout.unrecognised or split_key(name)[0] in stems
