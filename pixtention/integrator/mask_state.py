"""The masks of one generation over its steps: captured maps → EMA → masks, warm-up, freeze.

The session feeds it per-layer attention maps during a step and tells it when a step ends;
it answers with the masks of any image at any grid size. No hooks and no model here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pixtention.integrator import masks as maskmath
from pixtention.integrator.capture import StepMaps, mid_levels
from pixtention.integrator.config import IntegratorError, MaskConfig


class MaskState:
    """Masks ``[images, K, gh, gw]`` on a common grid, built step by step (design §6.4).

    ``positions[k][i]`` are adapter k's concept tokens in image i's prompt. Step ``s`` uses
    the maps of steps ``< s``; before ``warmup_steps`` adapters are off (or global); after
    ``freeze_at × total_steps`` masks stop changing and capture stops.
    """

    def __init__(
        self,
        config: MaskConfig,
        positions: Sequence[Sequence[Sequence[int]]],
        images: int,
        total_steps: int | None = None,
        everywhere: Sequence[bool] = (),
    ) -> None:
        self.config = config
        self.positions = [tuple(tuple(p) for p in per_image) for per_image in positions]
        # adapters serving the whole image: mask 1 where present, outside the competition
        self.everywhere = tuple(everywhere) or (False,) * len(self.positions)
        # [images, K]: 1 where the adapter's phrase is in that image's prompt (known up front)
        self._present = torch.tensor(
            [[float(bool(per_image[i])) for per_image in self.positions] for i in range(images)]
        ).reshape(images, len(self.positions))
        self.images = images
        self.total_steps = total_steps
        self.step = -1
        self.grid: torch.Tensor | None = None  # None: warm-up (no masks yet)
        self.grid_size: tuple[int, int] | None = None
        self.hard = config.mode == "hard"
        self.fixed = False
        self._frozen = False
        self._running: dict[int, torch.Tensor] = {}
        self._step_maps = StepMaps()
        self.levels: set[int] | None = (
            None if config.capture in ("mid", "all") else set(config.capture)
        )
        self.version = 0  # bumped whenever the masks change, so callers can drop caches

    @property
    def count(self) -> int:
        return len(self.positions)

    @property
    def frozen(self) -> bool:
        return self._frozen or self.fixed

    def freeze_step(self) -> int | None:
        if self.total_steps is None:
            return None
        return max(self.config.warmup_steps, math.ceil(self.config.freeze_at * self.total_steps))

    def capturing(self) -> bool:
        """Whether this step's attention can still change the masks."""
        freeze = self.freeze_step()
        return not self.frozen and (freeze is None or self.step < freeze)

    def wants(self, level: int) -> bool:
        return self.levels is None or level in self.levels

    def set_latent(self, height: int, width: int) -> None:
        """The grid maps are kept on: ``grid_level`` of the latent (fixed once masks freeze)."""
        if not self.frozen:
            self.grid_size = maskmath.level_sizes(height, width)[self.config.grid_level]

    def add(self, image: int, level: int, probs: torch.Tensor, size: tuple[int, int]) -> None:
        """One captured row of one layer: probabilities ``[heads, N, T]`` on an ``size`` grid."""
        tokens = probs.shape[-1]
        cols = [
            () if whole else tuple(p for p in per_image[image] if p < tokens)
            for per_image, whole in zip(self.positions, self.everywhere)
        ]
        maps = maskmath.token_map(probs, cols, maskmath.start_columns(tokens)).view(-1, *size)
        self._step_maps.add(image, level, maskmath.resize(maps, self.grid_size).cpu())

    def fold(self, new_step: int) -> None:
        """Close the current step: EMA the captured maps in, recompute masks, maybe freeze."""
        if self._step_maps and not self.frozen:
            if self.levels is None:
                seen = self._step_maps.levels()
                self.levels = seen if self.config.capture == "all" else mid_levels(seen)
            for image in self._step_maps.images():
                mean = self._step_maps.layer_mean(image, self.levels)
                if mean is not None:
                    previous = self._running.get(image)
                    self._running[image] = maskmath.ema(previous, mean, self.config.ema)
        self._step_maps = StepMaps()
        self.step = new_step
        if not self.frozen and new_step >= self.config.warmup_steps and self._running:
            self.grid = self._compute()
            self.version += 1
        freeze = self.freeze_step()
        if freeze is not None and new_step >= freeze and self.grid is not None:
            self._frozen = True

    def freeze_now(self) -> None:
        """Fold what was captured and freeze (the hires pass reuses the first pass's masks)."""
        self.fold(self.step + 1)
        self._frozen = self._frozen or self.grid is not None

    def _compute(self) -> torch.Tensor:
        c = self.config
        shape = next(iter(self._running.values())).shape
        out = torch.zeros(self.images, *shape)
        local = [k for k, whole in enumerate(self.everywhere) if not whole]
        for image, running in self._running.items():
            m = torch.ones_like(running)
            if local:
                m[local] = maskmath.masks_from_maps(
                    running[local],
                    smooth=c.smooth,
                    mode=c.mode,
                    temperature=c.temperature,
                    background=c.background,
                    floor=c.floor,
                )
            for k, per_image in enumerate(self.positions):
                if not per_image[image]:
                    m[k] = 0.0
            out[image] = m
        return out

    def set_masks(self, masks: torch.Tensor, hard: bool | None = None) -> None:
        """Caller-given masks ``[images, K, h, w]`` or ``[K, h, w]``; ``hard`` (default: all
        values 0/1) resizes them by nearest neighbour instead of bilinearly."""
        masks = masks.detach().float().cpu()
        if masks.dim() == 3:
            masks = masks.unsqueeze(0).expand(self.images, -1, -1, -1)
        if masks.dim() != 4 or masks.shape[0] != self.images or masks.shape[1] != self.count:
            raise IntegratorError(
                f"masks must be [images={self.images}, K={self.count}, h, w], got {tuple(masks.shape)}"
            )
        self.hard = bool(((masks == 0) | (masks == 1)).all()) if hard is None else hard
        self.grid = masks.clone()
        self.fixed = True
        self.version += 1

    def current(self) -> torch.Tensor:
        """Masks ``[images, K, h, w]`` on the common grid (zeros before the first)."""
        if self.grid is None:
            h, w = self.grid_size or (1, 1)
            return torch.zeros(self.images, self.count, h, w)
        return self.grid.clone()

    def rows_at(self, images: Sequence[int], size: tuple[int, int]) -> torch.Tensor:
        """Masks of the given rows' images at ``size``, ``[rows, K, h·w]`` (fp32, CPU)."""
        if self.grid is None:
            fill = 1.0 if self.config.warmup == "global" else 0.0
            out = torch.full((len(images), self.count, size[0] * size[1]), fill)
            whole = [k for k, w in enumerate(self.everywhere) if w]
            if whole:  # a style is on from the first step, where its image has it
                out[:, whole] = self._present[list(images)][:, whole, None]
            return out
        resized = maskmath.resize(self.grid, size, hard=self.hard)
        return resized[torch.tensor(list(images))].flatten(2)
