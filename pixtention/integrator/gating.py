"""Gated LoRA maths (design §6.5): pure functions on tensors, no hooks and no state.

Stacked rank space: with ``A = [A_1; …; A_K]`` (R × in), ``B = [s_1 B_1 | … | s_K B_K]``
(out × R) and a gate ``G`` (… × R) repeating each adapter's mask over its rank columns,
``Δy = ((x Aᵀ) ⊙ G) Bᵀ`` — two GEMMs whatever K is. Dense deltas (LoHa, LoKr, IA3, full,
DoRA) are stacked along the output axis and blended by the masks. Cross-attention ``to_k`` /
``to_v`` deltas act on text tokens, so they become per-adapter attention branches blended by
the spatial masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixtention.library.factors import LowRank


@dataclass(frozen=True)
class ConvGeometry:
    """The base conv's stride/padding/dilation that a delta conv must reuse."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] | str = (0, 0)
    dilation: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class Stacked:
    """Several adapters' low-rank factors for one target, stacked along the rank axis.

    ``down``: Linear (R, in) or conv (R, in, kh, kw); ``up``: (out, R) with each adapter's
    ``scale × weight`` folded in; ``ranks``: each adapter's share of R, in order.
    """

    down: torch.Tensor
    up: torch.Tensor
    ranks: tuple[int, ...]


def stack_lowrank(
    factors: Sequence[LowRank],
    weights: Sequence[float],
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Stacked:
    """Stack non-Tucker low-rank factors; scales and user weights go into ``up``."""
    downs, ups = [], []
    for f, w in zip(factors, weights):
        if f.mid is not None:
            raise ValueError("Tucker factors do not stack; use tucker_delta per adapter")
        downs.append(f.down.to(device=device, dtype=torch.float32))
        ups.append(
            f.up.reshape(f.up.shape[0], -1).to(device=device, dtype=torch.float32) * (f.scale * w)
        )
    down = torch.cat(downs, 0).to(dtype=dtype or downs[0].dtype)
    up = torch.cat(ups, 1).to(dtype=dtype or ups[0].dtype)
    return Stacked(down.contiguous(), up.contiguous(), tuple(int(d.shape[0]) for d in downs))


def expand_gate(masks: torch.Tensor, ranks: Sequence[int]) -> torch.Tensor:
    """Gate ``[..., R]`` from masks ``[..., K]``: adapter k's mask repeated over its ranks."""
    index = torch.repeat_interleave(
        torch.arange(len(ranks), device=masks.device), torch.tensor(ranks, device=masks.device)
    )
    return masks.index_select(-1, index)


def gated_linear(x: torch.Tensor, stacked: Stacked, gate: torch.Tensor) -> torch.Tensor:
    """``((x Aᵀ) ⊙ G) Bᵀ`` for ``x`` [..., in] and a gate broadcastable to [..., R]."""
    return (x @ stacked.down.T).mul_(gate) @ stacked.up.T


@dataclass(frozen=True)
class TokenGroups:
    """The tokens each of K' adapters' masks touches in each of B rows, padded to a common
    count ``n`` so that all adapters run as one batched GEMM (padding has gate 0).

    ``rows``/``positions``/``gate``: ``[K', B, n]`` batch row, token index and mask value;
    ``flat``: ``rows · N + positions``, the index into the ``[B·N, …]`` flattened tokens.
    """

    rows: torch.Tensor
    positions: torch.Tensor
    gate: torch.Tensor
    flat: torch.Tensor


def token_groups(masks: torch.Tensor) -> TokenGroups:
    """Group the non-zero tokens of masks ``[B, K', N]`` per adapter and row, in token order;
    shorter groups are padded with tokens whose mask is 0 (so they add exactly nothing)."""
    live = masks > 0
    count = max(int(live.sum(-1).max()), 1)
    # a stable sort on "is zero" puts each row's live tokens first, in order
    order = torch.argsort((~live).to(torch.uint8), dim=-1, stable=True)[..., :count]
    gate = torch.where(live.gather(-1, order), masks.gather(-1, order), 0.0)
    rows = torch.arange(masks.shape[0], device=masks.device)[:, None, None].expand_as(order)
    rows, positions, gate = (t.transpose(0, 1).contiguous() for t in (rows, order, gate))
    return TokenGroups(rows, positions, gate, rows * masks.shape[-1] + positions)


def per_adapter_factors(stacked: Stacked) -> tuple[torch.Tensor, torch.Tensor]:
    """Down ``[K, r, in]`` and up ``[K, out, r]`` of each stacked adapter, for batched GEMMs.

    Views of the stacked tensors when every rank is equal (the usual case, no copy); otherwise
    zero-padded to the largest rank (zero rank columns add nothing).
    """
    ranks, k = stacked.ranks, len(stacked.ranks)
    down = stacked.down.reshape(stacked.down.shape[0], -1)
    if len(set(ranks)) == 1:
        return down.view(k, ranks[0], -1), stacked.up.view(-1, k, ranks[0]).transpose(0, 1)
    r = max(ranks)
    downs, ups = (
        down.new_zeros(k, r, down.shape[1]),
        stacked.up.new_zeros(k, stacked.up.shape[0], r),
    )
    start = 0
    for i, rank in enumerate(ranks):
        downs[i, :rank] = down[start : start + rank]
        ups[i, :, :rank] = stacked.up[:, start : start + rank]
        start += rank
    return downs, ups


def gated_tokens(
    tokens: torch.Tensor, down: torch.Tensor, up: torch.Tensor, gate: torch.Tensor
) -> torch.Tensor:
    """Each adapter's delta on its own tokens, ``((x_k A_kᵀ) ⊙ g_k) B_kᵀ`` for all k at once.

    ``tokens`` [K, n, in] (adapter k's tokens), ``down`` [K, r, in], ``up`` [K, out, r],
    ``gate`` [K, n]: two batched GEMMs whatever K is, at a cost proportional to the tokens.
    """
    hidden = torch.bmm(tokens, down.transpose(1, 2)).mul_(gate.unsqueeze(-1))
    return torch.bmm(hidden, up.transpose(1, 2))


def gated_conv(
    x: torch.Tensor, stacked: Stacked, gate: torch.Tensor, geometry: ConvGeometry
) -> torch.Tensor:
    """LoCon: down conv with the base geometry, gate ``[B, R, H, W]``, then the 1×1 up conv
    (as a matmul over channels: torch runs small 1×1 convs on its slow im2col path)."""
    hidden = F.conv2d(x, stacked.down, None, geometry.stride, geometry.padding, geometry.dilation)
    hidden = hidden.mul_(gate).flatten(2)
    return (stacked.up @ hidden).view(hidden.shape[0], -1, *gate.shape[-2:])


def tucker_delta(
    x: torch.Tensor, factors: LowRank, weight: float, geometry: ConvGeometry
) -> torch.Tensor:
    """Ungated Tucker LoCon delta: 1×1 down, mid conv with the base geometry, 1×1 up."""
    hidden = F.conv2d(x, factors.down.to(x))
    hidden = F.conv2d(
        hidden, factors.mid.to(x), None, geometry.stride, geometry.padding, geometry.dilation
    )
    up = factors.up.reshape(*factors.up.shape[:2], 1, 1).to(x)
    return F.conv2d(hidden, up) * (factors.scale * weight)


def dense_delta(
    x: torch.Tensor, delta_w: torch.Tensor, bias: torch.Tensor | None, geometry: ConvGeometry | None
) -> torch.Tensor:
    """``x ΔWᵀ (+ Δb)`` for Linear, or the conv with ΔW for Conv2d targets."""
    if geometry is None:
        return F.linear(x, delta_w, bias)
    return F.conv2d(x, delta_w, bias, geometry.stride, geometry.padding, geometry.dilation)


def heads_split(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, N, h·d] → [B, h, N, d]``."""
    b, n, inner = t.shape
    return t.view(b, n, heads, inner // heads).transpose(1, 2)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention ``softmax(q kᵀ · d^-0.5) v`` → ``[B, N, h·d]`` (torch SDPA)."""
    qh, kh, vh = heads_split(q, heads), heads_split(k, heads), heads_split(v, heads)
    out = F.scaled_dot_product_attention(qh, kh, vh)
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)


def branch_blend(
    base_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    deltas_k: Sequence[torch.Tensor | None],
    deltas_v: Sequence[torch.Tensor | None],
    masks: torch.Tensor,
    heads: int,
) -> torch.Tensor:
    """``O = Σ_k m_k·attn(Q, K+ΔK_k, V+ΔV_k) + (1 − Σ_k m_k)·O_base``.

    ``base_out`` [B, N, inner] is the model's own attention output (whatever implementation
    produced it); ``masks`` [B, N, K] are the spatial gates of the K branches.
    """
    out = base_out * (1.0 - masks.sum(-1, keepdim=True))
    for index, (dk, dv) in enumerate(zip(deltas_k, deltas_v)):
        kk = k if dk is None else k + dk
        vv = v if dv is None else v + dv
        out = out + masks[..., index : index + 1] * attention(q, kk, vv, heads)
    return out


def sparse_branch_blend(
    base_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    deltas_k: torch.Tensor | None,
    deltas_v: torch.Tensor | None,
    masks: torch.Tensor,
    groups: TokenGroups,
    heads: int,
) -> torch.Tensor:
    """``branch_blend`` computing branch k's attention only for the queries its mask touches.

    ``deltas_k``/``deltas_v`` [K', B, T, inner] (zeros for an adapter without one, None for
    none at all), ``masks`` [B, N, K'] and ``groups`` from ``token_groups`` of those masks.
    All K' branches run as one attention call over ``K'·B`` sequences of ``n`` queries.
    """
    kk = k.expand(groups.rows.shape[0], *k.shape) if deltas_k is None else k + deltas_k
    vv = v.expand(groups.rows.shape[0], *v.shape) if deltas_v is None else v + deltas_v
    return sparse_branches(base_out, q, kk, vv, masks, groups, heads)


def sparse_branches(
    base_out: torch.Tensor,
    q: torch.Tensor,
    kk: torch.Tensor,
    vv: torch.Tensor,
    masks: torch.Tensor,
    groups: TokenGroups,
    heads: int,
) -> torch.Tensor:
    """``sparse_branch_blend`` given each branch's keys and values ``[K', B, T, inner]``
    (``K + ΔK_k``, ``V + ΔV_k``) already formed."""
    out = base_out * (1.0 - masks.sum(-1, keepdim=True))
    sel = q[groups.rows, groups.positions]  # [K', B, n, inner]
    branch = attention(sel.flatten(0, 1), kk.flatten(0, 1), vv.flatten(0, 1), heads)
    branch = branch.view(-1, branch.shape[-1]) * groups.gate.view(-1, 1).to(branch.dtype)
    # index_add_ on the flattened rows: far cheaper on CPU than an accumulating index_put_
    out.view(-1, out.shape[-1]).index_add_(0, groups.flat.view(-1), branch)
    return out
