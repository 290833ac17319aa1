"""Key stems → live module names, for ldm and diffusers module trees and the SDXL layout.

The SD1.5 stems come from the diffusers layout as ``sample.sd15_unet_modules`` enumerates it;
the mapping converts them with keymap's own block arithmetic; the real ldm UNet's weight shapes
then say whether each stem landed on the right module (channel widths differ per block).
"""

from __future__ import annotations

import pytest
import torch

from pixtention.library.keymap import map_stems, map_to_model
from pixtention.library.weights import load_weights
from tests.rig.factory import (
    model_targets,
    sd15_targets,
    sd15_text_encoder_targets,
    sdxl_modules,
    sdxl_targets,
    write_lora,
)


@pytest.fixture(scope="module")
def ldm_shapes(tiny_unet) -> dict[str, tuple[int, ...]]:
    return {
        name: tuple(module.weight.shape)
        for name, module in tiny_unet.named_modules()
        if isinstance(getattr(module, "weight", None), torch.Tensor)
    }


def test_every_sd15_kohya_stem_maps_onto_the_ldm_unet_with_matching_shapes(ldm_shapes):
    targets = sd15_targets(select="all")
    assert len(targets) > 250  # attention, resnets, samplers of all 25 blocks
    found, unmatched = map_stems(targets, ldm_shapes)
    assert unmatched == ()
    assert len(set(found.values())) == len(targets)  # no two stems on one module
    wrong = {
        s: (targets[s], ldm_shapes[m]) for s, m in found.items() if targets[s] != ldm_shapes[m]
    }
    assert wrong == {}


def test_known_sd15_conversions(ldm_shapes):
    """Spot checks from the WebUI's verified examples (webui-reference §4)."""
    found, _ = map_stems(
        [
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
            "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0",
            "lora_unet_mid_block_attentions_0_proj_in",
            "lora_unet_up_blocks_0_upsamplers_0_conv",
            "lora_unet_down_blocks_2_downsamplers_0_conv",
            "lora_unet_mid_block_resnets_1_time_emb_proj",
        ],
        ldm_shapes,
    )
    assert list(found.values()) == [
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k",
        "output_blocks.11.1.transformer_blocks.0.attn2.to_out.0",
        "middle_block.1.proj_in",
        "output_blocks.2.1.conv",
        "input_blocks.9.0.op",
        "middle_block.2.emb_layers.1",
    ]


@pytest.mark.parametrize("prefix", ["diffusion_model.", "model.diffusion_model."])
def test_prefixed_live_names_are_returned_as_given(ldm_shapes, prefix):
    names = [prefix + name for name in ldm_shapes]
    found, unmatched = map_stems(sd15_targets(select="cross_kv"), names)
    assert unmatched == ()
    assert all(name.startswith(prefix) for name in found.values())


@pytest.mark.parametrize("naming", ["peft", "base_model", "dotted"])
def test_peft_and_diffusers_stems_map_onto_ldm(ldm_shapes, naming):
    targets = sd15_targets(select="all", naming=naming)
    found, unmatched = map_stems(targets, ldm_shapes)
    assert unmatched == ()
    assert all(targets[s] == ldm_shapes[m] for s, m in found.items())


def test_compvis_stems_map_onto_a_diffusers_module_list(tiny_unet):
    """Stems spelled like the ldm tree (SDXL-style kohya, LyCORIS) onto diffusers names."""
    diffusers = sd15_targets(select="all", naming="peft")  # unet.down_blocks.0.… → shape
    compvis = model_targets(tiny_unet, select="all")
    found, unmatched = map_stems(compvis, list(diffusers))
    # The enumeration lists the blocks' modules only, not conv_in/conv_out/time_embedding.
    outside = {"input_blocks_0_0", "out_2", "time_embed_0", "time_embed_2"}
    assert set(unmatched) == {f"lora_unet_{name}" for name in outside}
    assert len(found) == len(diffusers)
    assert all(compvis[s] == diffusers[m] for s, m in found.items())


def test_lycoris_prefix_and_diffusion_model_stems(ldm_shapes):
    stems = [
        "lycoris_input_blocks_1_1_proj_in",
        "diffusion_model.output_blocks.5.2.conv",
        "lora_unet_conv_in",
        "lora_unet_time_embedding_linear_1",
    ]
    found, unmatched = map_stems(stems, ldm_shapes)
    assert unmatched == ()
    assert found["lora_unet_conv_in"] == "input_blocks.0.0"
    assert found["lora_unet_time_embedding_linear_1"] == "time_embed.0"


def test_sdxl_kohya_stems_map_onto_the_sdxl_module_list():
    names = list(sdxl_modules())
    assert len(names) == 794
    targets = sdxl_targets(select="all")
    found, unmatched = map_stems(targets, names)
    assert unmatched == () and len(found) == len(names)
    attn2 = [s for s in targets if "attn2" in s]
    assert len(attn2) == 70 * 4  # to_q, to_k, to_v, to_out.0 of 70 cross-attention blocks


def test_sdxl_diffusers_spellings_follow_the_sdxl_block_layout():
    shapes = sdxl_modules()
    found, unmatched = map_stems(
        [
            "unet.down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k",
            "unet.down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2",
            "unet.up_blocks.0.upsamplers.0.conv",
            "unet.up_blocks.1.upsamplers.0.conv",
            "unet.up_blocks.2.resnets.2.conv_shortcut",
            "unet.add_embedding.linear_1",
        ],
        list(shapes),
    )
    assert unmatched == ()
    assert list(found.values()) == [
        "input_blocks.4.1.transformer_blocks.1.attn2.to_k",
        "input_blocks.8.1.transformer_blocks.9.ff.net.2",
        "output_blocks.2.2.conv",
        "output_blocks.5.2.conv",
        "output_blocks.8.0.skip_connection",
        "label_emb.0.0",
    ]


def test_unknown_stems_are_counted_not_dropped(ldm_shapes):
    stems = ["lora_unet_down_blocks_9_attentions_0_proj_in", "lora_unet_nonsense", "x.y.z"]
    found, unmatched = map_stems(stems, ldm_shapes)
    assert found == {} and unmatched == tuple(stems)


def test_map_to_model_on_the_tiny_unet(tiny_unet, tmp_path):
    modules = sd15_targets(select="all")
    modules["lora_unet_down_blocks_7_attentions_0_proj_in"] = (32, 32, 1, 1)  # no such block
    path = write_lora(
        tmp_path / "m.safetensors",
        kind="locon",
        modules=modules,
        text_encoder=sd15_text_encoder_targets(2),
    )
    weights = load_weights(path)
    mapped = map_to_model(weights, tiny_unet.named_modules())
    assert mapped.unmatched == ("lora_unet_down_blocks_7_attentions_0_proj_in",)
    assert len(mapped.targets) == len(modules) - 1
    assert len(mapped.text_encoder) == 2
    live = dict(tiny_unet.named_modules())
    for name, delta in mapped.targets.items():
        assert delta.factors.up.shape[0] == live[name].weight.shape[0]
        assert delta.key in weights.unet
    again = map_to_model(weights, dict(tiny_unet.named_modules()))
    assert again.targets.keys() == mapped.targets.keys()
