"""Planted cross-attention on the real tiny ldm UNet: masks form where each image's cond rows
attend each concept — per row, per image, along either axis — and the gated layers follow them."""

from __future__ import annotations

import torch

from pixtention.integrator import GatedAdapter, MaskConfig, attach, clip_chunks, token_positions
from pixtention.integrator.capture import find_cross_attention
from pixtention.integrator.sampling import cfg_denoiser, sample_euler, sigmas_for
from tests.rig.tokenizer import clip_tokenizer
from tests.test_integrator_capture import encode
from tests.test_integrator_invariants import Region
from tests.test_integrator_rig import lowrank_adapter, lowrank_output

TOP: Region = lambda r, c: r < 0.5  # noqa: E731
BOTTOM: Region = lambda r, c: r >= 0.5  # noqa: E731
LEFT: Region = lambda r, c: c < 0.5  # noqa: E731
RIGHT: Region = lambda r, c: c >= 0.5  # noqa: E731


def plant(unet, plan: dict[int, tuple[tuple[Region, int], ...]], strength: float = 40.0):
    """to_q hooks making the pixels of batch row b in each region of ``plan[b]`` attend that
    region's token (at every attn2 layer, on its own square grid)."""
    handles = []
    for attn in find_cross_attention(unet.named_modules()).values():
        store = {}

        def planted_q(mod, args, out, store=store, attn=attn):
            k = attn.to_k(store["context"])
            side = int(round(out.shape[1] ** 0.5))
            centre = (torch.arange(side) + 0.5) / side
            rr = centre[:, None].expand(side, side).flatten()
            cc = centre[None, :].expand(side, side).flatten()
            heads = attn.heads
            d = out.shape[-1] // heads
            q = torch.empty_like(out)
            for b in range(out.shape[0]):
                for inside, token in plan[b]:
                    kh = k[b, token].view(heads, d)
                    qh = strength * kh / (kh.norm(dim=-1, keepdim=True) ** 2) * d**0.5
                    q[b, inside(rr, cc)] = qh.reshape(-1)
            return q

        def keep_context(mod, args, kwargs, store=store):
            store["context"] = kwargs.get("context", args[1] if len(args) > 1 else None)

        handles.append(attn.register_forward_pre_hook(keep_context, with_kwargs=True))
        handles.append(attn.to_q.register_forward_hook(planted_q))
    return handles


def quadrant_means(mask: torch.Tensor) -> torch.Tensor:
    """Mean of an [h, w] mask over its [[top-left, top-right], [bottom-left, bottom-right]]."""
    h, w = mask.shape
    return mask.view(2, h // 2, 2, w // 2).mean((1, 3))


def test_planted_attention_per_row_per_image_on_both_axes(tiny_unet) -> None:
    """Two images with different prompts (the concepts at other token positions); image 0's cond
    row attends "cat" on the top half and "dog" on the bottom, image 1's cond row "cat" on the
    right and "dog" on the left; each uncond row attends the same columns along the other axis.
    Each image's masks follow its own cond row only (not its uncond row, not the other image),
    and at the last step a gated 1×1 conv on the mask grid gives, on every row,
    ``base + Σ_k m_k·Δ_k`` with the masks of that row's image."""
    prompts = ("a photo of a cat and a dog", "a dog sleeping next to a cat")
    tokenize = clip_chunks(clip_tokenizer())
    ids = [[t for chunk in tokenize(p) for t in chunk] for p in prompts]
    cond = torch.stack([encode(i) for i in ids])
    uncond = torch.stack([encode(i, seed=1) for i in ids])  # other keys, same positions
    cat = tuple(token_positions(tokenize, p, "cat") for p in prompts)
    dog = tuple(token_positions(tokenize, p, "dog") for p in prompts)
    assert cat[0] != cat[1] and dog[0] != dog[1]
    adapters = [
        GatedAdapter("cat-lora", lowrank_adapter(tiny_unet, 1), 1.0, cat),
        GatedAdapter("dog-lora", lowrank_adapter(tiny_unet, 2), 1.0, dog),
    ]
    plan = {  # rows: cond 0, cond 1, uncond 0, uncond 1
        0: ((TOP, cat[0][0]), (BOTTOM, dog[0][0])),
        1: ((RIGHT, cat[1][0]), (LEFT, dog[1][0])),
        2: ((LEFT, cat[0][0]), (RIGHT, dog[0][0])),  # uncond rows: along the other axis
        3: ((TOP, cat[1][0]), (BOTTOM, dog[1][0])),
    }
    layer = "input_blocks.4.1.proj_in"  # a 1×1 conv at 8×8: the mask grid of a 16×16 latent
    module = dict(tiny_unet.named_modules())[layer]
    seen = {}
    steps, sigmas = 6, sigmas_for(6)
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    handles = plant(tiny_unet, plan)
    try:
        with torch.no_grad(), attach(tiny_unet, adapters, MaskConfig(), total_steps=steps) as s:
            hook = module.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
            handles.append(hook)
            sample_euler(cfg_denoiser(tiny_unet, cond, uncond, 5.0), x, sigmas)
    finally:
        for h in handles:
            h.remove()
    masks = s.masks()
    assert s.frozen and masks.shape == (2, 2, 8, 8)
    expected = torch.tensor(
        [
            [[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]],  # image 0: cat top, dog bottom
            [[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]],  # image 1: cat right, dog left
        ]
    )
    for image in range(2):
        for k in range(2):
            got = quadrant_means(masks[image, k])
            assert (got - expected[image, k]).abs().max() < 0.2, (image, k, got)
    with torch.no_grad():
        base = module(seen["x"])
        deltas = [lowrank_output(module, seen["x"], a.mapped.targets[layer], 1.0) for a in adapters]
    own, swapped = (
        base + sum(masks[rows, k : k + 1] * d for k, d in enumerate(deltas))
        for rows in ([0, 1, 0, 1], [1, 0, 1, 0])
    )
    assert torch.allclose(seen["y"], own, atol=1e-5)
    assert not torch.allclose(seen["y"], swapped, atol=1e-3)
