"""Mask pictures for the UI and the API: one colour per adapter, a legend with the names."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (145, 30, 180),
    (245, 130, 48),
    (70, 240, 240),
    (240, 50, 230),
    (128, 128, 0),
    (0, 128, 128),
)
LEGEND_ROW = 16


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def render_masks(
    masks: torch.Tensor | np.ndarray,
    names: Sequence[str],
    *,
    image: Image.Image | None = None,
    size: tuple[int, int] = (512, 512),
    opacity: float = 0.6,
) -> Image.Image:
    """Overlay ``masks`` ``[K, h, w]`` (values in [0, 1]) on ``image`` (or grey), legend below.

    ``size`` is (width, height) of the picture part; with ``image`` its size is used instead.
    """
    m = torch.as_tensor(
        np.asarray(masks, dtype=np.float32) if isinstance(masks, np.ndarray) else masks
    ).float()
    if m.dim() != 3 or m.shape[0] != len(names):
        raise ValueError(f"masks must be [K={len(names)}, h, w], got {tuple(m.shape)}")
    width, height = image.size if image is not None else size
    up = torch.nn.functional.interpolate(
        m[None].clamp(0, 1), size=(height, width), mode="bilinear", align_corners=False
    )[0]
    base = (
        np.asarray(image.convert("RGB"), dtype=np.float32)
        if image is not None
        else np.full((height, width, 3), 96.0, dtype=np.float32)
    )
    colours = torch.tensor([colour(k) for k in range(len(names))], dtype=torch.float32)  # [K, 3]
    alpha = (up.sum(0).clamp(max=1.0) * opacity).numpy()[..., None]
    weights = up / up.sum(0, keepdim=True).clamp_min(1e-6)
    tint = torch.einsum("khw,kc->hwc", weights, colours).numpy()
    picture = (base * (1 - alpha) + tint * alpha).clip(0, 255).astype(np.uint8)
    canvas = Image.new("RGB", (width, height + LEGEND_ROW * len(names) + 4), (255, 255, 255))
    canvas.paste(Image.fromarray(picture), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, name in enumerate(names):
        top = height + 2 + LEGEND_ROW * k
        draw.rectangle((4, top + 2, 16, top + 14), fill=colour(k))
        draw.text((22, top + 2), name, fill=(0, 0, 0))
    return canvas


def masks_png(masks: torch.Tensor | np.ndarray, names: Sequence[str], **kwargs) -> bytes:
    """``render_masks`` as PNG bytes (for the REST API and infotext attachments)."""
    buffer = io.BytesIO()
    render_masks(masks, names, **kwargs).save(buffer, format="PNG")
    return buffer.getvalue()
