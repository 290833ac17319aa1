"""The picture ``bench quality`` writes: one column per composition; rows: the drawn source,
global, regional, gated (attention masks), and the gated masks over the source (orange: the
striped-circles LoRA, cyan: the purple-squares LoRA)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from bench.toyworld.compose import Case, Run

ROWS = ("source", "global", "regional", "gated", "masks")
MASK_COLOURS = torch.tensor([[1.0, 0.55, 0.0], [0.0, 0.85, 0.9]])  # [K, 3] in [0, 1]
SCALE = 2
LABEL = 64  # pixels of the left column holding the row names


def _masks_over(image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``masks`` ``[K, h, w]`` blended over a greyed ``image`` ``[3, 32, 32]`` (in [0, 1])."""
    up = F.interpolate(masks[None].float(), size=image.shape[-2:], mode="bilinear")[0]
    base = image.mean(0, keepdim=True).expand(3, -1, -1) * 0.6 + 0.2
    alpha = up.sum(0).clamp(0, 1)
    colour = torch.einsum("khw,kc->chw", up, MASK_COLOURS) / up.sum(0).clamp_min(1e-6)
    return base * (1 - 0.8 * alpha) + colour * 0.8 * alpha


def save_grid(
    path: Path, batch: list[Case], runs: dict[str, Run], masks: torch.Tensor, columns: int = 8
) -> Path:
    n = min(columns, len(batch))
    cells = {
        "source": [(c.image + 1) / 2 for c in batch[:n]],
        "global": [(x + 1) / 2 for x in runs["global"].images[:n]],
        "regional": [(x + 1) / 2 for x in runs["regional"].images[:n]],
        "gated": [(x + 1) / 2 for x in runs["gated"].images[:n]],
    }
    cells["masks"] = [_masks_over(cells["source"][b], masks[b]) for b in range(n)]
    rows = [torch.cat(cells[r], 2) for r in ROWS]
    grid = torch.cat(rows, 1).clamp(0, 1)
    pixels = (grid.permute(1, 2, 0) * 255).round().byte().numpy()
    picture = Image.fromarray(pixels).resize(
        (pixels.shape[1] * SCALE, pixels.shape[0] * SCALE), Image.NEAREST
    )
    canvas = Image.new("RGB", (picture.width + LABEL, picture.height), "white")
    canvas.paste(picture, (LABEL, 0))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(ROWS):
        draw.text((4, i * 32 * SCALE + 26), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    return path
