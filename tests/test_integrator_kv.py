"""Cross-attention ``to_k``/``to_v`` adapters on the real tiny ldm UNet, at every attn2 layer:
the branch formula on soft masks (all queries, and only the queries inside the masks) and the
disjoint-regions invariant (each region gets its own adapter's attention, exactly)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import pixtention.integrator.call_masks as call_masks_module
import pixtention.integrator.session as session_module
from pixtention.integrator import MaskConfig, attach
from tests.test_integrator_invariants import Region, gated_adapter, regions
from tests.test_integrator_rig import (
    GlobalReference,
    dense_adapter,
    lowrank_adapter,
    lowrank_output,
    unet_inputs,
)

ATTN2_LAYERS = 16  # SD1.5 layout: 6 down, 1 middle, 9 up


def is_kv(name: str) -> bool:
    return name.endswith("attn2.to_k") or name.endswith("attn2.to_v")


def count_paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the session's calls of the all-queries and the queries-in-mask branch paths."""
    taken = {"branch_blend": 0, "sparse_branches": 0}
    for name in taken:
        real = getattr(session_module, name)

        def counted(*args, real=real, name=name):
            taken[name] += 1
            return real(*args)

        monkeypatch.setattr(session_module, name, counted)
    return taken


def run_recording_attn2(unet, adapters, masks, inputs):
    """One UNet call under ``masks``; every attn2's input, context and output (recorded by
    hooks registered after the session's, so the outputs are the blended ones)."""
    seen, handles = {}, []
    with torch.no_grad(), attach(unet, adapters, MaskConfig()) as session:
        session.set_masks(masks)
        for name, module in unet.named_modules():
            if name.endswith("attn2"):

                def hook(mod, args, kwargs, out, name=name):
                    seen[name] = (args[0], kwargs.get("context"), out)

                handles.append(module.register_forward_hook(hook, with_kwargs=True))
        try:
            unet(*inputs)
        finally:
            for handle in handles:
                handle.remove()
    assert len(seen) == ATTN2_LAYERS
    return seen


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Plain multi-head ``softmax(q kᵀ/√d) v`` (einsum; not PixTention's attention)."""
    b, n, inner = q.shape
    d = inner // heads
    qh, kh, vh = (t.view(b, -1, heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    p = torch.softmax(torch.einsum("bhnd,bhtd->bhnt", qh, kh) / d**0.5, -1)
    return torch.einsum("bhnt,bhtd->bhnd", p, vh).permute(0, 2, 1, 3).reshape(b, n, inner)


@pytest.mark.parametrize("path", ["dense", "token-sparse", "token-sparse-lowrank"])
def test_every_cross_attention_layer_follows_the_branch_formula(
    tiny_unet, monkeypatch, path: str
) -> None:
    """O = to_out(Σ m_k·attn(Q, K+ΔK_k, V+ΔV_k) + (1 − Σ m_k)·attn(Q, K, V)) at all 16 attn2
    layers, each with the masks resized to its own grid: soft masks everywhere (every query in
    every branch), and small overlapping patches (each branch's attention on its own queries
    only, where that pays; all queries elsewhere); a dense second adapter, or two low-rank ones
    (their K/V formed in one batched GEMM)."""
    taken = count_paths(monkeypatch)
    a = lowrank_adapter(tiny_unet, 8, include=is_kv, std=0.5)
    if path == "token-sparse-lowrank":
        b = lowrank_adapter(tiny_unet, 9, include=is_kv, std=0.3)
    else:
        b = dense_adapter(tiny_unet, 9, "full", include=is_kv, std=0.3)
    size = 16
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    masks = torch.stack([0.6 * xx, 0.4 * yy])
    if path.startswith("token-sparse"):
        monkeypatch.setattr(call_masks_module, "SPARSE_MIN_TOKENS", 0)
        masks = torch.stack([0.6 * xx * (xx < 0.3), 0.4 * yy * (yy > 0.75) * (xx < 0.5)])
    inputs = unet_inputs(size=size)
    seen = run_recording_attn2(
        tiny_unet, [gated_adapter("a", a), gated_adapter("b", b, 0.7)], masks, inputs
    )
    modules = dict(tiny_unet.named_modules())
    moved = 0
    with torch.no_grad():
        for layer, (x, context, out) in seen.items():
            attn = modules[layer]
            q = x @ attn.to_q.weight.T
            k, v = context @ attn.to_k.weight.T, context @ attn.to_v.weight.T
            side = int(q.shape[1] ** 0.5)
            m = F.interpolate(masks[None], (side, side), mode="bilinear", align_corners=False)
            m = m[0].flatten(1).T  # [N, K]
            blended = (1 - m.sum(-1, keepdim=True)) * attend(q, k, v, attn.heads)
            for i, (mapped, weight) in enumerate(((a, 1.0), (b, 0.7))):
                dk = lowrank_output(attn.to_k, context, mapped.targets[f"{layer}.to_k"], weight)
                dv = lowrank_output(attn.to_v, context, mapped.targets[f"{layer}.to_v"], weight)
                blended = blended + m[:, i : i + 1] * attend(q, k + dk, v + dv, attn.heads)
            assert (attn.to_out(blended) - out).abs().max() <= 1e-5, layer
            moved += bool((attn.to_out(attend(q, k, v, attn.heads)) - out).abs().max() > 1e-3)
    assert moved == ATTN2_LAYERS  # the branches changed every layer's output
    sparse = path.startswith("token-sparse")
    assert taken == {"branch_blend": 0 if sparse else 16, "sparse_branches": 16 if sparse else 0}


KV_REGIONS: dict[str, Region] = {  # each ≤ a quarter of the tokens: the sparse path pays
    "a": lambda r, c: c < 0.25,
    "b": lambda r, c: (r < 0.5) & (c >= 0.5),
    "c": lambda r, c: (r >= 0.5) & (c >= 0.75),
}


@pytest.mark.parametrize("path", ["dense", "token-sparse"])
def test_disjoint_kv_adapters_give_each_region_its_own_attention(
    tiny_unet, monkeypatch, path: str
) -> None:
    """With hard disjoint masks, at every attn2 layer the output inside each adapter's region
    equals that layer run with only that adapter applied globally (K+ΔK_k, V+ΔV_k for every
    query), and the base layer's output outside all regions — on the all-queries and on the
    queries-in-mask path, for low-rank adapters of different ranks and a dense one."""
    taken = count_paths(monkeypatch)
    if path == "dense":
        monkeypatch.setattr(call_masks_module, "SPARSE_FRACTION", 0.0)
    adapters = {
        "a": lowrank_adapter(tiny_unet, 21, include=is_kv, std=0.5),
        "b": lowrank_adapter(tiny_unet, 22, include=is_kv, std=0.5, rank=2),
        "c": dense_adapter(tiny_unet, 23, "full", include=is_kv, std=0.3),
    }
    size = 32
    grid = regions(size, size, KV_REGIONS)
    masks = torch.stack([grid[k].view(size, size).float() for k in adapters])
    seen = run_recording_attn2(
        tiny_unet, [gated_adapter(k, m) for k, m in adapters.items()], masks, unet_inputs(size=size)
    )
    assert taken["sparse_branches" if path == "token-sparse" else "branch_blend"] == ATTN2_LAYERS
    modules = dict(tiny_unet.named_modules())
    with torch.no_grad():
        for layer, (x, context, out) in seen.items():
            attn = modules[layer]
            side = int(x.shape[1] ** 0.5)
            for key, where in regions(side, side, KV_REGIONS).items():
                if key == "none":
                    expected = attn(x, context=context)
                else:
                    with GlobalReference(tiny_unet, [(adapters[key], 1.0)]):
                        expected = attn(x, context=context)
                    assert (expected - attn(x, context=context))[:, where].abs().max() > 1e-3
                assert torch.allclose(out[:, where], expected[:, where], atol=1e-5), (layer, key)
