"""From cross-attention probabilities to region masks (design §6.4): pure tensor functions.

Shapes: a *map* is ``[K, h, w]`` (one channel per concept) for one image; probabilities are
``[heads, N, T]`` for one row of one layer. Nothing here holds state; the session calls these
in order (token map → resize to grid → layer mean → EMA → smooth → normalise → compete → resize
per layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

CHUNK = 77


def level_sizes(height: int, width: int, levels: int = 8) -> list[tuple[int, int]]:
    """Token grids of each UNet level: each level halves with ceil (A1111/Forge ``repeat_div``)."""
    sizes = [(int(height), int(width))]
    for _ in range(levels - 1):
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes


def level_of(tokens: int, height: int, width: int) -> tuple[int, tuple[int, int]] | None:
    """The level whose grid holds ``tokens`` tokens for a latent of ``height``×``width``."""
    for level, (h, w) in enumerate(level_sizes(height, width)):
        if h * w == tokens:
            return level, (h, w)
    return None


def start_columns(context_tokens: int) -> list[int]:
    """The start (BOS) token of every 77-token chunk of the conditioning."""
    return list(range(0, context_tokens, CHUNK))


def token_map(
    probs: torch.Tensor, positions: Sequence[Sequence[int]], start: Sequence[int]
) -> torch.Tensor:
    """Per-concept maps ``[K, N]`` from one row's probabilities ``[heads, N, T]``.

    The start tokens soak up most of the mass (an attention sink), so each concept's share is
    renormalised over the non-start tokens, averaged over the concept's tokens and the heads.
    A concept without positions gets a zero map.
    """
    probs = probs.float()
    rest = (1.0 - probs[..., list(start)].sum(-1)).clamp_min(1e-6)  # [heads, N]
    out = probs.new_zeros(len(positions), probs.shape[1])
    for k, cols in enumerate(positions):
        if cols:
            out[k] = (probs[..., list(cols)].mean(-1) / rest).mean(0)
    return out


def resize(maps: torch.Tensor, size: tuple[int, int], *, hard: bool = False) -> torch.Tensor:
    """Resize ``[..., h, w]`` maps: bilinear for soft values, nearest for hard masks."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    if hard:
        out = F.interpolate(flat, size=size, mode="nearest")
    else:
        out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size).to(maps.dtype)


def ema(previous: torch.Tensor | None, new: torch.Tensor, decay: float) -> torch.Tensor:
    """Exponential moving average over steps; the first map is taken as it is."""
    if previous is None:
        return new
    return decay * previous + (1.0 - decay) * new


def gaussian_smooth(maps: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """3×3 Gaussian blur of ``[K, h, w]`` maps with replicated borders (removes speckle)."""
    g = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).to(maps)
    x = F.pad(maps.unsqueeze(1), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(x, kernel[None, None]).squeeze(1)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Min–max normalise each concept's map to [0, 1] (a flat map becomes 0)."""
    flat = maps.flatten(1)
    low = flat.min(1).values[:, None, None]
    span = (flat.max(1).values - flat.min(1).values)[:, None, None]
    return torch.where(span > 1e-8, (maps - low) / span.clamp_min(1e-8), torch.zeros_like(maps))


def soft_compete(maps: torch.Tensor, temperature: float, background: float) -> torch.Tensor:
    """Soft masks ``m_i = softmax([a_1..a_K, background] / T)_i`` (background column dropped)."""
    bg = torch.full_like(maps[:1], background)
    return torch.softmax(torch.cat([maps, bg]) / temperature, dim=0)[:-1]


def otsu_threshold(values: torch.Tensor, bins: int = 64) -> float:
    """Otsu's threshold (max between-class variance) of values in [0, 1]."""
    hist = torch.histc(values.float().flatten(), bins=bins, min=0.0, max=1.0)
    total = hist.sum()
    if total == 0:
        return 0.5
    centres = (torch.arange(bins, dtype=torch.float32) + 0.5) / bins
    weight0 = torch.cumsum(hist, 0)
    weight1 = total - weight0
    mass0 = torch.cumsum(hist * centres, 0)
    mean0 = mass0 / weight0.clamp_min(1e-12)
    mean1 = (mass0[-1] - mass0) / weight1.clamp_min(1e-12)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float((torch.argmax(between).item() + 1) / bins)


def hard_compete(maps: torch.Tensor) -> torch.Tensor:
    """Hard masks: each pixel to its argmax concept, if above that concept's Otsu threshold."""
    winner = maps.argmax(0)
    out = torch.zeros_like(maps)
    for k in range(maps.shape[0]):
        keep = (winner == k) & (maps[k] >= otsu_threshold(maps[k]))
        out[k] = keep.to(maps.dtype)
    return out


def apply_floor(masks: torch.Tensor, floor: float) -> torch.Tensor:
    """Zero mask values below ``floor``: the background stays untouched (and, being exactly
    zero there, costs nothing to gate)."""
    return torch.where(masks >= floor, masks, torch.zeros_like(masks))


def masks_from_maps(
    maps: torch.Tensor,
    *,
    smooth: bool,
    mode: str,
    temperature: float,
    background: float,
    floor: float = 0.0,
) -> torch.Tensor:
    """The per-step tail of the recipe: smooth → normalise → compete (→ floor), ``[K, h, w]``."""
    if smooth:
        maps = gaussian_smooth(maps)
    maps = normalise(maps)
    if mode == "hard":
        return hard_compete(maps)
    return apply_floor(soft_compete(maps, temperature, background), floor)
