"""Which modules each adapter touches, checked against the live model and prepared once.

``plan_targets`` validates every adapter against ``named_modules()`` (missing modules are
reported and skipped; shape mismatches, rank 0 and non-finite factors are refused) and groups
the deltas per module with a *role*: spatial (gated per pixel), ``kv`` (cross-attention
``to_k``/``to_v``: per-adapter branches) or ``emb`` (time-embedding projections of a ResBlock:
gated after broadcasting to H×W). ``prepare`` moves the factors to the module's device and
dtype, stacked, once per attachment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixtention.integrator.config import GatedAdapter, IntegratorError
from pixtention.integrator.gating import (
    ConvGeometry,
    Stacked,
    TokenGroups,
    dense_delta,
    gated_conv,
    gated_linear,
    gated_tokens,
    per_adapter_factors,
    stack_lowrank,
    tucker_delta,
)
from pixtention.library.factors import Dense, LowRank, ModuleDelta


@dataclass(frozen=True)
class AttachReport:
    """What attaching did with each adapter, for the UI and the API."""

    gated: tuple[str, ...]  # adapters in mask order
    skipped: tuple[tuple[str, str], ...] = ()  # (adapter, reason)
    missing: tuple[tuple[str, str], ...] = ()  # (adapter, module key not in this model)
    text_encoder_off: tuple[tuple[str, int], ...] = ()  # (adapter, text-encoder modules left off)
    dense: tuple[str, ...] = ()  # adapters with dense ΔW targets (slower path)


@dataclass(frozen=True)
class TargetPlan:
    """One module's deltas: ``entries`` pairs an adapter's mask index with its delta."""

    path: str
    role: str  # "spatial" | "kv" | "emb"
    geometry: ConvGeometry | None  # None for Linear targets
    entries: tuple[tuple[int, ModuleDelta], ...]
    dense: Mapping[int, tuple[torch.Tensor, torch.Tensor | None]]  # index → (ΔW, Δbias), fp32


@dataclass(frozen=True)
class Prepared:
    """A module's deltas on its device/dtype: stacked low-rank, Tucker and dense parts."""

    plan: TargetPlan
    lowrank: Stacked | None
    lowrank_index: tuple[int, ...]
    per_adapter: tuple[torch.Tensor, torch.Tensor] | None  # lowrank as [K, r, in], [K, out, r]
    tucker: tuple[tuple[int, LowRank, float], ...]
    dense_w: torch.Tensor | None  # [Kd·out, in(, kh, kw)]
    dense_b: torch.Tensor | None
    dense_index: tuple[int, ...]

    @property
    def plan_index(self) -> frozenset[int]:
        """Mask indices of every adapter with a delta on this module."""
        return frozenset(i for i, _ in self.plan.entries)

    @property
    def pointwise(self) -> bool:
        """Whether output token p depends only on input token p (Linear, or 1×1 conv with
        stride 1 and no padding): then the low-rank part can run on masked tokens only."""
        g = self.plan.geometry
        if g is None:
            return True
        down = self.lowrank.down if self.lowrank is not None else None
        return (
            down is not None
            and tuple(down.shape[2:]) == (1, 1)
            and g.stride == (1, 1)
            and g.padding in ((0, 0), "valid")
        )


def _role(path: str) -> str:
    parts = path.split(".")
    if len(parts) >= 2 and parts[-2] == "attn2" and parts[-1] in ("to_k", "to_v"):
        return "kv"
    if "emb_layers" in parts:
        return "emb"
    return "spatial"


def _geometry(module: torch.nn.Module) -> ConvGeometry | None:
    weight = module.weight
    if weight.dim() == 2:
        return None
    if weight.dim() != 4 or getattr(module, "groups", 1) != 1:
        raise IntegratorError(f"unsupported target with weight shape {tuple(weight.shape)}")
    pad = module.padding
    return ConvGeometry(
        tuple(module.stride), pad if isinstance(pad, str) else tuple(pad), tuple(module.dilation)
    )


def _fit_lowrank(name: str, path: str, f: LowRank, weight: torch.Tensor) -> LowRank:
    """Check a low-rank pair against the base weight; reshape 1×1 conv ↔ linear forms."""
    if f.rank == 0 or f.up.numel() == 0:
        raise IntegratorError(f"adapter '{name}': {path} has rank 0")
    tensors = [f.down, f.up] + ([f.mid] if f.mid is not None else [])
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise IntegratorError(f"adapter '{name}': {path} holds NaN or infinite values")
    out_w, in_w = int(weight.shape[0]), int(weight.shape[1])
    d_in, d_out = int(f.down.shape[1]), int(f.up.shape[0])
    if (d_in, d_out) != (in_w, out_w):
        raise IntegratorError(
            f"adapter '{name}' does not fit this model: {path} maps {in_w} → {out_w} features but "
            f"the adapter's delta maps {d_in} → {d_out} (made for another base model, e.g. an SD1 "
            f"LoRA on an SDXL model?)"
        )
    down, up = f.down, f.up.reshape(d_out, -1)
    if weight.dim() == 2:
        if down.dim() == 4 and down.shape[2:] != (1, 1):
            raise IntegratorError(
                f"adapter '{name}': {path} is Linear but the delta is a {tuple(down.shape[2:])} conv"
            )
        return LowRank(down.reshape(f.rank, -1), up, f.scale, None)
    kernel = tuple(weight.shape[2:])
    if f.mid is not None:
        if tuple(f.mid.shape[2:]) != kernel:
            raise IntegratorError(
                f"adapter '{name}': {path} Tucker kernel {tuple(f.mid.shape[2:])} ≠ base {kernel}"
            )
        return LowRank(down.reshape(f.rank, in_w, 1, 1), up, f.scale, f.mid)
    down = down.reshape(f.rank, in_w, 1, 1) if down.dim() == 2 else down
    if tuple(down.shape[2:]) != kernel:
        raise IntegratorError(
            f"adapter '{name}': {path} down kernel {tuple(down.shape[2:])} ≠ base {kernel}"
        )
    return LowRank(down, up, f.scale, None)


def _materialise(
    name: str, path: str, f: Dense, weight: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    delta = f.delta(weight.detach().float().cpu())
    if tuple(delta.shape) != tuple(weight.shape):
        raise IntegratorError(
            f"adapter '{name}' does not fit this model: {path} weight is {tuple(weight.shape)}, the "
            f"adapter's delta is {tuple(delta.shape)} (made for another base model?)"
        )
    if f.rank == 0:
        raise IntegratorError(f"adapter '{name}': {path} has rank 0")
    bias = None if f.bias is None else f.bias.float() * scale
    if not bool(torch.isfinite(delta).all()) or (
        bias is not None and not bool(torch.isfinite(bias).all())
    ):
        raise IntegratorError(f"adapter '{name}': {path} holds NaN or infinite values")
    return delta.float() * scale, bias


def plan_targets(
    modules: Mapping[str, torch.nn.Module], adapters: Sequence[GatedAdapter]
) -> tuple[dict[str, TargetPlan], AttachReport]:
    """Validate ``adapters`` (already in mask order) against the model; group deltas per module."""
    grouped: dict[str, list[tuple[int, ModuleDelta]]] = {}
    dense: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor | None]]] = {}
    missing, text_off, dense_names = [], [], []
    for index, adapter in enumerate(adapters):
        missing.extend((adapter.name, key) for key in adapter.mapped.unmatched)
        if adapter.mapped.text_encoder:
            text_off.append((adapter.name, len(adapter.mapped.text_encoder)))
        for path, delta in adapter.mapped.targets.items():
            module = modules.get(path)
            if module is None or not isinstance(getattr(module, "weight", None), torch.Tensor):
                missing.append((adapter.name, path))
                continue
            if isinstance(delta.factors, Dense):
                pair = _materialise(
                    adapter.name, path, delta.factors, module.weight, adapter.weight
                )
                dense.setdefault(path, {})[index] = pair
                if adapter.name not in dense_names:
                    dense_names.append(adapter.name)
            else:
                fitted = _fit_lowrank(adapter.name, path, delta.factors, module.weight)
                delta = ModuleDelta(delta.key, delta.kind, fitted)
            grouped.setdefault(path, []).append((index, delta))
    plans = {
        path: TargetPlan(
            path, _role(path), _geometry(modules[path]), tuple(entries), dense.get(path, {})
        )
        for path, entries in grouped.items()
    }
    report = AttachReport(
        gated=tuple(a.name for a in adapters),
        missing=tuple(missing),
        text_encoder_off=tuple(text_off),
        dense=tuple(dense_names),
    )
    return plans, report


def prepare(
    plan: TargetPlan, weights: Sequence[float], device: torch.device, dtype: torch.dtype
) -> Prepared:
    """Stack and move one module's factors to ``device``/``dtype`` (done once per attachment)."""
    plain = [
        (i, d.factors)
        for i, d in plan.entries
        if isinstance(d.factors, LowRank) and d.factors.mid is None
    ]
    stacked = None
    if plain:
        stacked = stack_lowrank(
            [f for _, f in plain], [weights[i] for i, _ in plain], device=device, dtype=dtype
        )
    tucker = tuple(
        (
            i,
            LowRank(
                f.down.to(device, dtype), f.up.to(device, dtype), f.scale, f.mid.to(device, dtype)
            ),
            weights[i],
        )
        for i, d in plan.entries
        if isinstance(f := d.factors, LowRank) and f.mid is not None
    )
    dense_index = tuple(sorted(plan.dense))
    dense_w = dense_b = None
    if dense_index:
        dense_w = torch.cat([plan.dense[i][0] for i in dense_index]).to(device, dtype)
        if any(plan.dense[i][1] is not None for i in dense_index):
            out = plan.dense[dense_index[0]][0].shape[0]
            biases = [
                plan.dense[i][1] if plan.dense[i][1] is not None else torch.zeros(out)
                for i in dense_index
            ]
            dense_b = torch.cat(biases).to(device, dtype)
    per_adapter = per_adapter_factors(stacked) if stacked is not None else None
    return Prepared(
        plan,
        stacked,
        tuple(i for i, _ in plain),
        per_adapter,
        tucker,
        dense_w,
        dense_b,
        dense_index,
    )


def per_adapter_deltas(prep: Prepared, x: torch.Tensor) -> dict[int, torch.Tensor]:
    """Each adapter's ungated delta for a non-spatial input (context tokens or embeddings)."""
    out: dict[int, torch.Tensor] = {}
    if prep.per_adapter is not None:
        down, up = prep.per_adapter  # all adapters in two batched GEMMs
        hidden = torch.matmul(x.reshape(-1, x.shape[-1]).to(down.dtype), down.transpose(1, 2))
        parts = torch.bmm(hidden, up.transpose(1, 2)).view(len(down), *x.shape[:-1], -1)
        out.update(zip(prep.lowrank_index, parts.unbind(0)))
    if prep.dense_w is not None:
        outs = F.linear(x, prep.dense_w, prep.dense_b).chunk(len(prep.dense_index), dim=-1)
        for index, part in zip(prep.dense_index, outs):
            out[index] = out[index] + part if index in out else part
    if prep.tucker:
        raise IntegratorError(f"{prep.plan.path}: Tucker factors on a non-spatial target")
    return out


def stack_deltas(
    deltas: dict[int, torch.Tensor], index: Sequence[int], like: torch.Tensor
) -> torch.Tensor | None:
    """Adapters ``index``'s K (or V) deltas stacked ``[K', B, T, inner]``, zeros for an adapter
    without one; None when no adapter has any."""
    if not deltas:
        return None
    zeros = torch.zeros_like(like)
    return torch.stack([deltas.get(i, zeros).to(like.dtype) for i in index])


def branch_inputs(
    prep: Prepared | None, base: torch.Tensor, context: torch.Tensor, index: Sequence[int]
) -> torch.Tensor:
    """``base + Δ_k(context)`` for adapters ``index``, stacked ``[K', B, T, inner]`` (``base``
    itself for an adapter without a delta here): the keys or values of each attention branch.

    When every adapter of ``index`` is plain low-rank here, the add rides in the up GEMM
    (``baddbmm``) instead of stacking per-adapter deltas and adding them afterwards.
    """
    count = len(index)
    if prep is None:
        return base.expand(count, *base.shape)
    if prep.dense_w is None and not prep.tucker and prep.lowrank_index == tuple(index):
        down, up = prep.per_adapter
        hidden = torch.matmul(
            context.reshape(-1, context.shape[-1]).to(down.dtype), down.transpose(1, 2)
        )
        flat = base.reshape(1, -1, base.shape[-1]).to(up.dtype)
        out = torch.baddbmm(flat, hidden, up.transpose(1, 2))
        return out.view(count, *base.shape).to(base.dtype)
    return base + stack_deltas(per_adapter_deltas(prep, context), index, base)


def dense_stack(prep: Prepared, x: torch.Tensor) -> torch.Tensor:
    """Dense deltas of every dense adapter, ``[Kd, B, ...]``, for a spatial input."""
    k = len(prep.dense_index)
    y = dense_delta(x, prep.dense_w, prep.dense_b, prep.plan.geometry)
    if prep.plan.geometry is None:
        return y.unflatten(-1, (k, -1)).movedim(-2, 0)
    return y.unflatten(1, (k, -1)).movedim(1, 0)


def spatial_delta(
    prep: Prepared, x: torch.Tensor, masks: torch.Tensor, gate: torch.Tensor | None
) -> torch.Tensor | None:
    """The gated delta of every adapter on one spatial module.

    ``masks`` ``[B, K, N]`` (N tokens or H·W of the output; 1 for a non-spatial input ``[B, C]``)
    gate the Tucker and dense parts; ``gate`` is the low-rank gate already expanded to rank
    columns (``[B, N, R]``, or ``[B, R, H, W]`` for convs), None when the caller applies the
    low-rank part itself (token-sparse path). Returns None when there is nothing to add.
    """
    geometry = prep.plan.geometry
    factor = prep.lowrank.down if prep.lowrank is not None else prep.dense_w
    if factor is not None:
        x = x.to(factor.dtype)  # e.g. fp32 activations under autocast on fp16 weights
    total = None

    def add(part: torch.Tensor) -> None:
        nonlocal total
        total = part if total is None else total + part

    if prep.lowrank is not None and gate is not None:
        if geometry is not None:
            add(gated_conv(x, prep.lowrank, gate, geometry))
        else:
            add(gated_linear(x, prep.lowrank, gate if x.dim() == 3 else gate[:, 0]))
    for index, factors, weight in prep.tucker:
        delta = tucker_delta(x, factors, weight, geometry)
        add(delta * masks[:, index].view(masks.shape[0], 1, *delta.shape[-2:]))
    if prep.dense_w is not None:
        deltas = dense_stack(prep, x)  # [Kd, B, ...]
        sel = masks[:, list(prep.dense_index)].movedim(1, 0)  # [Kd, B, N]
        if geometry is not None:
            sel = sel.view(*sel.shape[:2], 1, *deltas.shape[-2:])
        elif x.dim() == 3:
            sel = sel.unsqueeze(-1)
        add((deltas * sel).sum(0))
    return total


def add_sparse(
    output: torch.Tensor, x: torch.Tensor, prep: Prepared, groups: TokenGroups
) -> torch.Tensor:
    """Add the low-rank deltas on masked tokens only (pointwise targets; see ``pointwise``).

    ``groups`` holds the tokens of each low-rank adapter (in ``lowrank_index`` order). Tokens
    are the last-but-one axis of a Linear's ``[B, N, C]`` and the flattened H·W of a 1×1
    conv's ``[B, C, H, W]``. In place when autograd is off, else on a copy.
    """
    y = output if not torch.is_grad_enabled() else output.clone()
    down, up = prep.per_adapter
    k = down.shape[0]
    gate = groups.gate.view(k, -1).to(down.dtype)
    if prep.plan.geometry is None:  # Linear [B, N, C]: flat token indices
        flat, flat_y = groups.flat.view(-1), y.view(-1, y.shape[-1])
        tokens = x.reshape(-1, x.shape[-1]).index_select(0, flat).to(down.dtype)
        delta = gated_tokens(tokens.view(k, -1, tokens.shape[-1]), down, up, gate)
        flat_y.index_add_(0, flat, delta.view(flat.shape[0], -1).to(y.dtype))
        return y
    rows, positions = groups.rows.view(-1), groups.positions.view(-1)
    tokens = x.flatten(2)[rows, :, positions].to(down.dtype)  # 1×1 conv: [K·n, C]
    delta = gated_tokens(tokens.view(k, -1, tokens.shape[-1]), down, up, gate)
    # scatter into a token-major buffer (index_add_ on rows is cheap; an accumulating
    # index_put_ into the channel-major output is not), then add it transposed
    b, c = y.shape[:2]
    flat = groups.flat.view(-1)
    buffer = y.new_zeros(b * y[0, 0].numel(), c).index_add_(
        0, flat, delta.view(flat.shape[0], -1).to(y.dtype)
    )
    ys = y.flatten(2)  # a view [B, C, HW] of y
    ys.add_(buffer.view(b, -1, c).transpose(1, 2))
    return y
