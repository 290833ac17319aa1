"""Sampling runs on the tiny UNet (Euler, CFG) — leakage — and the mask pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pixtention.integrator import GatedAdapter, MaskConfig, attach, masks_png, render_masks
from pixtention.integrator.sampling import (
    cfg_denoiser,
    sample_euler,
    sd_alphas_cumprod,
    sigmas_for,
    timestep_for,
)
from tests.test_integrator_rig import lowrank_adapter

SIZE = 16


def test_schedule_matches_stable_diffusion() -> None:
    ac = sd_alphas_cumprod()
    assert ac.shape == (1000,)
    assert abs(float(ac[0]) - (1 - 0.00085)) < 1e-9
    sigmas = sigmas_for(10)
    assert sigmas[-1] == 0 and torch.all(sigmas[:-1][1:] < sigmas[:-1][:-1])
    assert 14.0 < float(sigmas[0]) < 15.0  # SD1's sigma_max ≈ 14.61
    assert timestep_for(sigmas[:1]).item() == 999


def test_euler_solves_a_known_ode() -> None:
    """With an ideal denoiser for a point mass at c, every Euler step lands x on the line to c."""
    c = torch.full((1, 4, 2, 2), 0.3)
    x = torch.randn(1, 4, 2, 2) * 10
    out = sample_euler(lambda x, sigma: c, x, sigmas_for(5))
    assert torch.allclose(out, c, atol=1e-5)


def _denoised_per_step(unet, adapters, masks, cond, uncond, x0, sigmas):
    out = []
    with torch.no_grad():
        if adapters is None:
            sample_euler(
                cfg_denoiser(unet, cond, uncond), x0, sigmas, lambda s: out.append(s["denoised"])
            )
            return out
        with attach(unet, adapters, MaskConfig()) as session:
            session.set_masks(masks)
            sample_euler(
                cfg_denoiser(unet, cond, uncond), x0, sigmas, lambda s: out.append(s["denoised"])
            )
    return out


@pytest.mark.slow
def test_leakage_outside_all_masks(tiny_unet) -> None:
    """Outside every mask, the gated run moves the denoiser output much less than global use.

    Measured on the *random* tiny UNet: ≈ 40 % there. The 5 % target of the issue is about
    trained weights and is not reached on this model; the cause is the model, not the gating
    (per-layer outputs outside the masks are exactly the base ones — test_integrator_invariants;
    the single-pass test below pins the channel). The bound guards against regressions and
    against masks being ignored (which gives 100 %).
    """
    not_time = lambda n: not n.startswith("time_embed")  # noqa: E731  (global by nature)
    adapters = [
        GatedAdapter("a", lowrank_adapter(tiny_unet, 1, include=not_time), 1.0, ((2,),)),
        GatedAdapter("b", lowrank_adapter(tiny_unet, 2, include=not_time), 1.0, ((3,),)),
    ]
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(1, 77, 32, generator=g), torch.randn(1, 77, 32, generator=g)
    sigmas = sigmas_for(6)
    x0 = torch.randn(1, 4, SIZE, SIZE, generator=g) * sigmas[0]
    masks = torch.zeros(2, SIZE, SIZE)
    masks[0, :, : SIZE // 4] = 1
    masks[1, :, SIZE // 4 : SIZE // 2] = 1
    base = _denoised_per_step(tiny_unet, None, None, cond, uncond, x0, sigmas)
    everywhere = _denoised_per_step(
        tiny_unet, adapters, torch.ones(2, SIZE, SIZE), cond, uncond, x0, sigmas
    )
    gated = _denoised_per_step(tiny_unet, adapters, masks, cond, uncond, x0, sigmas)
    outside = (..., slice(SIZE // 2, None))
    inside_a = (..., slice(0, SIZE // 8))
    for b, e, gt in zip(base[1:], everywhere[1:], gated[1:]):
        leak = float((gt - b)[outside].norm() / (e - b)[outside].norm())
        assert leak < 0.6, f"leakage {leak:.2f}"
        assert float((gt - b)[inside_a].norm() / (e - b)[inside_a].norm()) > leak


class _PerPixelNorm(torch.nn.Module):
    """GroupNorm's affine map with statistics taken per pixel (over channels) instead."""

    def __init__(self, norm: torch.nn.GroupNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
        y = (x - mean) / torch.sqrt(var + self.norm.eps)
        return y * self.norm.weight[None, :, None, None] + self.norm.bias[None, :, None, None]


def _single_pass_leak(unet, size: int) -> float:
    not_time = lambda n: not n.startswith("time_embed")  # noqa: E731
    adapters = [
        GatedAdapter("a", lowrank_adapter(unet, 1, include=not_time, std=0.01), 1.0, ((2,),)),
        GatedAdapter("b", lowrank_adapter(unet, 2, include=not_time, std=0.01), 1.0, ((3,),)),
    ]
    g = torch.Generator().manual_seed(0)
    context = torch.randn(1, 77, 32, generator=g)
    x, t = torch.randn(1, 4, size, size, generator=g) * 3, torch.tensor([500])
    masks = torch.zeros(2, size, size)
    masks[0, :, : size // 8] = 1
    masks[1, :, size // 8 : size // 4] = 1
    out = []
    with torch.no_grad():
        out.append(unet(x, t, context=context))
        for m in (torch.ones(2, size, size), masks):
            with attach(unet, adapters, MaskConfig()) as session:
                session.set_masks(m)
                out.append(unet(x, t, context=context))
    base, everywhere, gated = out
    far = (..., slice(size // 2, None))
    return float((gated - base)[far].norm() / (everywhere - base)[far].norm())


def test_single_pass_leakage_is_carried_by_normalisation_statistics() -> None:
    """Where the leakage of the random model comes from, as a check that can fail.

    One UNet pass, adapters in the left quarter, measured on the right half: with the model's
    GroupNorms (statistics over the whole picture) the delta inside the masks moves every pixel;
    with the same affine maps but per-pixel statistics the far half moves by under 5 % of what
    global application moves it. So the gating itself does not leak; a single pass cannot stop
    the shift that image-wide normalisation statistics carry (removing it would need the base
    activations, i.e. a second pass).
    """
    from tests.rig.unet import tiny_unet

    unet = tiny_unet()
    with_groupnorm = _single_pass_leak(unet, SIZE)
    for module in list(unet.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.GroupNorm):
                setattr(module, name, _PerPixelNorm(child))
    per_pixel = _single_pass_leak(unet, SIZE)
    assert per_pixel < 0.05, f"single-pass leakage without image-wide statistics {per_pixel:.3f}"
    assert with_groupnorm > 3 * per_pixel


def test_render_masks_colours_regions_and_draws_a_legend() -> None:
    masks = torch.zeros(2, 8, 8)
    masks[0, :, :4] = 1
    masks[1, :, 4:] = 1
    picture = render_masks(masks, ["cat-lora", "dog-lora"], size=(64, 64))
    assert picture.size == (64, 64 + 16 * 2 + 4)
    arr = np.asarray(picture).astype(int)
    left, right = arr[32, 8], arr[32, 56]
    assert left[0] > left[2] and right[2] > right[0]  # red-ish vs blue-ish regions
    legend = arr[64:]
    assert (legend < 100).any()  # the legend has dark text/swatches
    png = masks_png(
        masks.numpy(), ["cat-lora", "dog-lora"], image=Image.new("RGB", (32, 48), (10, 200, 10))
    )
    reopened = Image.open(io.BytesIO(png))
    assert reopened.format == "PNG" and reopened.size == (32, 48 + 36)
    with pytest.raises(ValueError, match="K=3"):
        render_masks(masks, ["a", "b", "c"])
