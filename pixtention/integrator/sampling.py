"""A minimal Euler sampler over an eps-prediction UNet, for tests and benchmarks.

Enough of Stable Diffusion's sampling to watch masks form and freeze: the SD1 noise schedule
(scaled-linear betas 0.00085…0.012 over 1000 steps), a CFG denoiser that batches cond and uncond
rows like the WebUI (cond rows first), and Euler's method (Karras et al. 2022, Algorithm 2
without churn) in k-diffusion's shape: ``sample_euler(model, x, sigmas, callback=...)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def sd_alphas_cumprod(
    steps: int = 1000, start: float = 0.00085, end: float = 0.012
) -> torch.Tensor:
    """ᾱ_t of Stable Diffusion's scaled-linear schedule."""
    betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0)


def sigmas_for(steps: int, alphas_cumprod: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` sigmas evenly spaced in timestep, high to low, then a final 0."""
    ac = sd_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
    timesteps = torch.linspace(len(ac) - 1, 0, steps).round().long()
    sigmas = ((1 - ac[timesteps]) / ac[timesteps]) ** 0.5
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def timestep_for(sigma: torch.Tensor, alphas_cumprod: torch.Tensor | None = None) -> torch.Tensor:
    """The discrete timestep whose sigma is nearest (as the WebUI's discrete denoisers do)."""
    ac = sd_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
    all_sigmas = ((1 - ac) / ac) ** 0.5
    return (all_sigmas[None, :] - sigma.double().reshape(-1, 1)).abs().argmin(1)


def cfg_denoiser(
    unet: torch.nn.Module, cond: torch.Tensor, uncond: torch.Tensor, scale: float = 7.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``denoise(x, sigma) -> x0`` with classifier-free guidance; one UNet call per step, rows
    ``[cond × images, uncond × images]``."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x_in = torch.cat([x, x]) / (sigma**2 + 1) ** 0.5
        t = timestep_for(sigma).expand(2 * n).to(x.device)
        eps = unet(x_in, t, torch.cat([cond, uncond]))
        eps_c, eps_u = eps[:n], eps[n:]
        return x - sigma * (eps_u + scale * (eps_c - eps_u))

    return denoise


def sample_euler(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE; ``callback`` gets each step's state."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "denoised": denoised})
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x
