"""Base-model detection: tensor shapes of real architectures first, then metadata hints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from ldm.modules.diffusionmodules.openaimodel import UNetModel

from pixtention.library.base_model import detect_base_model, family_from_tensors, parse_hint
from pixtention.library.info import TensorInfo
from tests.rig.unet import SD15_LAYOUT

SDXL_MODULES = Path(__file__).parent / "rig" / "sdxl_unet_modules.tsv"
RANK = 4


def lora_tensors(modules: list[tuple[str, tuple[int, ...]]]) -> dict[str, TensorInfo]:
    """kohya compvis-style LoRA tensors for (module path, weight shape) pairs."""
    tensors = {}
    for path, shape in modules:
        stem = "lora_unet_" + path.replace(".", "_")
        if len(shape) == 4:
            down, up = (RANK, shape[1], shape[2], shape[3]), (shape[0], RANK, 1, 1)
        else:
            down, up = (RANK, shape[1]), (shape[0], RANK)
        tensors[f"{stem}.lora_down.weight"] = TensorInfo("F16", down)
        tensors[f"{stem}.lora_up.weight"] = TensorInfo("F16", up)
        tensors[f"{stem}.alpha"] = TensorInfo("F16", ())
    return tensors


def ldm_modules(context_dim: int, **overrides) -> list[tuple[str, tuple[int, ...]]]:
    """Linear/Conv2d module paths and weight shapes of a full-size ldm UNet (built on meta)."""
    with torch.device("meta"):
        model = UNetModel(
            image_size=64,
            model_channels=320,
            context_dim=context_dim,
            num_head_channels=64,
            **{**SD15_LAYOUT, **overrides},
        )
    return [
        (name, tuple(module.weight.shape))
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))
    ]


def sdxl_modules() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in SDXL_MODULES.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        path, _, shape = line.split("\t")
        rows.append((path, tuple(int(n) for n in re.findall(r"\d+", shape))))
    return rows


def test_sd1_architecture_from_its_cross_attention_width() -> None:
    family, variant, evidence = family_from_tensors(lora_tensors(ldm_modules(768)))
    assert (family, variant) == ("sd1", None)
    assert "context width 768" in evidence


def test_sd2_architecture_from_its_cross_attention_width() -> None:
    modules = ldm_modules(1024, use_linear_in_transformer=True)
    assert family_from_tensors(lora_tensors(modules))[0] == "sd2"


def test_sdxl_architecture_with_and_without_cross_attention_modules() -> None:
    modules = sdxl_modules()
    assert len(modules) == 794
    family, _, evidence = family_from_tensors(lora_tensors(modules))
    assert family == "sdxl" and "context width 2048" in evidence
    self_attention_only = [m for m in modules if "attn2" not in m[0]]
    family, _, evidence = family_from_tensors(lora_tensors(self_attention_only))
    assert family == "sdxl" and "SDXL-only module" in evidence


def test_sdxl_from_the_second_text_encoder_alone() -> None:
    tensors = {
        "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": TensorInfo(
            "F16", (4, 1280)
        ),
        "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": TensorInfo("F16", (5120, 4)),
    }
    assert family_from_tensors(tensors)[0] == "sdxl"


@pytest.mark.parametrize(("width", "family"), [(768, "sd1"), (1024, "sd2")])
def test_text_encoder_only_files_by_width(width: int, family: str) -> None:
    stem = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    tensors = {
        f"{stem}.lora_down.weight": TensorInfo("F32", (4, width)),
        f"{stem}.lora_up.weight": TensorInfo("F32", (width * 4, 4)),
    }
    assert family_from_tensors(tensors)[0] == family


def test_peft_loha_and_lokr_factors_give_the_width_too() -> None:
    peft = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    loha = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v"
    lokr = "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    cases = [
        {
            f"{peft}.lora_A.weight": TensorInfo("F32", (4, 2048)),
            f"{peft}.lora_B.weight": TensorInfo("F32", (320, 4)),
        },
        {
            f"{loha}.{name}": TensorInfo("F32", shape)
            for name, shape in (
                ("hada_w1_a", (320, 4)),
                ("hada_w1_b", (4, 1024)),
                ("hada_w2_a", (320, 4)),
                ("hada_w2_b", (4, 1024)),
            )
        },
        {
            f"{lokr}.lokr_w1": TensorInfo("F32", (4, 4)),
            f"{lokr}.lokr_w2": TensorInfo("F32", (320, 192)),
        },
    ]
    assert [family_from_tensors(t)[0] for t in cases] == ["sdxl", "sd2", "sd1"]


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (["lora_unet_double_blocks_0_img_attn_qkv", "lora_unet_single_blocks_3_linear1"], "flux"),
        (["transformer.single_transformer_blocks.0.attn.to_k"], "flux"),
        (["lora_unet_joint_blocks_0_x_block_attn_qkv"], "sd3"),
        (["transformer.transformer_blocks.0.attn.add_k_proj"], "sd3"),
    ],
)
def test_flux_and_sd3_from_block_names(names: list[str], family: str) -> None:
    tensors = {}
    for stem in names:
        if "." in stem:
            tensors[f"{stem}.lora_A.weight"] = TensorInfo("BF16", (4, 3072))
            tensors[f"{stem}.lora_B.weight"] = TensorInfo("BF16", (3072, 4))
        else:
            tensors[f"{stem}.lora_down.weight"] = TensorInfo("BF16", (4, 3072))
            tensors[f"{stem}.lora_up.weight"] = TensorInfo("BF16", (9216, 4))
    assert family_from_tensors(tensors)[0] == family


def test_no_evidence_is_unknown() -> None:
    stem = "lora_unet_conv_in"
    tensors = {
        f"{stem}.lora_down.weight": TensorInfo("F32", (4, 4, 3, 3)),
        f"{stem}.lora_up.weight": TensorInfo("F32", (320, 4, 1, 1)),
    }
    assert family_from_tensors(tensors)[0] == "unknown"
    assert detect_base_model(tensors)[0].family == "unknown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SD 1.5", ("sd1", "sd1.5")),
        ("SD 1.4", ("sd1", "sd1.4")),
        ("SD1", ("sd1", None)),
        ("sd_v1", ("sd1", None)),
        ("stable-diffusion-v1/lora", ("sd1", None)),
        ("v1-5-pruned-emaonly.safetensors", ("sd1", "sd1.5")),
        ("SD 2.1 768", ("sd2", "sd2.1-768")),
        ("SD 2.0", ("sd2", "sd2.0")),
        ("sd_v2", ("sd2", None)),
        ("SDXL 1.0", ("sdxl", None)),
        ("SDXL", ("sdxl", None)),
        ("sdxl_base_v1-0", ("sdxl", None)),
        ("stable-diffusion-xl-v1-base/lora", ("sdxl", None)),
        ("sd_xl_base_1.0.safetensors", ("sdxl", None)),
        ("Pony", ("sdxl", "pony")),
        ("ponyDiffusionV6XL_v6StartWithThisOne.safetensors", ("sdxl", "pony")),
        ("Illustrious", ("sdxl", "illustrious")),
        ("illustriousXL_v01.safetensors", ("sdxl", "illustrious")),
        ("NoobAI", ("sdxl", "noobai")),
        ("noobaiXLNAIXL_epsilonPred10Version.safetensors", ("sdxl", "noobai")),
        ("Flux.1 D", ("flux", "flux.1-dev")),
        ("Flux.1 S", ("flux", "flux.1-schnell")),
        ("SD 3.5 Large", ("sd3", "sd3.5")),
        ("stable-diffusion-v3-medium/lora", ("sd3", "sd3")),
        ("Other", (None, None)),
        ("Unknown", (None, None)),
        ("", (None, None)),
    ],
)
def test_parse_hint(text: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_hint(text) == expected


def test_metadata_refines_the_variant_and_fills_unknown_families() -> None:
    sdxl = lora_tensors([("input_blocks.4.1.transformer_blocks.0.attn2.to_k", (640, 2048))])
    base, warnings = detect_base_model(sdxl, [("civitai baseModel", "Pony")])
    assert (base.family, base.variant, warnings) == ("sdxl", "pony", ())
    assert "civitai baseModel 'Pony'" in base.evidence

    conv_only = lora_tensors([("input_blocks.0.0", (320, 4, 3, 3))])
    base, _ = detect_base_model(conv_only, [("name.json sd version", "Unknown"), ("ss", "SD 1.5")])
    assert (base.family, base.variant) == ("sd1", "sd1.5")
    assert "no shape evidence" in base.evidence


def test_metadata_contradicting_the_shapes_is_reported_not_followed() -> None:
    sd1 = lora_tensors([("input_blocks.1.1.transformer_blocks.0.attn2.to_k", (320, 768))])
    hints = [
        ("name.json sd version", "SDXL"),
        ("civitai baseModel", "SD 1.5"),
        ("ss_sd_model_name", "animagineXLV3.safetensors"),  # a file name: too weak to warn
    ]
    base, warnings = detect_base_model(sd1, hints)
    assert (base.family, base.variant) == ("sd1", "sd1.5")
    assert warnings == (
        "name.json sd version 'SDXL' says sdxl but tensor shapes say sd1; shapes win",
    )
