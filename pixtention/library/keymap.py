"""File key stems → the live UNet's module names, whatever spelling either side uses.

Files name their targets as kohya diffusers-style stems (SD1.x: ``lora_unet_down_blocks_0_…``),
kohya compvis-style stems (SDXL: ``lora_unet_input_blocks_4_1_…``), LyCORIS ``lycoris_…``, or
dotted PEFT/diffusers names (``unet.down_blocks.0.…``, ``diffusion_model.input_blocks.…``).
Live UNets are ldm/sgm/Forge (compvis names) or diffusers. Like the WebUI's
``network_layer_mapping``, the index is built from the live ``named_modules()`` with dots folded
to underscores; each stem is looked up as written and after the diffusers ↔ compvis conversion
of the SD block layout (``num_res_blocks=2``, as in SD1, SD2 and SDXL).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from pixtention.library.factors import AdapterWeights, MappedAdapter, ModuleDelta
from pixtention.library.layout import is_text_encoder_stem

# Prefixes that only say "this is the UNet"; stripped before lookup (longest first).
_STEM_PREFIXES = (
    "base_model.model.model.diffusion_model.",
    "base_model.model.diffusion_model.",
    "base_model.model.unet.",
    "base_model.model.",
    "model.diffusion_model.",
    "diffusion_model.",
    "unet.",
    "lora_unet_diffusion_model_",
    "lora_unet_",
    "lycoris_diffusion_model_",
    "lycoris_",
)
_MODULE_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "unet.")

_RESNET_TO_COMPVIS = {
    "conv1": "in_layers_2",
    "conv2": "out_layers_3",
    "norm1": "in_layers_0",
    "norm2": "out_layers_0",
    "time_emb_proj": "emb_layers_1",
    "conv_shortcut": "skip_connection",
}
_RESNET_TO_DIFFUSERS = {v: k for k, v in _RESNET_TO_COMPVIS.items()}
_TOP_TO_COMPVIS = {
    "conv_in": "input_blocks_0_0",
    "conv_norm_out": "out_0",
    "conv_out": "out_2",
    "time_embedding_linear_1": "time_embed_0",
    "time_embedding_linear_2": "time_embed_2",
    "add_embedding_linear_1": "label_emb_0_0",
    "add_embedding_linear_2": "label_emb_0_2",
}
_TOP_TO_DIFFUSERS = {v: k for k, v in _TOP_TO_COMPVIS.items()}
_RESNET_PARTS = "|".join(_RESNET_TO_COMPVIS)

Rule = tuple["re.Pattern[str]", Callable[["re.Match[str]"], list[str]]]


def fold(name: str) -> str:
    """Dots to underscores: the spelling both kohya stems and the WebUI's index use."""
    return name.replace(".", "_")


def _strip(name: str, prefixes: Iterable[str]) -> str:
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _rules_to_compvis() -> list[Rule]:
    def down_attn(m: re.Match[str]) -> list[str]:
        i, j = int(m[1]), int(m[2])
        return [f"input_blocks_{1 + 3 * i + j}_1_{m[3]}"]

    def down_res(m: re.Match[str]) -> list[str]:
        i, j = int(m[1]), int(m[2])
        return [f"input_blocks_{1 + 3 * i + j}_0_{_RESNET_TO_COMPVIS[m[3]]}"]

    def up_res(m: re.Match[str]) -> list[str]:
        i, j = int(m[1]), int(m[2])
        return [f"output_blocks_{3 * i + j}_0_{_RESNET_TO_COMPVIS[m[3]]}"]

    def up_attn(m: re.Match[str]) -> list[str]:
        i, j = int(m[1]), int(m[2])
        return [f"output_blocks_{3 * i + j}_1_{m[3]}"]

    def upsample(m: re.Match[str]) -> list[str]:
        # The upsampler follows the attention when the level has one (index 2), else index 1.
        n = 3 * int(m[1]) + 2
        return [f"output_blocks_{n}_2_conv", f"output_blocks_{n}_1_conv"]

    return [
        (re.compile(r"^down_blocks_(\d+)_attentions_(\d+)_(.+)$"), down_attn),
        (re.compile(rf"^down_blocks_(\d+)_resnets_(\d+)_({_RESNET_PARTS})$"), down_res),
        (
            re.compile(r"^down_blocks_(\d+)_downsamplers_0_conv$"),
            lambda m: [f"input_blocks_{3 + 3 * int(m[1])}_0_op"],
        ),
        (re.compile(r"^mid_block_attentions_0_(.+)$"), lambda m: [f"middle_block_1_{m[1]}"]),
        (
            re.compile(rf"^mid_block_resnets_(\d+)_({_RESNET_PARTS})$"),
            lambda m: [f"middle_block_{2 * int(m[1])}_{_RESNET_TO_COMPVIS[m[2]]}"],
        ),
        (re.compile(rf"^up_blocks_(\d+)_resnets_(\d+)_({_RESNET_PARTS})$"), up_res),
        (re.compile(r"^up_blocks_(\d+)_attentions_(\d+)_(.+)$"), up_attn),
        (re.compile(r"^up_blocks_(\d+)_upsamplers_0_conv$"), upsample),
    ]


def _rules_to_diffusers() -> list[Rule]:
    def down(m: re.Match[str]) -> list[str]:
        n = int(m[1]) - 1
        i, j = divmod(n, 3)
        if m[2] == "0" and m[3] == "op":
            return [f"down_blocks_{i}_downsamplers_0_conv"] if j == 2 else []
        if m[2] == "0":
            part = _RESNET_TO_DIFFUSERS.get(m[3])
            return [f"down_blocks_{i}_resnets_{j}_{part}"] if part and j < 2 else []
        return [f"down_blocks_{i}_attentions_{j}_{m[3]}"] if j < 2 else []

    def middle(m: re.Match[str]) -> list[str]:
        n = int(m[1])
        if n == 1:
            return [f"mid_block_attentions_0_{m[2]}"]
        part = _RESNET_TO_DIFFUSERS.get(m[2])
        return [f"mid_block_resnets_{n // 2}_{part}"] if part and n in (0, 2) else []

    def up(m: re.Match[str]) -> list[str]:
        i, j = divmod(int(m[1]), 3)
        if m[3] == "conv" and m[2] in ("1", "2"):
            return [f"up_blocks_{i}_upsamplers_0_conv"] if j == 2 else []
        if m[2] == "0":
            part = _RESNET_TO_DIFFUSERS.get(m[3])
            return [f"up_blocks_{i}_resnets_{j}_{part}"] if part else []
        return [f"up_blocks_{i}_attentions_{j}_{m[3]}"] if m[2] == "1" else []

    return [
        (re.compile(r"^input_blocks_(\d+)_(\d+)_(.+)$"), down),
        (re.compile(r"^middle_block_(\d+)_(.+)$"), middle),
        (re.compile(r"^output_blocks_(\d+)_(\d+)_(.+)$"), up),
    ]


_TO_COMPVIS = _rules_to_compvis()
_TO_DIFFUSERS = _rules_to_diffusers()


def _convert(folded: str, rules: list[Rule], top: Mapping[str, str]) -> list[str]:
    if folded in top:
        return [top[folded]]
    for pattern, build in rules:
        match = pattern.match(folded)
        if match:
            return build(match)
    return []


def stem_candidates(stem: str) -> list[str]:
    """Folded module names a file stem may denote: as written, in compvis and diffusers form."""
    folded = fold(_strip(stem, _STEM_PREFIXES))
    folded = _strip(folded, tuple(fold(p) for p in _MODULE_PREFIXES))
    candidates = [folded]
    candidates += _convert(folded, _TO_COMPVIS, _TOP_TO_COMPVIS)
    candidates += _convert(folded, _TO_DIFFUSERS, _TOP_TO_DIFFUSERS)
    return candidates


@dataclass(frozen=True)
class ModuleIndex:
    """Folded live name (without a ``diffusion_model.`` style prefix) → live module name."""

    names: Mapping[str, str]


def build_index(module_names: Iterable[str]) -> ModuleIndex:
    """Index a live model's module names once, to map many files against it."""
    index: dict[str, str] = {}
    for name in module_names:
        if name:
            index.setdefault(fold(_strip(name, _MODULE_PREFIXES)), name)
    return ModuleIndex(index)


def map_stems(
    stems: Iterable[str], module_names: Iterable[str] | ModuleIndex
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Map UNet key stems to live module names: ``({stem: module name}, unmatched stems)``.

    ``module_names`` is the live model's module names, or a ``build_index`` of them.
    """
    index = module_names if isinstance(module_names, ModuleIndex) else build_index(module_names)
    found: dict[str, str] = {}
    unmatched: list[str] = []
    for stem in stems:
        target = next((index.names[c] for c in stem_candidates(stem) if c in index.names), None)
        if target is None:
            unmatched.append(stem)
        else:
            found[stem] = target
    return found, tuple(unmatched)


def _named(
    modules: Mapping[str, nn.Module] | Iterable[tuple[str, nn.Module]],
) -> dict[str, nn.Module]:
    items = modules.items() if isinstance(modules, Mapping) else modules
    return {name: module for name, module in items}


def map_to_model(
    weights: AdapterWeights,
    modules: Mapping[str, nn.Module] | Iterable[tuple[str, nn.Module]],
) -> MappedAdapter:
    """Key an adapter's UNet deltas by the live module names of ``modules``.

    Stems that name no module — or a module without a weight — are listed in ``unmatched``;
    text-encoder stems are listed in ``text_encoder`` (the UNet hooks do not apply them).
    Two stems landing on one module are both kept only once: the second counts as unmatched.
    """
    live = _named(modules)
    index = build_index(name for name, module in live.items() if _has_weight(module))
    unet_stems = [s for s in weights.unet if not is_text_encoder_stem(s)]
    found, unmatched = map_stems(unet_stems, index)
    targets: dict[str, ModuleDelta] = {}
    duplicates: list[str] = []
    for stem, name in found.items():
        if name in targets:
            duplicates.append(stem)
            continue
        targets[name] = weights.unet[stem]
    text_encoder = tuple(weights.text_encoder) + tuple(
        s for s in weights.unet if is_text_encoder_stem(s)
    )
    return MappedAdapter(
        targets=targets, unmatched=unmatched + tuple(duplicates), text_encoder=text_encoder
    )


def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), torch.Tensor)
