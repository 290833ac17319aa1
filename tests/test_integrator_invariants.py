"""Design §6.6 invariants on the real tiny ldm UNet: zero masks, full masks, disjoint masks,
the cross-attention branch formula, and clean detach."""

from __future__ import annotations

import pytest
import torch

from pixtention.integrator import GatedAdapter, MaskConfig, attach
from tests.test_integrator_rig import (
    GlobalReference,
    dense_adapter,
    hook_count,
    lowrank_adapter,
    lowrank_output,
    merged_copy,
    unet_inputs,
)

POS = ((2, 3),)


def _gated(name, mapped, weight=1.0, positions=POS):
    return GatedAdapter(name, mapped, weight, positions)


def _run(unet, adapters, masks, inputs, **config):
    x, t, ctx = inputs
    with torch.no_grad(), attach(unet, adapters, MaskConfig(**config)) as session:
        session.set_masks(masks)
        return unet(x, t, ctx)


def test_all_masks_zero_is_bit_identical_to_base(tiny_unet) -> None:
    inputs = unet_inputs()
    adapters = [
        _gated("a", lowrank_adapter(tiny_unet, 1)),
        _gated("b", dense_adapter(tiny_unet, 2, "full")),
    ]
    with torch.no_grad():
        base = tiny_unet(*inputs)
    out = _run(tiny_unet, adapters, torch.zeros(2, 8, 8), inputs)
    assert torch.equal(out, base)
    assert hook_count(tiny_unet) == 0


KINDS = ["lora", "tucker", "loha", "lokr", "ia3", "full", "dora"]


def _adapter_of_kind(unet, kind: str, seed: int):
    if kind == "lora":
        return lowrank_adapter(unet, seed)
    if kind == "tucker":
        return lowrank_adapter(unet, seed, tucker=True)
    return dense_adapter(unet, seed, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_full_mask_equals_unmerged_global_and_merged(tiny_unet, kind: str) -> None:
    inputs = unet_inputs()
    mapped = _adapter_of_kind(tiny_unet, kind, 3)
    with torch.no_grad():
        base = tiny_unet(*inputs)
        with GlobalReference(tiny_unet, [(mapped, 0.8)]):
            reference = tiny_unet(*inputs)
        merged = merged_copy(tiny_unet, [(mapped, 0.8)])(*inputs)
    gated = _run(tiny_unet, [_gated("a", mapped, 0.8)], torch.ones(1, 8, 8), inputs)
    assert (reference - base).abs().max() > 1e-3  # the adapter does something
    assert (gated - reference).abs().max() <= 1e-5
    assert torch.allclose(gated, merged, atol=1e-4)


def test_full_masks_of_two_adapters_add_like_global(tiny_unet) -> None:
    """Stacked rank space and dense stacks add up like two global LoRAs on every linear path
    (attention K/V branches excluded: two branches do not add inside a softmax, by design)."""
    inputs = unet_inputs()
    not_kv = lambda n: not (n.endswith("attn2.to_k") or n.endswith("attn2.to_v"))  # noqa: E731
    a, b = (
        lowrank_adapter(tiny_unet, 4, include=not_kv),
        dense_adapter(tiny_unet, 5, "loha", include=not_kv),
    )
    with torch.no_grad(), GlobalReference(tiny_unet, [(a, 1.0), (b, 0.5)]):
        reference = tiny_unet(*inputs)
    gated = _run(tiny_unet, [_gated("a", a), _gated("b", b, 0.5)], torch.ones(2, 8, 8), inputs)
    assert (gated - reference).abs().max() <= 1e-5


def _record_layers(unet, names):
    """Forward hooks (registered after the session's) keeping each layer's input and output."""
    seen, handles = {}, []
    modules = dict(unet.named_modules())
    for name in names:

        def hook(mod, args, output, name=name):
            seen[name] = (args[0].detach().clone(), output.detach().clone())

        handles.append(modules[name].register_forward_hook(hook))
    return seen, handles


def _regions(h: int, w: int) -> dict[str, torch.Tensor]:
    """Boolean [h·w] masks of the four test regions on an h×w grid (row-major tokens)."""
    r = ((torch.arange(h) + 0.5) / h)[:, None].expand(h, w)
    c = ((torch.arange(w) + 0.5) / w)[None, :].expand(h, w)
    return {
        "a": (c < 0.5).flatten(),
        "b": ((r < 0.5) & (c >= 0.5) & (c < 0.75)).flatten(),
        "c": ((r < 0.5) & (c >= 0.75)).flatten(),
        "none": ((r >= 0.5) & (c >= 0.5)).flatten(),
    }


def test_disjoint_hard_masks_give_each_region_its_own_adapter(tiny_unet) -> None:
    """Inside each region, every spatially local layer's output equals base + that adapter
    (token-sparse low-rank path, Tucker and dense paths alike), and base where no mask is."""
    size = 32
    x, t, ctx = unet_inputs(size=size)

    def spatial(name: str) -> bool:
        return not any(p in name for p in ("attn2.to_k", "attn2.to_v", "emb_layers", "time_embed"))

    adapters = {
        "a": lowrank_adapter(tiny_unet, 6, include=spatial),
        "b": lowrank_adapter(tiny_unet, 8, include=spatial, tucker=True),
        "c": dense_adapter(tiny_unet, 7, "lokr", include=spatial),
    }
    grid = _regions(size, size)
    masks = torch.stack([grid[k].view(size, size).float() for k in adapters])
    modules = dict(tiny_unet.named_modules())
    gated = [_gated(k, mapped) for k, mapped in adapters.items()]
    with torch.no_grad(), attach(tiny_unet, gated, MaskConfig()) as session:
        session.set_masks(masks)
        seen, handles = _record_layers(tiny_unet, list(adapters["a"].targets))
        try:
            tiny_unet(x, t, ctx)
        finally:
            for h in handles:
                h.remove()
        checked = 0
        for name, (inp, out) in seen.items():
            module = modules[name]
            saved = module._forward_hooks.copy()  # the layer's base output on the same input
            module._forward_hooks.clear()
            try:
                base = module(inp)
            finally:
                module._forward_hooks.update(saved)
            if out.dim() == 4:
                flat = lambda v: v.flatten(2).transpose(1, 2)  # noqa: E731  [B, HW, C]
                regions = _regions(*out.shape[-2:])
            elif out.dim() == 3 and out.shape[1] > 1:
                flat = lambda v: v  # noqa: E731
                side = int(out.shape[1] ** 0.5)
                regions = _regions(side, side)
            else:
                continue
            for key, where in regions.items():
                expected = base
                if key != "none":
                    expected = base + lowrank_output(module, inp, adapters[key].targets[name], 1.0)
                assert torch.allclose(flat(out)[:, where], flat(expected)[:, where], atol=1e-5), (
                    name,
                    key,
                )
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("path", ["dense", "token-sparse", "token-sparse-lowrank"])
def test_cross_attention_follows_the_branch_formula(tiny_unet, monkeypatch, path: str) -> None:
    """O = Σ m_k·attn(Q, K+ΔK_k, V+ΔV_k) + (1 − Σ m_k)·attn(Q, K, V), checked on soft masks:
    everywhere (every query in every branch) and in small overlapping patches (each branch's
    attention computed on its own queries only); with a dense second adapter, and with two
    low-rank ones (their K/V formed inside one batched GEMM)."""
    import pixtention.integrator.call_masks as call_masks_module
    import pixtention.integrator.session as session_module

    calls = []
    real = session_module.sparse_branches
    monkeypatch.setattr(session_module, "sparse_branches", lambda *a: calls.append(1) or real(*a))
    kv = lambda n: n.endswith("attn2.to_k") or n.endswith("attn2.to_v")  # noqa: E731
    a = lowrank_adapter(tiny_unet, 8, include=kv, std=0.5)
    if path == "token-sparse-lowrank":
        b = lowrank_adapter(tiny_unet, 9, include=kv, std=0.3)
    else:
        b = dense_adapter(tiny_unet, 9, "full", include=kv, std=0.3)
    x, t, ctx = unet_inputs(size=8)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 8), torch.linspace(0, 1, 8), indexing="ij")
    masks = torch.stack([0.6 * xx, 0.4 * yy])
    if path.startswith("token-sparse"):
        monkeypatch.setattr(call_masks_module, "SPARSE_MIN_TOKENS", 0)
        masks = torch.stack([0.6 * xx * (xx < 0.3), 0.4 * yy * (yy > 0.75) * (xx < 0.5)])
    layer = "input_blocks.4.1.transformer_blocks.0.attn2"
    modules = dict(tiny_unet.named_modules())
    attn = modules[layer]
    with (
        torch.no_grad(),
        attach(tiny_unet, [_gated("a", a), _gated("b", b, 0.7)], MaskConfig()) as session,
    ):
        session.set_masks(masks, hard=False)
        seen, handles = _record_layers(tiny_unet, [layer])
        got = {}
        handles.append(
            attn.register_forward_hook(
                lambda m, args, kwargs, out: got.update(
                    x=args[0], ctx=kwargs.get("context"), out=out
                ),
                with_kwargs=True,
            )
        )
        try:
            tiny_unet(x, t, ctx)
        finally:
            for h in handles:
                h.remove()
    with torch.no_grad():
        xin, context, out = got["x"], got["ctx"], got["out"]
        q = xin @ attn.to_q.weight.T
        k = context @ attn.to_k.weight.T
        v = context @ attn.to_v.weight.T
        heads = attn.heads

        def attend(kk, vv):
            b_, n, inner = q.shape
            d = inner // heads
            qh = q.view(b_, n, heads, d).permute(0, 2, 1, 3)
            kh = kk.view(b_, -1, heads, d).permute(0, 2, 1, 3)
            vh = vv.view(b_, -1, heads, d).permute(0, 2, 1, 3)
            p = torch.softmax(torch.einsum("bhnd,bhtd->bhnt", qh, kh) / d**0.5, -1)
            return torch.einsum("bhnt,bhtd->bhnd", p, vh).permute(0, 2, 1, 3).reshape(b_, n, inner)

        m_level = (
            torch.nn.functional.interpolate(
                masks[None], size=(4, 4), mode="bilinear", align_corners=False
            )[0]
            .flatten(1)
            .T
        )  # [N, K]
        branches = []
        for mapped, weight in ((a, 1.0), (b, 0.7)):
            dk = lowrank_output(attn.to_k, context, mapped.targets[f"{layer}.to_k"], weight)
            dv = lowrank_output(attn.to_v, context, mapped.targets[f"{layer}.to_v"], weight)
            branches.append(attend(k + dk, v + dv))
        blended = (1 - m_level.sum(-1, keepdim=True)) * attend(k, v)
        for i, branch in enumerate(branches):
            blended = blended + m_level[:, i : i + 1] * branch
        expected = attn.to_out(blended)
    assert (expected - out).abs().max() <= 1e-5
    assert (attn.to_out(attend(k, v)) - out).abs().max() > 1e-3  # the branches changed it
    assert bool(calls) == path.startswith("token-sparse")


def test_detach_removes_every_hook_also_on_exception(tiny_unet) -> None:
    inputs = unet_inputs()
    before = hook_count(tiny_unet)
    with torch.no_grad():
        base = tiny_unet(*inputs)
    adapter = _gated("a", lowrank_adapter(tiny_unet, 10))
    session = attach(tiny_unet, [adapter], MaskConfig(warmup="global"))
    with pytest.raises(RuntimeError, match="boom"), torch.no_grad(), session:
        assert hook_count(tiny_unet) > before
        assert not torch.equal(tiny_unet(*inputs), base)
        raise RuntimeError("boom")
    assert not session.attached
    assert hook_count(tiny_unet) == before
    with torch.no_grad():
        assert torch.equal(tiny_unet(*inputs), base)


def test_a_failing_forward_inside_the_session_still_detaches(tiny_unet) -> None:
    x, t, ctx = unet_inputs()
    adapter = _gated("a", lowrank_adapter(tiny_unet, 11))
    with (
        pytest.raises(RuntimeError),
        torch.no_grad(),
        attach(tiny_unet, [adapter], MaskConfig(warmup="global")),
    ):
        tiny_unet(x, t, ctx[:, :, :5])  # wrong context width: the UNet itself raises
    assert hook_count(tiny_unet) == 0


def test_token_sparse_path_is_taken_and_matches_the_dense_path(tiny_unet, monkeypatch) -> None:
    import pixtention.integrator.call_masks as call_masks_module
    import pixtention.integrator.session as session_module

    calls = []
    real = session_module.add_sparse
    monkeypatch.setattr(session_module, "add_sparse", lambda *a: calls.append(1) or real(*a))
    inputs = unet_inputs(size=16)
    adapters = [
        _gated("a", lowrank_adapter(tiny_unet, 12)),
        _gated("b", lowrank_adapter(tiny_unet, 13)),
    ]
    masks = torch.zeros(2, 16, 16)
    masks[0, :8, :8] = 0.7
    masks[1, 8:, 4:12] = torch.rand(8, 8) + 0.1
    sparse = _run(tiny_unet, adapters, masks, inputs)
    assert len(calls) > 20
    monkeypatch.setattr(call_masks_module, "SPARSE_FRACTION", 0.0)  # force the dense path
    calls.clear()
    dense = _run(tiny_unet, adapters, masks, inputs)
    assert not calls
    assert torch.allclose(sparse, dense, atol=1e-5)


def test_branch_keys_are_reused_only_while_the_context_repeats(tiny_unet, monkeypatch) -> None:
    """K+ΔK / V+ΔV of the branches are kept across steps of one prompt, and made again as soon
    as the context changes: outputs equal a fresh session's for every context."""
    import pixtention.integrator.branch_inputs as branch_module
    import pixtention.integrator.call_masks as call_masks_module

    monkeypatch.setattr(call_masks_module, "SPARSE_MIN_TOKENS", 0)
    made = []
    real = branch_module.branch_inputs
    monkeypatch.setattr(branch_module, "branch_inputs", lambda *a: made.append(1) or real(*a))
    adapters = [
        _gated("a", lowrank_adapter(tiny_unet, 14)),
        _gated("b", lowrank_adapter(tiny_unet, 15)),
    ]
    masks = torch.zeros(2, 16, 16)
    masks[0, :, :5] = 0.8
    masks[1, :, 10:] = 0.6
    x, t, ctx = unet_inputs(size=16)
    other = ctx + 0.5 * torch.randn(ctx.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), attach(tiny_unet, adapters, MaskConfig()) as session:
        session.set_masks(masks)
        first = tiny_unet(x, t, ctx)
        per_call = len(made)
        assert per_call > 0
        again = tiny_unet(x, t + 1, ctx)  # next step, same prompt: nothing made again
        assert len(made) == per_call
        changed = tiny_unet(x, t + 1, other)  # a new context: made again
        assert len(made) == 2 * per_call
    fresh_first = _run(tiny_unet, adapters, masks, (x, t, ctx))
    fresh_again = _run(tiny_unet, adapters, masks, (x, t + 1, ctx))
    fresh_changed = _run(tiny_unet, adapters, masks, (x, t + 1, other))
    assert torch.equal(first, fresh_first)
    assert torch.equal(again, fresh_again)
    assert torch.equal(changed, fresh_changed)
    assert not torch.allclose(changed, again)
