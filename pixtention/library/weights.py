"""Adapter tensors → uniform factors per target module (design §3 "Weights → factors").

LoRA, LoCon and PEFT stay low-rank (``LowRank``: cheap to gate in rank space). LoHa, LoKr,
IA3, full diffs and DoRA become ``Dense``: a function of the base weight that returns ΔW,
materialised once per generation. The formulas follow the LyCORIS papers and the WebUI's
``calc_updown`` semantics (scale = alpha / rank, applied once), and are checked against
``lycoris-lora``'s own modules in tests/test_library_lycoris_reference.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch

from pixtention.library.errors import LibraryError
from pixtention.library.factors import AdapterWeights, Dense, LowRank, ModuleDelta
from pixtention.library.info import TensorInfo
from pixtention.library.layout import classify, group_by_stem, is_text_encoder_stem, stem_kind
from pixtention.library.safetensors_file import open_safetensors, read_header

Tensors = Mapping[str, torch.Tensor]  # role → tensor, for one stem


class FactorError(ValueError):
    """One module's factors are unusable; the message names the stem and the reason."""


def _scale(stem: str, tensors: Tensors, rank: int | None) -> float:
    """alpha / rank; 1 without alpha or rank. alpha 0 means "alpha = rank", as kohya trains it."""
    alpha = tensors.get("alpha")
    if alpha is None or rank is None:
        return 1.0
    if alpha.numel() != 1:
        raise FactorError(f"{stem}: alpha has shape {tuple(alpha.shape)}, expected a scalar")
    value = float(alpha.reshape(()).item())
    return 1.0 if value == 0 else value / rank


def _rank_of(stem: str, factor: torch.Tensor) -> int:
    rank = int(factor.shape[0]) if factor.dim() else 0
    if rank == 0 or factor.numel() == 0:
        raise FactorError(f"{stem}: rank-0 factor of shape {tuple(factor.shape)}")
    return rank


def _low_rank(stem: str, tensors: Tensors, down_role: str, up_role: str) -> LowRank:
    down, up, mid = tensors[down_role], tensors[up_role], tensors.get("lora_mid")
    rank = _rank_of(stem, down)
    shapes = f"down {tuple(down.shape)}, up {tuple(up.shape)}"
    if down.dim() not in (2, 4) or up.dim() != down.dim() or up.shape[1] != rank:
        raise FactorError(f"{stem}: inconsistent low-rank shapes ({shapes})")
    if up.dim() == 4 and tuple(up.shape[2:]) != (1, 1):
        raise FactorError(f"{stem}: up factor must be a 1×1 convolution ({shapes})")
    if mid is not None:
        ok = down.dim() == 4 and mid.dim() == 4 and tuple(mid.shape[:2]) == (rank, rank)
        if not ok or tuple(down.shape[2:]) != (1, 1):
            raise FactorError(
                f"{stem}: inconsistent Tucker shapes ({shapes}, mid {tuple(mid.shape)})"
            )
    if up.shape[0] == 0 or down.shape[1] == 0:
        raise FactorError(f"{stem}: empty factor ({shapes})")
    return LowRank(down=down, up=up, scale=_scale(stem, tensors, rank), mid=mid)


def low_rank_weight(factors: LowRank) -> torch.Tensor:
    """ΔW of a low-rank pair, with its scale: (out, in) or (out, in, kh, kw)."""
    up = factors.up.reshape(factors.up.shape[0], -1)
    if factors.mid is None:
        down = factors.down.reshape(factors.down.shape[0], -1)
        weight = (up @ down).reshape(up.shape[0], *factors.down.shape[1:])
    else:  # CP/Tucker rebuild: W[o, i, k, l] = Σ_nm mid[n, m, k, l] · up[o, n] · down[m, i]
        down = factors.down.reshape(factors.down.shape[0], -1)
        weight = torch.einsum("nmkl,on,mi->oikl", factors.mid, up, down)
    return weight * factors.scale


def _fit(stem: str, delta: torch.Tensor, orig_weight: torch.Tensor) -> torch.Tensor:
    """Reshape a rebuilt ΔW to the base weight (conv deltas are often built flattened)."""
    if delta.numel() != orig_weight.numel():
        raise FactorError(
            f"{stem}: delta of shape {tuple(delta.shape)} does not fit the weight "
            f"{tuple(orig_weight.shape)}"
        )
    return delta.reshape(orig_weight.shape)


def _tucker(core: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """W[p, r, …] = Σ_ij core[i, j, …] · left[i, p] · right[j, r] (LyCORIS' CP rebuild)."""
    return torch.einsum("ij...,ip,jr->pr...", core, left, right)


def _check_pair(stem: str, a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.dim() != 2 or b.dim() < 2 or a.shape[1] != b.shape[0] or 0 in a.shape or 0 in b.shape:
        raise FactorError(f"{stem}: inconsistent {what} shapes {tuple(a.shape)} × {tuple(b.shape)}")


def _loha(stem: str, tensors: Tensors) -> tuple[Callable[[], torch.Tensor], int]:
    """LoHa: ΔW = s · (W1a W1b) ⊙ (W2a W2b), each half optionally a Tucker rebuild."""
    w1a, w1b, w2a, w2b = (tensors[f"hada_w{i}_{p}"] for i in (1, 2) for p in "ab")
    t1, t2 = tensors.get("hada_t1"), tensors.get("hada_t2")
    rank = _rank_of(stem, w1b)
    if (t1 is None) != (t2 is None):
        raise FactorError(f"{stem}: LoHa needs both hada_t1 and hada_t2 or neither")
    if t1 is None:
        _check_pair(stem, w1a, w1b, "LoHa w1")
        _check_pair(stem, w2a, w2b, "LoHa w2")
        if (w1a.shape[0], w1b.shape[1]) != (w2a.shape[0], w2b.shape[1]):
            raise FactorError(f"{stem}: LoHa halves rebuild to different shapes")
    else:
        for t, a, b in ((t1, w1a, w1b), (t2, w2a, w2b)):
            if t.dim() < 2 or (t.shape[0], t.shape[1]) != (a.shape[0], b.shape[0]):
                raise FactorError(f"{stem}: inconsistent LoHa Tucker shapes {tuple(t.shape)}")
        if (w1a.shape[1], w1b.shape[1]) != (w2a.shape[1], w2b.shape[1]) or t1.shape != t2.shape:
            raise FactorError(f"{stem}: LoHa halves rebuild to different shapes")
    scale = _scale(stem, tensors, rank)

    def rebuild() -> torch.Tensor:
        if t1 is None:
            return (w1a @ w1b.flatten(1)) * (w2a @ w2b.flatten(1)) * scale
        return _tucker(t1, w1a, w1b) * _tucker(t2, w2a, w2b) * scale

    return rebuild, rank


def _lokr_half(
    stem: str, tensors: Tensors, i: int
) -> tuple[Callable[[], torch.Tensor], int | None]:
    whole = tensors.get(f"lokr_w{i}")
    if whole is not None:
        if whole.dim() < 2 or whole.numel() == 0:
            raise FactorError(f"{stem}: LoKr w{i} of shape {tuple(whole.shape)}")
        return (lambda: whole), None
    a, b = tensors[f"lokr_w{i}_a"], tensors[f"lokr_w{i}_b"]
    rank = _rank_of(stem, b)
    core = tensors.get("lokr_t2") if i == 2 else None
    if core is None:
        _check_pair(stem, a, b, f"LoKr w{i}")
        return (lambda: (a @ b.flatten(1)).reshape(a.shape[0], *b.shape[1:])), rank
    if core.dim() < 2 or (core.shape[0], core.shape[1]) != (a.shape[0], b.shape[0]):
        raise FactorError(f"{stem}: inconsistent LoKr Tucker shapes {tuple(core.shape)}")
    return (lambda: _tucker(core, a, b)), rank


def _lokr(stem: str, tensors: Tensors) -> tuple[Callable[[], torch.Tensor], int | None]:
    """LoKr: ΔW = s · W1 ⊗ W2 (Kronecker), either half whole or a (Tucker) low-rank pair."""
    half1, rank1 = _lokr_half(stem, tensors, 1)
    half2, rank2 = _lokr_half(stem, tensors, 2)
    rank = rank1 if rank1 is not None else rank2
    scale = _scale(stem, tensors, rank)

    def rebuild() -> torch.Tensor:
        w1, w2 = half1(), half2()
        w1 = w1.reshape(*w1.shape, *([1] * (w2.dim() - w1.dim())))
        return torch.kron(w1.contiguous(), w2.contiguous()) * scale

    return rebuild, rank


def _ia3(stem: str, tensors: Tensors) -> Callable[[torch.Tensor], torch.Tensor]:
    """IA3: W scaled per output row (or per input column when ``on_input``) — ΔW = W ⊙ w."""
    vector = tensors["ia3_weight"].flatten()
    flag = tensors.get("on_input")
    on_input = bool(flag.flatten()[0].item()) if flag is not None and flag.numel() else False
    if vector.numel() == 0:
        raise FactorError(f"{stem}: empty IA3 weight")

    def delta(orig_weight: torch.Tensor) -> torch.Tensor:
        axis = 1 if on_input else 0
        if orig_weight.shape[axis] != vector.numel():
            raise FactorError(
                f"{stem}: IA3 vector of {vector.numel()} does not fit weight {tuple(orig_weight.shape)}"
            )
        view = [1] * orig_weight.dim()
        view[axis] = vector.numel()
        return orig_weight * vector.to(orig_weight).reshape(view)

    return delta


def _norm_along(weight: torch.Tensor, magnitude: torch.Tensor, stem: str) -> torch.Tensor:
    """‖W‖ per output row or per input column, whichever the magnitude's shape names."""
    rows = magnitude.dim() == 1 or (
        magnitude.shape[0] == weight.shape[0] and magnitude[0].numel() == 1
    )
    if rows and magnitude.numel() == weight.shape[0]:
        norm = weight.reshape(weight.shape[0], -1).norm(dim=1)
        return norm.reshape(weight.shape[0], *([1] * (weight.dim() - 1)))
    if magnitude.dim() > 1 and magnitude.numel() == weight.shape[1] == magnitude.shape[1]:
        norm = weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1)
        return norm.reshape(1, weight.shape[1], *([1] * (weight.dim() - 2)))
    raise FactorError(
        f"{stem}: DoRA magnitude {tuple(magnitude.shape)} fits neither rows nor columns of "
        f"{tuple(weight.shape)}"
    )


def _dora(
    stem: str, magnitude: torch.Tensor, base_delta: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """DoRA (Liu et al. 2024): W' = m · (W + ΔW) / ‖W + ΔW‖, so ΔW_dora = W' − W.

    The norm runs per output row (LyCORIS ``wd_on_out``, PEFT) or per input column (the
    WebUI's convention), as the stored magnitude's shape says.
    """

    def delta(orig_weight: torch.Tensor) -> torch.Tensor:
        merged = orig_weight + base_delta(orig_weight)
        norm = _norm_along(merged, magnitude, stem)
        scale = magnitude.to(merged).reshape(norm.shape) / norm
        return merged * scale - orig_weight

    return delta


def _as_weight_fn(stem: str, rebuild: Callable[[], torch.Tensor]):
    def delta(orig_weight: torch.Tensor) -> torch.Tensor:
        return _fit(stem, rebuild().to(orig_weight), orig_weight)

    return delta


def module_delta(stem: str, tensors: Tensors) -> ModuleDelta:
    """Build one module's delta from its tensors by role (as ``group_by_stem`` names them)."""
    for role, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FactorError(f"{stem}: {role} holds NaN or infinite values")
    kind = stem_kind(tensors)
    if kind is None:
        raise FactorError(f"{stem}: incomplete factors ({', '.join(sorted(tensors))})")
    magnitude = tensors.get("dora_scale", tensors.get("peft_magnitude"))
    base_kind = (
        stem_kind(set(tensors) - {"dora_scale", "peft_magnitude"})
        if magnitude is not None
        else kind
    )
    factors: LowRank | Dense
    if base_kind in ("lora", "locon"):
        factors = _low_rank(stem, tensors, "lora_down", "lora_up")
        if factors.down.dim() == 4 and tuple(factors.down.shape[2:]) != (1, 1):
            base_kind = "locon"
    elif base_kind == "peft":
        factors = _low_rank(stem, tensors, "lora_A", "lora_B")
    elif base_kind == "loha":
        rebuild, rank = _loha(stem, tensors)
        factors = Dense(delta=_as_weight_fn(stem, rebuild), rank=rank)
    elif base_kind == "lokr":
        rebuild, rank = _lokr(stem, tensors)
        factors = Dense(delta=_as_weight_fn(stem, rebuild), rank=rank)
    elif base_kind == "ia3":
        factors = Dense(delta=_ia3(stem, tensors))
    else:  # full
        diff = tensors["diff"]
        factors = Dense(delta=_as_weight_fn(stem, lambda: diff), bias=tensors.get("diff_b"))
    if magnitude is None:
        return ModuleDelta(key=stem, kind=base_kind, factors=factors)
    if isinstance(factors, LowRank):
        low_rank = factors
        base_fn = _as_weight_fn(stem, lambda: low_rank_weight(low_rank))
        factors = Dense(delta=_dora(stem, magnitude, base_fn), rank=low_rank.rank)
    else:
        factors = Dense(
            delta=_dora(stem, magnitude, factors.delta), bias=factors.bias, rank=factors.rank
        )
    return ModuleDelta(key=stem, kind="dora", factors=factors)


def delta_weight(delta: ModuleDelta, orig_weight: torch.Tensor) -> torch.Tensor:
    """The full ΔW (adapter scale included, user weight not) shaped like ``orig_weight``."""
    if isinstance(delta.factors, Dense):
        return delta.factors.delta(orig_weight)
    return _fit(delta.key, low_rank_weight(delta.factors).to(orig_weight), orig_weight)


def weights_from_tensors(tensors: Mapping[str, torch.Tensor]) -> AdapterWeights:
    """Group a file's tensors by target module and build every module's delta.

    Raises ``FactorError`` for NaN/inf values, rank-0 factors or inconsistent shapes; tensors
    of no known layout are listed in ``unrecognised``.
    """
    infos = {name: TensorInfo(str(t.dtype), tuple(t.shape)) for name, t in tensors.items()}
    layout = classify(infos)
    stems, _ = group_by_stem(tensors)
    unet: dict[str, ModuleDelta] = {}
    text_encoder: dict[str, ModuleDelta] = {}
    for stem, roles in stems.items():
        if stem_kind(roles) is None:
            continue  # listed in layout.unrecognised
        delta = module_delta(stem, {role: tensors[name] for role, name in roles.items()})
        (text_encoder if is_text_encoder_stem(stem) else unet)[stem] = delta
    return AdapterWeights(
        kind=layout.kind,
        rank=layout.rank,
        unet=unet,
        text_encoder=text_encoder,
        unrecognised=layout.unrecognised,
    )


def load_weights(
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> AdapterWeights:
    """Read an adapter file's tensors (safetensors only) and build its factors.

    Raises ``LibraryError`` with one line for unreadable files and unusable factors.
    """
    header = read_header(path)  # validates the file and refuses pickles before any tensor read
    try:
        with open_safetensors(os.fspath(path)) as handle:
            tensors = {name: handle.get_tensor(name) for name in header.tensors}
    except Exception as exc:  # the header was validated; this is I/O or a corrupt data region
        reason = str(exc).strip().splitlines()
        raise LibraryError(path, f"cannot read tensors: {reason[0] if reason else exc}") from None
    converted = {
        name: t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
        for name, t in tensors.items()
    }
    try:
        weights = weights_from_tensors(converted)
    except FactorError as exc:
        raise LibraryError(path, str(exc)) from None
    if not weights.unet and not weights.text_encoder:
        raise LibraryError(path, "no adapter tensors (not a LoRA/LyCORIS/PEFT file?)")
    return weights
