"""Design §6.6 invariants on the real tiny ldm UNet: zero masks, full masks, disjoint masks (for
spatial and time-embedding adapters; cross-attention K/V ones in test_integrator_kv), and clean
detach."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
import torch
import torch.nn.functional as F
from ldm.modules.diffusionmodules.openaimodel import UNetModel

from pixtention.integrator import GatedAdapter, MaskConfig, attach
from tests.rig.unet import SD15_LAYOUT, rerandomise_zero_parameters
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


def gated_adapter(name, mapped, weight=1.0, positions=POS) -> GatedAdapter:
    return GatedAdapter(name, mapped, weight, positions)


def _run(unet, adapters, masks, inputs, **config):
    x, t, ctx = inputs
    with torch.no_grad(), attach(unet, adapters, MaskConfig(**config)) as session:
        session.set_masks(masks)
        return unet(x, t, ctx)


def test_all_masks_zero_is_bit_identical_to_base(tiny_unet) -> None:
    inputs = unet_inputs()
    adapters = [
        gated_adapter("a", lowrank_adapter(tiny_unet, 1)),
        gated_adapter("b", dense_adapter(tiny_unet, 2, "full")),
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
    gated = _run(tiny_unet, [gated_adapter("a", mapped, 0.8)], torch.ones(1, 8, 8), inputs)
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
    gated = _run(
        tiny_unet, [gated_adapter("a", a), gated_adapter("b", b, 0.5)], torch.ones(2, 8, 8), inputs
    )
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


Region = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (row, column) centres → bool
HALVES: dict[str, Region] = {
    "a": lambda r, c: c < 0.5,
    "b": lambda r, c: (r < 0.5) & (c >= 0.5) & (c < 0.75),
    "c": lambda r, c: (r < 0.5) & (c >= 0.75),
}


def regions(h: int, w: int, spec: Mapping[str, Region] = HALVES) -> dict[str, torch.Tensor]:
    """Boolean [h·w] masks of disjoint test regions on an h×w grid (row-major tokens), each a
    predicate of the cell centre's (row, column) in [0, 1]; "none" is what no region covers."""
    r = ((torch.arange(h) + 0.5) / h)[:, None].expand(h, w)
    c = ((torch.arange(w) + 0.5) / w)[None, :].expand(h, w)
    out = {key: inside(r, c).flatten() for key, inside in spec.items()}
    out["none"] = ~torch.stack(list(out.values())).any(0)
    return out


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
    grid = regions(size, size)
    masks = torch.stack([grid[k].view(size, size).float() for k in adapters])
    modules = dict(tiny_unet.named_modules())
    gated = [gated_adapter(k, mapped) for k, mapped in adapters.items()]
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
                areas = regions(*out.shape[-2:])
            elif out.dim() == 3 and out.shape[1] > 1:
                flat = lambda v: v  # noqa: E731
                side = int(out.shape[1] ** 0.5)
                areas = regions(side, side)
            else:
                continue
            for key, where in areas.items():
                expected = base
                if key != "none":
                    expected = base + lowrank_output(module, inp, adapters[key].targets[name], 1.0)
                assert torch.allclose(flat(out)[:, where], flat(expected)[:, where], atol=1e-5), (
                    name,
                    key,
                )
            checked += 1
    assert checked > 100


def is_emb(name: str) -> bool:
    return ".emb_layers." in name


def test_disjoint_emb_adapters_gate_every_resblock_per_pixel(tiny_unet) -> None:
    """ResBlock time-embedding adapters (``emb_layers``) with hard disjoint masks: in every
    ResBlock the input of ``out_layers`` (where ldm adds ``emb_out`` broadcast over H×W) equals
    ``in_layers(x) + emb_out + Δemb_k`` inside adapter k's region — what adapter k alone, applied
    globally, gives there — and ``in_layers(x) + emb_out`` outside every region; exactly, per
    pixel (``out_layers`` then normalises over the whole map, as with any adapter upstream)."""
    size = 32
    adapters = {
        "a": lowrank_adapter(tiny_unet, 31, include=is_emb),
        "b": lowrank_adapter(tiny_unet, 32, include=is_emb, rank=2),
        "c": dense_adapter(tiny_unet, 33, "full", include=is_emb),
    }
    grid = regions(size, size)
    masks = torch.stack([grid[k].view(size, size).float() for k in adapters])
    modules = dict(tiny_unet.named_modules())
    blocks = [name.removesuffix(".emb_layers.1") for name in adapters["a"].targets]
    seen: dict[str, dict[str, torch.Tensor]] = {block: {} for block in blocks}
    with (
        torch.no_grad(),
        attach(tiny_unet, [gated_adapter(k, m) for k, m in adapters.items()]) as session,
    ):
        session.set_masks(masks)
        handles = []
        for block, got in seen.items():
            handles += [
                modules[f"{block}.in_layers"].register_forward_hook(
                    lambda m, args, out, got=got: got.update(h=out)
                ),
                modules[f"{block}.emb_layers"].register_forward_hook(
                    lambda m, args, out, got=got: got.update(emb=args[0], emb_out=out)
                ),
                modules[f"{block}.out_layers"].register_forward_pre_hook(
                    lambda m, args, got=got: got.update(gated=args[0])
                ),
            ]
        try:
            tiny_unet(*unet_inputs(size=size))
        finally:
            for h in handles:
                h.remove()
        assert not session.warnings
    assert len(seen) == 22
    with torch.no_grad():
        for block, got in seen.items():
            base = got["h"] + got["emb_out"][..., None, None]
            linear = modules[f"{block}.emb_layers.1"]
            for key, where in regions(*base.shape[-2:]).items():
                expected = base
                if key != "none":
                    delta = lowrank_output(
                        linear,
                        F.silu(got["emb"]),
                        adapters[key].targets[f"{block}.emb_layers.1"],
                        1,
                    )
                    assert delta.abs().max() > 1e-3
                    expected = base + delta[..., None, None]
                got_flat, expected_flat = got["gated"].flatten(2), expected.flatten(2)
                assert torch.allclose(got_flat[..., where], expected_flat[..., where], atol=1e-5), (
                    block,
                    key,
                )


def test_non_spatial_embeddings_are_gated_by_each_rows_mean_mask() -> None:
    """The documented approximation, stated exactly: where a time-embedding delta has no
    per-pixel add point — ResBlocks with ``use_scale_shift_norm`` (their ``emb_out`` scales and
    shifts the normalised map) and the UNet's ``time_embed`` MLP — a layer's output is
    ``base + Σ_k mean(m_k)·Δ_k``, the mean over the latent of the masks of *that row's image*
    (uncond rows share their image's); each such ResBlock is named in ``session.warnings``."""
    torch.manual_seed(0)
    unet = UNetModel(
        image_size=8,
        model_channels=32,
        context_dim=32,
        num_head_channels=8,
        use_scale_shift_norm=True,
        **SD15_LAYOUT,
    ).eval()
    rerandomise_zero_parameters(unet, torch.Generator().manual_seed(0))
    include = lambda n: is_emb(n) or n.startswith("time_embed.")  # noqa: E731
    a = lowrank_adapter(unet, 34, include=include)
    b = dense_adapter(unet, 35, "full", include=include)
    masks = torch.zeros(2, 2, 8, 8)
    masks[0, 0, :, :4] = 1  # image 0: a on half the latent, b on a quarter
    masks[0, 1, :4, 4:] = 1
    masks[1, 0, :2, :] = 1  # image 1: a on a quarter, b nowhere
    means = masks.mean((2, 3))[[0, 1, 0, 1]]  # rows: cond 0, cond 1, uncond 0, uncond 1
    x, t, ctx = unet_inputs(batch=4)
    adapters = [
        gated_adapter("a", a, positions=POS * 2),
        gated_adapter("b", b, 0.5, positions=POS * 2),
    ]
    modules = dict(unet.named_modules())
    with torch.no_grad(), attach(unet, adapters) as session:
        session.set_masks(masks)
        seen, handles = _record_layers(unet, list(a.targets))
        try:
            unet(x, t, ctx)
        finally:
            for h in handles:
                h.remove()
        emb_warnings = [w for w in session.warnings if "mean mask" in w]
    assert len(emb_warnings) == sum(is_emb(name) for name in a.targets) == 22
    with torch.no_grad():
        for name, (inp, out) in seen.items():
            module = modules[name]
            expected = module(inp)
            for k, (mapped, weight) in enumerate(((a, 1.0), (b, 0.5))):
                delta = lowrank_output(module, inp, mapped.targets[name], weight)
                expected = expected + means[:, k : k + 1] * delta
            assert torch.allclose(out, expected, atol=1e-5), name
            assert not torch.allclose(out, module(inp), atol=1e-3), name


def test_detach_removes_every_hook_also_on_exception(tiny_unet) -> None:
    inputs = unet_inputs()
    before = hook_count(tiny_unet)
    with torch.no_grad():
        base = tiny_unet(*inputs)
    adapter = gated_adapter("a", lowrank_adapter(tiny_unet, 10))
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
    adapter = gated_adapter("a", lowrank_adapter(tiny_unet, 11))
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
        gated_adapter("a", lowrank_adapter(tiny_unet, 12)),
        gated_adapter("b", lowrank_adapter(tiny_unet, 13)),
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
        gated_adapter("a", lowrank_adapter(tiny_unet, 14)),
        gated_adapter("b", lowrank_adapter(tiny_unet, 15)),
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
