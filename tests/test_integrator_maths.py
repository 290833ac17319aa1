"""Pure mask and gating maths against independent loop references (numpy, per adapter)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pixtention.integrator import masks as mm
from pixtention.integrator.capture import attention_probs, mid_levels
from pixtention.integrator.gating import (
    ConvGeometry,
    attention,
    branch_blend,
    expand_gate,
    gated_conv,
    gated_linear,
    gated_tokens,
    per_adapter_factors,
    sparse_branch_blend,
    stack_lowrank,
    token_groups,
    tucker_delta,
)
from pixtention.library.factors import LowRank


@given(st.integers(1, 200), st.integers(1, 200))
@settings(max_examples=60, deadline=None)
def test_level_sizes_follow_ceil_halving(h: int, w: int) -> None:
    sizes = mm.level_sizes(h, w, 4)
    assert sizes[0] == (h, w)
    for (ph, pw), (ch, cw) in zip(sizes, sizes[1:]):
        assert ch == -(-ph // 2) and cw == -(-pw // 2)
        # a stride-2 conv with padding 1 gives exactly this size (what the UNet does)
        x = torch.zeros(1, 1, ph, pw)
        assert F.conv2d(x, torch.zeros(1, 1, 3, 3), stride=2, padding=1).shape[-2:] == (ch, cw)


def test_level_of_finds_non_square_levels() -> None:
    assert mm.level_of(13 * 10, 50, 38) == (2, (13, 10))
    assert mm.level_of(7, 50, 38) is None


def test_token_map_against_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 6, 154, generator=g), -1)
    positions = [(5, 6), (80,), ()]
    got = mm.token_map(probs, positions, mm.start_columns(154))
    ref = np.zeros((3, 6))
    p = probs.numpy()
    for k, cols in enumerate(positions):
        for n in range(6):
            acc = 0.0
            for h in range(3):
                rest = 1 - p[h, n, 0] - p[h, n, 77]
                acc += np.mean([p[h, n, c] for c in cols]) / rest if cols else 0.0
            ref[k, n] = acc / 3
    assert np.allclose(got.numpy(), ref, atol=1e-6)


def test_attention_probs_match_einsum() -> None:
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 5, 16, generator=g), torch.randn(2, 7, 16, generator=g)
    got = attention_probs(q, k, heads=4)
    qh, kh = q.view(2, 5, 4, 4), k.view(2, 7, 4, 4)
    ref = torch.softmax(torch.einsum("bnhd,bthd->bhnt", qh, kh) * 0.5, -1)
    assert torch.allclose(got, ref, atol=1e-6)


def test_gaussian_smooth_against_numpy() -> None:
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(2, 5, 4, generator=g)
    got = mm.gaussian_smooth(maps).numpy()
    kernel1 = np.exp(-np.array([1.0, 0.0, 1.0]) / 2)
    kernel = np.outer(kernel1, kernel1) / kernel1.sum() ** 2
    padded = np.pad(maps.numpy(), ((0, 0), (1, 1), (1, 1)), mode="edge")
    ref = np.zeros_like(got)
    for k in range(2):
        for i in range(5):
            for j in range(4):
                ref[k, i, j] = (padded[k, i : i + 3, j : j + 3] * kernel).sum()
    assert np.allclose(got, ref, atol=1e-6)
    assert np.isclose(got.sum(), ref.sum())


def test_normalise_soft_and_hard_competition() -> None:
    maps = torch.zeros(2, 4, 4)
    maps[0, :, :2] = torch.linspace(1, 2, 4)[:, None]
    maps[1, :, 2:] = 3.0
    maps[1, 0, 0] = 1.0
    n = mm.normalise(maps)
    assert n.amin((1, 2)).tolist() == [0.0, 0.0] and n.amax((1, 2)).tolist() == [1.0, 1.0]
    assert mm.normalise(torch.ones(1, 3, 3)).abs().sum() == 0  # flat → nothing
    soft = mm.soft_compete(n, 0.1, 0.35)
    ref = np.exp(np.concatenate([n.numpy(), np.full((1, 4, 4), 0.35)]) / 0.1)
    assert np.allclose(soft.numpy(), (ref / ref.sum(0))[:2], atol=1e-6)
    assert (soft.sum(0) < 1).all()
    hard = mm.hard_compete(n)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    assert hard.sum(0).max() <= 1
    assert hard[1, :, 2:].all() and not hard[1, :, :2].any()


def test_otsu_separates_two_modes() -> None:
    g = torch.Generator().manual_seed(3)
    values = torch.cat(
        [torch.rand(500, generator=g) * 0.2, 0.7 + torch.rand(300, generator=g) * 0.3]
    )
    t = mm.otsu_threshold(values)
    assert 0.2 <= t <= 0.7


def test_ema_and_resize() -> None:
    a, b = torch.ones(1, 2, 2), torch.zeros(1, 2, 2)
    assert torch.equal(mm.ema(None, a, 0.5), a)
    assert torch.allclose(mm.ema(a, b, 0.25), torch.full((1, 2, 2), 0.25))
    hard = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    up = mm.resize(hard, (4, 6), hard=True)
    assert set(up.unique().tolist()) == {0.0, 1.0} and up.shape == (1, 4, 6)
    assert mm.resize(hard, (2, 2)) is hard


def test_mid_levels_preset() -> None:
    assert mid_levels([0, 0, 1, 1, 2, 2, 3, 2, 2, 1, 0]) == {1, 2}
    assert mid_levels([1, 1, 2, 2, 2, 1]) == {2}
    assert mid_levels([]) == set()


def _factors(g, rank, fan_in, fan_out, kernel=None):
    shape = (rank, fan_in) if kernel is None else (rank, fan_in, *kernel)
    up_shape = (fan_out, rank) if kernel is None else (fan_out, rank, 1, 1)
    return LowRank(
        torch.randn(shape, generator=g),
        torch.randn(up_shape, generator=g),
        float(torch.rand(1, generator=g)) + 0.1,
    )


@pytest.mark.parametrize("ranks", [(4,), (2, 8, 3)])
def test_stacked_linear_gating_equals_per_adapter_sum(ranks) -> None:
    g = torch.Generator().manual_seed(4)
    factors = [_factors(g, r, 12, 10) for r in ranks]
    weights = [0.5 + i for i in range(len(ranks))]
    x = torch.randn(2, 9, 12, generator=g)
    m = torch.rand(2, 9, len(ranks), generator=g)
    stacked = stack_lowrank(factors, weights)
    got = gated_linear(x, stacked, expand_gate(m, stacked.ranks))
    ref = sum(
        m[..., k : k + 1] * (x @ f.down.T @ f.up.T) * (f.scale * w)
        for k, (f, w) in enumerate(zip(factors, weights))
    )
    assert torch.allclose(got, ref, atol=1e-4)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1)])
def test_stacked_conv_gating_equals_per_adapter_convs(stride, padding) -> None:
    g = torch.Generator().manual_seed(5)
    factors = [_factors(g, r, 6, 5, (3, 3)) for r in (2, 3)]
    x = torch.randn(2, 6, 9, 7, generator=g)
    geometry = ConvGeometry((stride, stride), (padding, padding))
    out_hw = F.conv2d(x, torch.zeros(1, 6, 3, 3), stride=stride, padding=padding).shape[-2:]
    m = torch.rand(2, 2, *out_hw, generator=g)
    stacked = stack_lowrank(factors, [1.0, 2.0])
    gate = expand_gate(m.permute(0, 2, 3, 1), stacked.ranks).permute(0, 3, 1, 2)
    got = gated_conv(x, stacked, gate, geometry)
    ref = 0
    for k, (f, w) in enumerate(zip(factors, (1.0, 2.0))):
        full = F.conv2d(
            x,
            torch.einsum("or,rihw->oihw", f.up.flatten(1), f.down),
            stride=stride,
            padding=padding,
        )
        ref = ref + m[:, k : k + 1] * full * (f.scale * w)
    assert torch.allclose(got, ref, atol=1e-4)


def test_tucker_delta_equals_its_merged_weight() -> None:
    g = torch.Generator().manual_seed(6)
    f = LowRank(
        torch.randn(3, 6, 1, 1, generator=g),
        torch.randn(5, 3, 1, 1, generator=g),
        0.7,
        torch.randn(3, 3, 3, 3, generator=g),
    )
    x = torch.randn(1, 6, 8, 8, generator=g)
    merged = torch.einsum("or,rsij,sc->ocij", f.up.flatten(1), f.mid, f.down.flatten(1)) * 0.7 * 2.0
    ref = F.conv2d(x, merged, stride=2, padding=1)
    assert torch.allclose(tucker_delta(x, f, 2.0, ConvGeometry((2, 2), (1, 1))), ref, atol=1e-4)


def test_branch_blend_formula() -> None:
    g = torch.Generator().manual_seed(7)
    q, k, v = (
        torch.randn(2, 6, 8, generator=g),
        torch.randn(2, 4, 8, generator=g),
        torch.randn(2, 4, 8, generator=g),
    )
    dk = [torch.randn(2, 4, 8, generator=g), None]
    dv = [None, torch.randn(2, 4, 8, generator=g)]
    m = torch.rand(2, 6, 2, generator=g) * 0.5
    base = attention(q, k, v, 2)
    got = branch_blend(base, q, k, v, dk, dv, m, 2)
    ref = (
        (1 - m.sum(-1, keepdim=True)) * base
        + m[..., :1] * attention(q, k + dk[0], v, 2)
        + m[..., 1:] * attention(q, k, v + dv[1], 2)
    )
    assert torch.allclose(got, ref, atol=1e-6)
    qh, kh, vh = q.view(2, 6, 2, 4), k.view(2, 4, 2, 4), v.view(2, 4, 2, 4)
    probs = torch.softmax(torch.einsum("bnhd,bthd->bhnt", qh, kh) / 2.0, -1)
    explicit = torch.einsum("bhnt,bthd->bnhd", probs, vh).reshape(2, 6, 8)
    assert torch.allclose(base, explicit, atol=1e-6)
    assert torch.equal(branch_blend(base, q, k, v, dk, dv, torch.zeros_like(m), 2), base)


def test_token_groups_list_each_adapters_live_tokens_in_order() -> None:
    g = torch.Generator().manual_seed(9)
    m = torch.rand(3, 2, 11, generator=g) * (torch.rand(3, 2, 11, generator=g) > 0.6)
    m[1, 1] = 0.0  # an adapter with nothing in one row
    groups = token_groups(m)
    assert groups.gate.shape == (2, 3, int((m > 0).sum(-1).max()))
    for k in range(2):
        for b in range(3):
            live = [p for p in range(11) if m[b, k, p] > 0]
            n = len(live)
            assert groups.positions[k, b, :n].tolist() == live
            assert torch.equal(groups.gate[k, b, :n], m[b, k, live])
            assert not groups.gate[k, b, n:].any()  # padding adds nothing
            assert (groups.rows[k, b] == b).all()
            assert torch.equal(groups.flat[k, b], b * 11 + groups.positions[k, b])


@pytest.mark.parametrize("ranks", [(4, 4, 4), (3, 5)])
def test_batched_token_deltas_equal_the_dense_gated_delta(ranks) -> None:
    """Per-adapter gathered tokens, two batched GEMMs, scattered back = the dense gated delta
    (zero-padded ranks when they differ, views when they are equal)."""
    g = torch.Generator().manual_seed(8)
    factors = [_factors(g, r, 12, 10) for r in ranks]
    stacked = stack_lowrank(factors, [1.0 + 0.5 * i for i in range(len(ranks))])
    x = torch.randn(2, 20, 12, generator=g)
    m = torch.zeros(2, len(ranks), 20)
    for k in range(len(ranks)):
        m[:, k, 3 * k : 3 * k + 8] = torch.rand(2, 8, generator=g) + 0.1
    dense = gated_linear(x, stacked, expand_gate(m.transpose(1, 2), stacked.ranks))
    down, up = per_adapter_factors(stacked)
    if len(set(ranks)) == 1:
        assert down.data_ptr() == stacked.down.data_ptr()  # a view, not a copy
    groups = token_groups(m)
    tokens = x.reshape(-1, 12)[groups.flat.view(len(ranks), -1)]
    delta = gated_tokens(tokens, down, up, groups.gate.view(len(ranks), -1))
    total = torch.zeros(40, 10).index_add_(0, groups.flat.view(-1), delta.view(-1, 10))
    assert torch.allclose(total.view(2, 20, 10), dense, atol=1e-5)


def test_sparse_branch_blend_equals_the_dense_formula() -> None:
    g = torch.Generator().manual_seed(10)
    q = torch.randn(2, 12, 8, generator=g)
    k, v = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    dk = [torch.randn(2, 5, 8, generator=g), None, torch.randn(2, 5, 8, generator=g)]
    dv = [None, torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)]
    m = torch.zeros(2, 12, 3)
    m[:, 0:4, 0] = 0.5
    m[0, 3:7, 1] = torch.rand(4, generator=g)  # overlaps adapter 0 on token 3; row 1 empty
    m[:, 9:12, 2] = 0.25
    base = attention(q, k, v, 2)
    ref = branch_blend(base, q, k, v, dk, dv, m, 2)
    stack = lambda ds: torch.stack([d if d is not None else torch.zeros_like(k) for d in ds])  # noqa: E731
    got = sparse_branch_blend(
        base, q, k, v, stack(dk), stack(dv), m, token_groups(m.transpose(1, 2)), 2
    )
    assert torch.allclose(got, ref, atol=1e-6)
    only_v = sparse_branch_blend(
        base, q, k, v, None, stack(dv), m, token_groups(m.transpose(1, 2)), 2
    )
    assert torch.allclose(only_v, branch_blend(base, q, k, v, [None] * 3, dv, m, 2), atol=1e-6)


@pytest.mark.parametrize("conv", [False, True])
def test_add_sparse_equals_a_per_adapter_loop(conv: bool) -> None:
    """Token-sparse low-rank deltas scattered into a Linear's [B, N, C] or a 1×1 conv's
    [B, C, H, W] output equal Σ_k m_k · s_k·w_k · up_k(down_k(x)), overlapping masks included."""
    from pixtention.integrator.config import GatedAdapter
    from pixtention.integrator.targets import add_sparse, plan_targets, prepare
    from pixtention.library.factors import MappedAdapter, ModuleDelta

    g = torch.Generator().manual_seed(11)
    module = torch.nn.Conv2d(6, 5, 1) if conv else torch.nn.Linear(6, 5)
    kernel = (1, 1) if conv else ()
    factors = [
        LowRank(
            torch.randn(3, 6, *kernel, generator=g),
            torch.randn(5, 3, *kernel, generator=g),
            0.5 + k,
        )
        for k in range(3)
    ]
    weights = (1.0, 0.5, 2.0)
    adapters = [
        GatedAdapter(f"a{k}", MappedAdapter({"m": ModuleDelta("m", "lora", f)}), weights[k])
        for k, f in enumerate(factors)
    ]
    plans, _ = plan_targets({"m": module}, adapters)
    prep = prepare(plans["m"], weights, torch.device("cpu"), torch.float32)
    m = torch.zeros(2, 3, 12)
    m[:, 0, 0:6] = 0.5
    m[0, 1, 4:9] = torch.rand(5, generator=g) + 0.1  # overlaps adapter 0 on tokens 4, 5
    m[1, 2, 10:] = 0.25
    x = torch.randn(2, 6, 3, 4, generator=g) if conv else torch.randn(2, 12, 6, generator=g)
    with torch.no_grad():
        base = module(x)
        got = add_sparse(base.clone(), x, prep, token_groups(m))
    tokens = x.flatten(2).transpose(1, 2) if conv else x  # [B, N, C_in]
    ref = base.flatten(2).transpose(1, 2).clone() if conv else base.clone()
    for k, f in enumerate(factors):
        down, up = f.down.reshape(3, 6), f.up.reshape(5, 3)
        delta = tokens @ down.T @ up.T * (f.scale * weights[k])
        ref += m[:, k].unsqueeze(-1) * delta
    if conv:
        ref = ref.transpose(1, 2).reshape(base.shape)
    assert torch.allclose(got, ref, atol=1e-5)
