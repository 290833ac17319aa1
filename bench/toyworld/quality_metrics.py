"""Region-aware readings of composed samples: concepts inside an object, leakage outside it,
mask IoU, and whether both objects still have the colours the prompt asked for.

All images are ``[3, 32, 32]`` in [-1, 1]; masks are ``[32, 32]`` bool (true object pixels).
The readers are checked on drawn scenes by ``tests/test_quality_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bench.toyworld.evaluate import FOREGROUND, MIN_PIXELS
from bench.toyworld.scenes import BACKGROUND, PALETTE

NAMES = list(PALETTE)
_PALETTE = np.array([PALETTE[n] for n in NAMES], np.float32)
MARGIN = 2  # pixels (one latent pixel) around an object that count as neither in nor out


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Square dilation of a ``[..., H, W]`` bool mask by ``pixels``."""
    if pixels <= 0:
        return mask.bool()
    m = mask.float().reshape(-1, 1, *mask.shape[-2:])
    out = F.max_pool2d(m, 2 * pixels + 1, stride=1, padding=pixels)
    return out.reshape(mask.shape) > 0


def _rgb(image: torch.Tensor) -> np.ndarray:
    return ((image.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()


def _labels(rgb: np.ndarray) -> np.ndarray:
    """Nearest palette colour per pixel, -1 where the pixel is near the background colour."""
    far = np.linalg.norm(rgb - np.array(BACKGROUND, np.float32), axis=-1) > FOREGROUND
    nearest = np.linalg.norm(rgb[:, :, None] - _PALETTE, axis=-1).argmin(-1)
    return np.where(far, nearest, -1)


def object_colour(image: torch.Tensor, mask: torch.Tensor) -> str | None:
    """The majority palette colour of the foreground pixels at ``mask`` (widened by the
    margin), or None when too few pixels stand out from the background. Shapes are not read:
    the base gets them right in 0.29 of single-object samples (NOTES), so a shape check would
    score the base, not the method."""
    labels = _labels(_rgb(image))
    votes = labels[dilate(mask, MARGIN).numpy() & (labels >= 0)]
    if votes.size < MIN_PIXELS:
        return None
    return NAMES[int(np.bincount(votes).argmax())]


def stripe_in(image: torch.Tensor, region: torch.Tensor) -> float:
    """Horizontal stripes in ``region``: mean colour change two rows apart minus two columns
    apart (``evaluate.stripe_score`` on a given region instead of the foreground), / 255."""
    rgb, r = _rgb(image), region.numpy()
    down = np.linalg.norm(rgb[2:] - rgb[:-2], axis=-1)[r[2:] & r[:-2]]
    across = np.linalg.norm(rgb[:, 2:] - rgb[:, :-2], axis=-1)[r[:, 2:] & r[:, :-2]]
    if down.size < MIN_PIXELS or across.size < MIN_PIXELS:
        return 0.0
    return float(down.mean() - across.mean()) / 255


def purple_in(image: torch.Tensor, region: torch.Tensor) -> float:
    """Share of ``region``'s pixels that read as purple."""
    labels = _labels(_rgb(image))[region.numpy()]
    return float((labels == NAMES.index("purple")).mean()) if labels.size else 0.0


CONCEPT_SCORES = {"striped": stripe_in, "purple": purple_in}


def concept_score(concept: str, image: torch.Tensor, mask: torch.Tensor) -> float:
    """The concept's reading on its object (the object's pixels widened by the margin, so
    light stripe rows at the edge count)."""
    return CONCEPT_SCORES[concept](image, dilate(mask, MARGIN))


def change(
    run: Sequence[torch.Tensor], plain: Sequence[torch.Tensor], region: torch.Tensor
) -> float:
    """How far a run's per-step x0 predictions moved from the plain run's inside ``region``
    (``[B, 32, 32]``), summed over the steps: mean absolute difference per region pixel."""
    weight = region.float()[:, None]  # [B, 1, H, W]
    area = (weight.sum() * 3).clamp_min(1.0)
    return float(sum(((a - b).abs() * weight).sum() / area for a, b in zip(run, plain)))


def mask_iou(masks: torch.Tensor, truth: torch.Tensor) -> float:
    """IoU of a soft mask ``[h, w]`` (bilinear to the truth's size, > 0.5) vs a true mask."""
    up = F.interpolate(masks[None, None].float(), size=truth.shape, mode="bilinear")[0, 0]
    a, b = up > 0.5, truth.bool()
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else float("nan")
