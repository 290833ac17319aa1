"""Which base model an adapter was trained for: tensor shapes first, then what metadata says.

Shapes cannot lie about the architecture (a 768-wide cross-attention key was made for SD1's
CLIP-L context), but they cannot tell an SDXL fine-tune like Pony from SDXL itself; metadata
(WebUI user edits, civitai ``baseModel``, ModelSpec, kohya ``ss_*``) can, and fills in the family
when shapes say nothing (e.g. a text-encoder-only file). Metadata that contradicts the shapes
is reported, not followed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pixtention.library.info import BaseModel, TensorInfo
from pixtention.library.layout import group_by_stem, is_text_encoder_stem

CONTEXT_WIDTHS = {768: ("sd1", None), 1024: ("sd2", None), 2048: ("sdxl", None)}
CONTEXT_WIDTHS[1280] = ("sdxl", "refiner")
_TEXT_WIDTHS = {768: "sd1", 1024: "sd2"}  # single-encoder ``lora_te_`` files only

_FLUX_MARKERS = ("double_blocks_", "single_blocks_", "single_transformer_blocks_")
_SD3_MARKERS = ("joint_blocks_", "context_block_", "add_k_proj", "add_q_proj")
_DEEP_TRANSFORMER = re.compile(r"transformer_blocks_([1-9]\d*)_")  # depth > 1: SDXL only
# A checkpoint *file name* is weak evidence: it may fill a gap but is not worth a warning.
_WEAK_SOURCES = ("ss_sd_model_name",)
_INPUT_FACTOR_ROLES = ("lora_down", "lora_A", "hada_w1_b", "hada_w2_b", "diff")

# (pattern, family, variant) tried in order on a lower-cased hint; the first match wins.
_HINT_PATTERNS: tuple[tuple[re.Pattern[str], str | None, str | None], ...] = tuple(
    (re.compile(pattern), family, variant)
    for pattern, family, variant in (
        (r"noob", "sdxl", "noobai"),
        (r"illustrious", "sdxl", "illustrious"),
        (r"pony", "sdxl", "pony"),
        (r"flux.*(schnell|\bs\b)", "flux", "flux.1-schnell"),
        (r"flux", "flux", "flux.1-dev"),
        (r"(sd|stable-diffusion)[-_ ]?v?3[._-]5", "sd3", "sd3.5"),
        (r"(sd|stable-diffusion)[-_ ]?v?3", "sd3", "sd3"),
        (r"refiner", "sdxl", "refiner"),
        (r"sd[-_ ]?xl|stable-diffusion-xl|xl\b|xl[-_ v]", "sdxl", None),
        (r"(sd|stable-diffusion|v)[-_ ]?2[._-]?1", "sd2", "sd2.1"),
        (r"(sd|stable-diffusion|v)[-_ ]?2[._-]?0", "sd2", "sd2.0"),
        (r"(sd|stable-diffusion)[-_ ]?v?2\b|sd_v2", "sd2", None),
        (r"(sd|stable-diffusion|v)[-_ ]?1[._-]?5", "sd1", "sd1.5"),
        (r"(sd|stable-diffusion|v)[-_ ]?1[._-]?4", "sd1", "sd1.4"),
        (r"(sd|stable-diffusion)[-_ ]?v?1\b|sd_v1", "sd1", None),
    )
)


def parse_hint(text: str) -> tuple[str | None, str | None]:
    """(family, variant) a metadata string names, e.g. "Pony" → ("sdxl", "pony"); (None, None)
    for "Unknown", "Other" or anything unrecognised."""
    lowered = text.strip().lower()
    for pattern, family, variant in _HINT_PATTERNS:
        if pattern.search(lowered):
            if variant is None or "768" not in lowered or family != "sd2":
                return family, variant
            return family, f"{variant}-768"
    return None, None


def _input_width(roles: Mapping[str, str], tensors: Mapping[str, TensorInfo]) -> int | None:
    for role in _INPUT_FACTOR_ROLES:
        if role in roles:
            shape = tensors[roles[role]].shape
            return int(shape[1]) if len(shape) == 2 else None
    if "lokr_w1" in roles or "lokr_w1_b" in roles:
        first = tensors[roles.get("lokr_w1") or roles["lokr_w1_b"]].shape
        second_name = roles.get("lokr_w2") or roles.get("lokr_w2_b")
        if second_name and len(first) == 2 and len(tensors[second_name].shape) == 2:
            return int(first[1]) * int(tensors[second_name].shape[1])
    return None


def family_from_tensors(tensors: Mapping[str, TensorInfo]) -> tuple[str, str | None, str]:
    """(family, variant, evidence) from tensor names and shapes alone."""
    stems, _ = group_by_stem(tensors)
    flat = {stem: stem.replace(".", "_") for stem in stems}
    unet = [stem for stem in stems if not is_text_encoder_stem(stem)]
    for stem in unet:
        if any(marker in flat[stem] for marker in _FLUX_MARKERS):
            return "flux", None, f"Flux double/single blocks ({stem})"
    for stem in unet:
        if any(marker in flat[stem] for marker in _SD3_MARKERS):
            return "sd3", None, f"SD3 joint blocks ({stem})"
    for stem in unet:
        if re.search(r"attn2_(to_)?[kv](_proj)?$", flat[stem]):
            width = _input_width(stems[stem], tensors)
            if width in CONTEXT_WIDTHS:
                family, variant = CONTEXT_WIDTHS[width]
                return family, variant, f"context width {width} ({stem})"
    for stem in stems:
        if flat[stem].startswith("lora_te2_") or "text_encoder_2" in flat[stem]:
            return "sdxl", None, f"second text encoder ({stem})"
    for stem in unet:
        if _DEEP_TRANSFORMER.search(flat[stem]) or "label_emb" in flat[stem]:
            return "sdxl", None, f"SDXL-only module ({stem})"
    for stem in stems:
        if flat[stem].startswith("lora_te_") and re.search(r"(fc1|q_proj)$", flat[stem]):
            width = _input_width(stems[stem], tensors)
            if width in _TEXT_WIDTHS:
                return _TEXT_WIDTHS[width], None, f"text encoder width {width} ({stem})"
    return "unknown", None, "no shape evidence"


def detect_base_model(
    tensors: Mapping[str, TensorInfo], hints: Sequence[tuple[str, str]] = ()
) -> tuple[BaseModel, tuple[str, ...]]:
    """The base model and any warnings, from shapes refined by ``hints``.

    ``hints`` are (source, text) pairs in precedence order, e.g. ("civitai baseModel", "Pony").
    """
    family, variant, evidence = family_from_tensors(tensors)
    parsed = [(source, text, *parse_hint(text)) for source, text in hints if text.strip()]
    warnings = []
    if family == "unknown":
        for source, text, hint_family, hint_variant in parsed:
            if hint_family is not None:
                family, variant = hint_family, hint_variant
                evidence = f"{source} '{text}' (no shape evidence)"
                break
    else:
        for source, text, hint_family, _ in parsed:
            if hint_family not in (None, family) and source not in _WEAK_SOURCES:
                warnings.append(
                    f"{source} '{text}' says {hint_family} but tensor shapes say {family}; "
                    "shapes win"
                )
    if variant is None:
        for source, text, hint_family, hint_variant in parsed:
            if hint_family == family and hint_variant is not None:
                variant = hint_variant
                evidence += f"; variant from {source} '{text}'"
                break
    return BaseModel(family=family, variant=variant, evidence=evidence), tuple(warnings)
