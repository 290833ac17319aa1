"""Bad input is refused or reported in one clear line, never half-applied."""

from __future__ import annotations

import pytest
import torch
from ldm.modules.diffusionmodules.openaimodel import UNetModel

from pixtention.integrator import (
    GatedAdapter,
    IntegratorError,
    MaskConfig,
    RowLayout,
    attach,
    clip_chunks,
    token_positions,
)
from pixtention.library.factors import LowRank, MappedAdapter, ModuleDelta
from tests.rig.tokenizer import clip_tokenizer
from tests.test_integrator_rig import hook_count, lowrank_adapter, unet_inputs


def sdxl_layout_unet() -> UNetModel:
    """A tiny SDXL-layout ldm UNet: no attention at full resolution, linear proj, context 64."""
    torch.manual_seed(0)
    return UNetModel(
        image_size=8,
        in_channels=4,
        out_channels=4,
        model_channels=32,
        num_res_blocks=2,
        attention_resolutions=[2, 4],
        channel_mult=[1, 2, 4],
        num_head_channels=8,
        use_spatial_transformer=True,
        use_linear_in_transformer=True,
        transformer_depth=1,
        context_dim=64,
        legacy=False,
    ).eval()


def test_sd1_adapter_on_an_sdxl_layout_model_is_refused(tiny_unet) -> None:
    sd1 = GatedAdapter("sd1-style", lowrank_adapter(tiny_unet, 1), 1.0, ((2,),))
    model = sdxl_layout_unet()
    with pytest.raises(
        IntegratorError,
        match=r"sd1-style.*does not fit this model.*attn2\.to_k.*(32|64).*SD1 LoRA on an SDXL",
    ):
        attach(model, [sd1])
    assert hook_count(model) == 0


def test_modules_missing_in_the_model_are_reported_and_skipped(tiny_unet) -> None:
    mapped = lowrank_adapter(tiny_unet, 2, include=lambda n: n.startswith("input_blocks.1."))
    targets = dict(mapped.targets)
    targets["input_blocks.99.1.proj_in"] = next(iter(targets.values()))
    adapter = GatedAdapter(
        "a",
        MappedAdapter(targets, unmatched=("lora_unet_weird_key",), text_encoder=("te_1", "te_2")),
        1.0,
        ((2,),),
    )
    inputs = unet_inputs()
    with torch.no_grad(), attach(tiny_unet, [adapter], MaskConfig(warmup="global")) as session:
        out = tiny_unet(*inputs)
    assert ("a", "input_blocks.99.1.proj_in") in session.report.missing
    assert ("a", "lora_unet_weird_key") in session.report.missing
    assert session.report.text_encoder_off == (("a", 2),)
    with torch.no_grad():
        assert not torch.equal(out, tiny_unet(*inputs))  # the modules that exist were gated


@pytest.mark.parametrize("problem", ["rank0", "nan", "inf"])
def test_rank_zero_and_non_finite_factors_are_refused(tiny_unet, problem: str) -> None:
    name = "input_blocks.1.1.proj_in"
    w = dict(tiny_unet.named_modules())[name].weight
    down = torch.randn(0 if problem == "rank0" else 2, w.shape[1], 1, 1)
    up = torch.randn(w.shape[0], down.shape[0], 1, 1)
    if problem == "nan":
        up[0, 0] = float("nan")
    if problem == "inf":
        down[0, 0] = float("inf")
    adapter = GatedAdapter(
        "broken",
        MappedAdapter({name: ModuleDelta(name, "lora", LowRank(down, up, 1.0))}),
        1.0,
        ((2,),),
    )
    match = "rank 0" if problem == "rank0" else "NaN or infinite"
    with pytest.raises(IntegratorError, match=f"broken.*{match}"):
        attach(tiny_unet, [adapter])
    assert hook_count(tiny_unet) == 0


def test_a_phrase_that_tokenises_to_nothing_skips_its_adapter(tiny_unet) -> None:
    tokenize = clip_chunks(clip_tokenizer())
    prompt = "a cat on a sofa"
    empty = token_positions(tokenize, prompt, "  ( )  ")
    absent = token_positions(tokenize, prompt, "dragon")
    assert empty == () and absent == ()
    adapters = [
        GatedAdapter("empty", lowrank_adapter(tiny_unet, 3), 1.0, (empty,)),
        GatedAdapter(
            "cat", lowrank_adapter(tiny_unet, 4), 1.0, (token_positions(tokenize, prompt, "cat"),)
        ),
    ]
    with attach(tiny_unet, adapters) as session:
        assert session.names == ("cat",)
        assert (
            session.report.skipped[0][0] == "empty"
            and "tokenises to nothing" in session.report.skipped[0][1]
        )


def test_more_picks_than_the_cap_are_refused(tiny_unet) -> None:
    mapped = lowrank_adapter(tiny_unet, 5, include=lambda n: n.endswith("proj_in"))
    adapters = [GatedAdapter(f"a{i}", mapped, 1.0, ((2,),)) for i in range(4)]
    with pytest.raises(IntegratorError, match="4 adapters picked but at most 3"):
        attach(tiny_unet, adapters, MaskConfig(max_adapters=3))
    assert hook_count(tiny_unet) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "fuzzy"}, "mode must be"),
        ({"temperature": 0}, "temperature"),
        ({"freeze_at": 0}, "freeze_at"),
        ({"capture": "top"}, "capture must be"),
        ({"capture": (-1,)}, "capture levels"),
        ({"ema": 1.0}, "ema"),
        ({"warmup_steps": 0}, "warmup_steps"),
    ],
)
def test_mask_config_is_validated(kwargs, message) -> None:
    with pytest.raises(IntegratorError, match=message):
        MaskConfig(**kwargs)


def test_row_layouts_that_do_not_fit_are_refused(tiny_unet) -> None:
    adapter = GatedAdapter("a", lowrank_adapter(tiny_unet, 6), 1.0, ((2,), (3,)))
    x, t, ctx = unet_inputs(batch=3)
    session = attach(tiny_unet, [adapter])
    with pytest.raises(IntegratorError, match="cannot lay out 3 rows over 2 images"), session:
        tiny_unet(x, t, ctx)
    session = attach(tiny_unet, [adapter])
    session.set_row_layout(RowLayout((0, 1), (True, True)))
    with pytest.raises(IntegratorError, match="does not fit a call of 3 rows"), session:
        tiny_unet(x, t, ctx)
    assert hook_count(tiny_unet) == 0
    with pytest.raises(IntegratorError, match="image indices"):
        RowLayout((0, 1), (True,))


def test_adapters_must_agree_on_the_number_of_images(tiny_unet) -> None:
    mapped = lowrank_adapter(tiny_unet, 7, include=lambda n: n.endswith("proj_in"))
    with pytest.raises(IntegratorError, match="disagree on the number of images"):
        attach(
            tiny_unet,
            [GatedAdapter("a", mapped, 1.0, ((2,),)), GatedAdapter("b", mapped, 1.0, ((2,), (3,)))],
        )
