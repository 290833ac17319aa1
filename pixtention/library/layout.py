"""What an adapter file's tensor names and shapes say about it, before any tensor is loaded.

Every adapter format names its tensors ``<stem>.<suffix>``: the stem names the target module
(``lora_unet_down_blocks_0_attentions_0_proj_in``, ``unet.down_blocks.0….to_k``), the suffix
names the factor (``lora_down.weight``, ``hada_w1_a``, ``lora_A.default.weight``). Splitting on
the suffix, not on the first dot, lets kohya, LyCORIS, PEFT and diffusers names share one path.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from pixtention.library.info import Layout, TensorInfo

# Suffix → role. A role is what the tensor is, whatever the format spells it as.
_FIXED_SUFFIXES: dict[str, str] = {
    "lora_down.weight": "lora_down",
    "lora_up.weight": "lora_up",
    "lora_mid.weight": "lora_mid",
    "lora.down.weight": "lora_A",  # diffusers attention-processor LoRA
    "lora.up.weight": "lora_B",
    "hada_w1_a": "hada_w1_a",
    "hada_w1_b": "hada_w1_b",
    "hada_w2_a": "hada_w2_a",
    "hada_w2_b": "hada_w2_b",
    "hada_t1": "hada_t1",
    "hada_t2": "hada_t2",
    "lokr_w1": "lokr_w1",
    "lokr_w1_a": "lokr_w1_a",
    "lokr_w1_b": "lokr_w1_b",
    "lokr_w2": "lokr_w2",
    "lokr_w2_a": "lokr_w2_a",
    "lokr_w2_b": "lokr_w2_b",
    "lokr_t2": "lokr_t2",
    "diff": "diff",
    "diff_b": "diff_b",
    "on_input": "on_input",
    "dora_scale": "dora_scale",
    "alpha": "alpha",
    "weight": "ia3_weight",  # only for kohya-style stems (see _role_for)
}
_SUFFIXES_LONGEST_FIRST = sorted(_FIXED_SUFFIXES, key=len, reverse=True)
# PEFT: ``lora_A.weight`` or with an adapter name, ``lora_A.default.weight``; DoRA magnitude.
_PEFT_FACTOR = re.compile(r"\.(lora_[AB])(?:\.[^.]+)?\.weight$")
_PEFT_MAGNITUDE = re.compile(r"\.lora_magnitude_vector(?:\.[^.]+)?(?:\.weight)?$")
# diffusers ≤ 0.17 attention processors: ``attn1.processor.to_q_lora.down.weight``.
_ATTN_PROCESSOR = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")

_TEXT_ENCODER_PREFIXES = ("lora_te_", "lora_te1_", "lora_te2_", "lora_te3_", "lycoris_te_")
_TEXT_ENCODER_DOTTED = ("text_encoder.", "text_encoder_2.", "text_encoders.", "text_model.")
_PEFT_WRAPPER = "base_model.model."

# Which roles make up each kind; ``required`` must all be present for the stem to count.
_LOW_RANK_ROLES = {"lora_down", "lora_up", "lora_mid"}
_PEFT_ROLES = {"lora_A", "lora_B", "peft_magnitude"}
_LOHA_ROLES = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"}
_LOKR_ROLES = {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"}
_IA3_ROLES = {"ia3_weight", "on_input"}
_FULL_ROLES = {"diff", "diff_b"}
_AUX_ROLES = {"alpha", "dora_scale"}


def split_key(name: str) -> tuple[str, str]:
    """Split a tensor name into (module stem, factor suffix); suffix "" when none is known.

    The suffix is returned as spelled in the file (``lora_A.default.weight`` stays whole);
    ``suffix_role`` turns it into the format-independent role. Old diffusers attention-processor
    names are the one case where the stem is rewritten: ``attn1.processor.to_out_lora.up.weight``
    → (``attn1.to_out.0``, ``lora.up.weight``), the module the processor wrapped.
    """
    processor = _ATTN_PROCESSOR.search(name)
    if processor:
        target = "to_out.0" if processor.group(1) == "to_out" else processor.group(1)
        return f"{name[: processor.start()]}.{target}", f"lora.{processor.group(2)}.weight"
    match = _PEFT_FACTOR.search(name) or _PEFT_MAGNITUDE.search(name)
    if match:
        return name[: match.start()], name[match.start() + 1 :]
    for suffix in _SUFFIXES_LONGEST_FIRST:
        if name.endswith("." + suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix) - 1], suffix
    return name, ""


def suffix_role(suffix: str) -> str | None:
    """The role of a factor suffix (``lora_down``, ``lora_A``, ``hada_w1_a`` …), or None."""
    if suffix in _FIXED_SUFFIXES:
        return _FIXED_SUFFIXES[suffix]
    match = _PEFT_FACTOR.search("." + suffix)
    if match and match.start() == 0:
        return match.group(1)
    match = _PEFT_MAGNITUDE.search("." + suffix)
    if match and match.start() == 0:
        return "peft_magnitude"
    return None


def is_text_encoder_stem(stem: str) -> bool:
    """True for stems that target a text encoder (kohya ``lora_te*_``, PEFT ``text_encoder.``)."""
    if stem.startswith(_TEXT_ENCODER_PREFIXES):
        return True
    if stem.startswith(_PEFT_WRAPPER):
        stem = stem[len(_PEFT_WRAPPER) :]
    return stem.startswith(_TEXT_ENCODER_DOTTED)


def _is_kohya_stem(stem: str) -> bool:
    """Kohya/LyCORIS stems are one underscore-joined word; the bare ``weight`` suffix (IA3) is
    only trusted on them, so a full checkpoint's ``….weight`` tensors are not taken for IA3."""
    return "." not in stem and stem.startswith(("lora_", "lycoris_"))


def stem_kind(roles: Iterable[str]) -> str | None:
    """The adapter kind of one stem from its set of roles, or None when it is incomplete."""
    present = set(roles)
    if "dora_scale" in present or "peft_magnitude" in present:
        base = stem_kind(present - {"dora_scale", "peft_magnitude"})
        return "dora" if base is not None else None
    if {"lora_down", "lora_up"} <= present and present <= _LOW_RANK_ROLES | _AUX_ROLES:
        return "locon" if "lora_mid" in present else "lora"
    if {"lora_A", "lora_B"} <= present and present <= _PEFT_ROLES | _AUX_ROLES:
        return "peft"
    if {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} <= present and (
        present <= _LOHA_ROLES | _AUX_ROLES
    ):
        return "loha"
    has_w1 = "lokr_w1" in present or {"lokr_w1_a", "lokr_w1_b"} <= present
    has_w2 = "lokr_w2" in present or {"lokr_w2_a", "lokr_w2_b"} <= present
    if has_w1 and has_w2 and present <= _LOKR_ROLES | _AUX_ROLES:
        return "lokr"
    if "ia3_weight" in present and present <= _IA3_ROLES | _AUX_ROLES:
        return "ia3"
    if "diff" in present and present <= _FULL_ROLES | _AUX_ROLES:
        return "full"
    return None


def stem_rank(kind: str, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """The rank of one stem from its factor shapes (by role); None for kinds without one."""
    if "lora_down" in shapes:
        return shapes["lora_down"][0] if shapes["lora_down"] else None
    if "lora_A" in shapes:
        return shapes["lora_A"][0] if shapes["lora_A"] else None
    if kind in ("loha", "dora") and "hada_w1_b" in shapes:
        return shapes["hada_w1_b"][0] if shapes["hada_w1_b"] else None
    if "lokr_w2_b" in shapes:
        return shapes["lokr_w2_b"][0] if shapes["lokr_w2_b"] else None
    if "lokr_w1_b" in shapes:
        return shapes["lokr_w1_b"][0] if shapes["lokr_w1_b"] else None
    return None


def group_by_stem(names: Iterable[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Group tensor names as {stem: {role: name}}; names of no known role come back apart."""
    stems: dict[str, dict[str, str]] = defaultdict(dict)
    unknown: list[str] = []
    for name in names:
        stem, suffix = split_key(name)
        role = suffix_role(suffix) if suffix else None
        if role == "ia3_weight" and not _is_kohya_stem(stem):
            role = None
        if role is None or role in stems[stem]:
            unknown.append(name)
            continue
        stems[stem][role] = name
    return {stem: roles for stem, roles in stems.items() if roles}, unknown


def _file_kind(kinds: Counter[str]) -> str:
    found = set(kinds)
    if not found:
        return "unknown"
    if found == {"lora", "locon"}:
        return "locon"
    if len(found) == 1:
        return found.pop()
    return "mixed"


def _most_common(ranks: Counter[int]) -> int | None:
    if not ranks:
        return None
    return max(ranks.items(), key=lambda item: (item[1], item[0]))[0]


def _is_spatial_conv(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and (shape[2] > 1 or shape[3] > 1)


def classify(tensors: Mapping[str, TensorInfo]) -> Layout:
    """Kind, rank, target stems and unrecognised names of an adapter, from names and shapes.

    ``alpha`` is left None: alphas are tensors, read only with the weights. A plain LoRA whose
    down factor is a k×k convolution is LoCon (kohya's "conv" dims), as is any Tucker stem.
    """
    stems, unrecognised = group_by_stem(tensors)
    kinds: Counter[str] = Counter()
    ranks: Counter[int] = Counter()
    unet: list[str] = []
    text_encoder: list[str] = []
    for stem, roles in stems.items():
        kind = stem_kind(roles)
        if kind is None:
            unrecognised.extend(roles.values())
            continue
        shapes = {role: tuple(tensors[name].shape) for role, name in roles.items()}
        if kind == "lora" and _is_spatial_conv(shapes["lora_down"]):
            kind = "locon"
        kinds[kind] += 1
        rank = stem_rank(kind, shapes)
        if rank:
            ranks[rank] += 1
        (text_encoder if is_text_encoder_stem(stem) else unet).append(stem)
    return Layout(
        kind=_file_kind(kinds),
        rank=_most_common(ranks),
        alpha=None,
        unet_modules=tuple(sorted(unet)),
        text_encoder_modules=tuple(sorted(text_encoder)),
        unrecognised=tuple(sorted(unrecognised)),
    )
