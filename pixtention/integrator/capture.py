"""Cross-attention capture (design §6.3): locate attn2 layers, recompute their probabilities.

SDPA and xformers never materialise attention probabilities, so the session stashes the
outputs of ``attn2.to_q`` and ``attn2.to_k`` (forward hooks) and, for the cond rows of the
chosen layers only, recomputes ``softmax(q kᵀ · d^-0.5)`` per head here. This works whatever
attention implementation the model's ``forward`` uses. ``StepMaps`` sums one step's per-layer
maps per image and level, so the session can average layers and pick levels afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from pixtention.integrator.config import IntegratorError


def find_cross_attention(
    named_modules: Iterable[tuple[str, torch.nn.Module]],
) -> dict[str, torch.nn.Module]:
    """Cross-attention modules by path (suffix ``attn2`` with ``to_q``/``to_k`` children).

    Located by module path and children, never by class name: the WebUIs swap classes.
    """
    found = {}
    for name, module in named_modules:
        if name.split(".")[-1] == "attn2" and hasattr(module, "to_q") and hasattr(module, "to_k"):
            found[name] = module
    return found


def head_count(attn: torch.nn.Module, path: str) -> int:
    """The attention's head count (``heads`` on ldm, sgm, Forge and diffusers modules)."""
    heads = getattr(attn, "heads", None)
    if not isinstance(heads, int) or heads < 1:
        raise IntegratorError(f"{path}: cross-attention module has no usable 'heads' attribute")
    return heads


def attention_probs(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """``softmax(q kᵀ · d^-0.5)`` per head: q [R, N, h·d], k [R, T, h·d] → [R, h, N, T] (fp32)."""
    rows, n, inner = q.shape
    d = inner // heads
    qh = q.float().view(rows, n, heads, d).transpose(1, 2)
    kh = k.float().view(rows, k.shape[1], heads, d).transpose(1, 2)
    return torch.softmax((qh @ kh.transpose(-1, -2)) * d**-0.5, dim=-1)


def mid_levels(levels: Iterable[int]) -> set[int]:
    """The "mid" preset: levels strictly between the finest and coarsest, else the coarsest.

    SD1.5 (attention at levels 0–3) → {1, 2}: 32×32 and 16×16 at a 64×64 latent;
    SDXL (levels 1–2) → {2}: 32×32 at a 128×128 latent.
    """
    seen = sorted(set(levels))
    if not seen:
        return set()
    inner = {lv for lv in seen if seen[0] < lv < seen[-1]}
    return inner or {seen[-1]}


class StepMaps:
    """One step's captured maps: per image and level, a running sum ``[K, h, w]`` and a count."""

    def __init__(self) -> None:
        self._sums: dict[tuple[int, int], torch.Tensor] = {}
        self._counts: dict[tuple[int, int], int] = {}

    def add(self, image: int, level: int, maps: torch.Tensor) -> None:
        key = (image, level)
        self._sums[key] = self._sums[key] + maps if key in self._sums else maps.clone()
        self._counts[key] = self._counts.get(key, 0) + 1

    def levels(self) -> set[int]:
        return {level for _, level in self._sums}

    def layer_mean(self, image: int, levels: set[int]) -> torch.Tensor | None:
        """Mean over the captured layers of ``levels`` for one image (None if none)."""
        keys = [key for key in self._sums if key[0] == image and key[1] in levels]
        if not keys:
            return None
        total = sum(self._sums[key] for key in keys)
        return total / sum(self._counts[key] for key in keys)

    def images(self) -> set[int]:
        return {image for image, _ in self._sums}

    def __bool__(self) -> bool:
        return bool(self._sums)
