"""Masks from real cross-attention on the tiny ldm UNet: determinism, warm-up and freeze,
cond/uncond rows, and the hires re-attachment (planted attention: test_integrator_planted)."""

from __future__ import annotations

import torch

from pixtention.integrator import (
    GatedAdapter,
    MaskConfig,
    RowLayout,
    attach,
    clip_chunks,
    match_uncond,
    token_positions,
)
from pixtention.integrator.sampling import cfg_denoiser, sample_euler, sigmas_for
from tests.rig.tokenizer import clip_tokenizer
from tests.test_integrator_rig import hook_count, lowrank_adapter

PROMPT = "a photo of a cat and a dog"


def encode(ids: list[int], seed: int = 0) -> torch.Tensor:
    """A stand-in text encoder: a seeded random embedding per token id (width 32)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(49408, 32, generator=g)
    return table[torch.tensor(ids)]


def prompt_context(prompt: str) -> tuple[torch.Tensor, callable]:
    tokenize = clip_chunks(clip_tokenizer())
    chunks = tokenize(prompt)
    return encode([t for chunk in chunks for t in chunk]), tokenize


def run_sampling(unet, adapters, config, cond, uncond, *, steps=6, size=16, seed=0, record=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(cond.shape[0], 4, size, size, generator=g)
    sigmas = sigmas_for(steps)
    x = x * sigmas[0]
    with torch.no_grad(), attach(unet, adapters, config, total_steps=steps) as session:

        def callback(state):
            if record is not None:
                record.append((session.step, session.masks(), state["denoised"]))

        out = sample_euler(cfg_denoiser(unet, cond, uncond, 5.0), x, sigmas, callback)
    return out, session


def _two_concepts(unet):
    ctx, tokenize = prompt_context(PROMPT)
    cat = token_positions(tokenize, PROMPT, "cat")
    dog = token_positions(tokenize, PROMPT, "dog")
    adapters = [
        GatedAdapter("cat-lora", lowrank_adapter(unet, 1), 1.0, (cat,)),
        GatedAdapter("dog-lora", lowrank_adapter(unet, 2), 1.0, (dog,)),
    ]
    uncond = encode(clip_chunks(clip_tokenizer())("")[0])[None]
    return ctx[None], uncond, adapters, cat, dog


def test_masks_are_deterministic_for_a_seed_and_follow_the_schedule(tiny_unet) -> None:
    cond, uncond, adapters, _, _ = _two_concepts(tiny_unet)
    first, second = [], []
    out1, s1 = run_sampling(
        tiny_unet, adapters, MaskConfig(freeze_at=0.5), cond, uncond, record=first
    )
    out2, _ = run_sampling(
        tiny_unet, adapters, MaskConfig(freeze_at=0.5), cond, uncond, record=second
    )
    assert torch.equal(out1, out2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, second))
    # warm-up: step 0 has no masks (adapters off); masks form from step 1 and freeze at step 3
    assert first[0][1].abs().sum() == 0
    assert first[1][1].abs().sum() > 0
    assert not torch.equal(first[1][1], first[2][1])
    assert all(torch.equal(first[3][1], later[1]) for later in first[4:])
    assert s1.frozen and s1.report.gated == ("cat-lora", "dog-lora")


def test_warmup_step_equals_base_model(tiny_unet) -> None:
    cond, uncond, adapters, _, _ = _two_concepts(tiny_unet)
    gated, base = [], []
    run_sampling(tiny_unet, adapters, MaskConfig(), cond, uncond, record=gated)
    g = torch.Generator().manual_seed(0)
    sigmas = sigmas_for(6)
    x = torch.randn(1, 4, 16, 16, generator=g) * sigmas[0]
    with torch.no_grad():
        sample_euler(
            cfg_denoiser(tiny_unet, cond, uncond, 5.0),
            x,
            sigmas,
            lambda s: base.append(s["denoised"]),
        )
    assert torch.equal(gated[0][2], base[0])
    assert not torch.equal(gated[2][2], base[2])


def test_uncond_rows_share_their_images_masks(tiny_unet) -> None:
    mapped = lowrank_adapter(tiny_unet, 3)
    adapter = GatedAdapter("a", mapped, 1.0, ((2,), (3,)))
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, 0, :, :4] = 1
    masks[1, 0, 4:, :] = 1
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 4, 8, 8, generator=g)
    ctx = torch.randn(4, 77, 32, generator=g)
    t = torch.full((4,), 300)
    with torch.no_grad(), attach(tiny_unet, [adapter], MaskConfig()) as session:
        session.set_masks(masks)
        batch = tiny_unet(x, t, ctx)  # rows: cond 0, cond 1, uncond 0, uncond 1
        session.set_row_layout(RowLayout((0,), (False,)))
        alone_u0 = tiny_unet(x[2:3], t[:1], ctx[2:3])
        session.set_row_layout(lambda rows, context: RowLayout((1,) * rows, (False,) * rows))
        alone_u1 = tiny_unet(x[3:4], t[:1], ctx[3:4])
        session.set_row_layout(RowLayout((0,), (False,)))
        u1_with_image0_masks = tiny_unet(x[3:4], t[:1], ctx[3:4])
    assert torch.allclose(batch[2:3], alone_u0, atol=2e-5)
    assert torch.allclose(batch[3:4], alone_u1, atol=2e-5)
    assert not torch.allclose(batch[3:4], u1_with_image0_masks, atol=1e-4)


def test_hires_reattach_keeps_frozen_masks_and_resizes_them(tiny_unet) -> None:
    cond, uncond, adapters, _, _ = _two_concepts(tiny_unet)
    g = torch.Generator().manual_seed(0)
    sigmas = sigmas_for(4)
    with torch.no_grad(), attach(tiny_unet, adapters, MaskConfig(), total_steps=4) as session:
        single = hook_count(tiny_unet)
        sample_euler(
            cfg_denoiser(tiny_unet, cond, uncond),
            torch.randn(1, 4, 16, 16, generator=g) * sigmas[0],
            sigmas,
        )
        formed = session.masks()
        session.reattach()  # the hires pass
        session.reattach()  # twice: still idempotent
        assert hook_count(tiny_unet) <= single and session.frozen
        x = torch.randn(2, 4, 32, 24, generator=g)
        t = torch.full((2,), 400)
        ctx = torch.cat([cond, uncond])
        hires = tiny_unet(x, t, ctx)
        assert torch.equal(session.masks(), formed)
    with torch.no_grad(), attach(tiny_unet, adapters, MaskConfig()) as fresh:
        fresh.set_masks(formed[0], hard=False)
        expected = tiny_unet(x, t, ctx)
    assert formed.abs().sum() > 0
    assert torch.allclose(hires, expected, atol=1e-6)
    assert hook_count(tiny_unet) == 0


def test_attaching_again_detaches_the_previous_session(tiny_unet) -> None:
    adapter = GatedAdapter("a", lowrank_adapter(tiny_unet, 4), 1.0, ((2,),))
    first = attach(tiny_unet, [adapter])
    count = hook_count(tiny_unet)
    second = attach(tiny_unet, [adapter])
    try:
        assert not first.attached and second.attached
        assert hook_count(tiny_unet) == count
    finally:
        second.detach()
        first.detach()
    assert hook_count(tiny_unet) == 0


def test_match_uncond_tells_rows_apart_by_context() -> None:
    g = torch.Generator().manual_seed(5)
    uncond = torch.randn(77, 32, generator=g)
    cond = torch.randn(2, 77, 32, generator=g)
    source = match_uncond(uncond, images=2)
    mixed = source(4, torch.stack([cond[0], cond[1], uncond, uncond]))
    assert mixed == RowLayout((0, 1, 0, 1), (True, True, False, False))
    assert source(2, torch.stack([uncond, uncond])) == RowLayout((0, 1), (False, False))
    assert source(2, cond).capture == (True, True)
    longer = torch.randn(2, 154, 32, generator=g)  # BREAK prompts: other length, so cond
    assert source(2, longer).capture == (True, True)
