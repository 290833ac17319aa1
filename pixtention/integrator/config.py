"""What a caller hands the integrator: mask settings, gated adapters and the row layout.

These are the seam dataclasses between the integrator and its callers (WebUI glue, Python API,
benchmarks); all are frozen and validated at construction so a bad setting fails at once, with
a one-line reason, rather than deep inside a UNet call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pixtention.library.factors import MappedAdapter

CAPTURE_PRESETS = ("mid", "all")
MODES = ("soft", "hard")
WARMUPS = ("off", "global")


class IntegratorError(ValueError):
    """An input the integrator refuses; ``str()`` is the one line shown to the user."""


@dataclass(frozen=True)
class MaskConfig:
    """How attention maps become masks (design §6.4) and how many adapters may be gated.

    ``capture``: ``"mid"`` (the attention levels strictly between the finest and the coarsest
    one that has cross-attention; SD1.5: 32×32 and 16×16 at a 64×64 latent, SDXL: 32×32),
    ``"all"``, or a tuple of levels (0 = latent size, each level halves with ceil).
    ``grid_level``: the level of the common grid maps are averaged and masks kept on.
    ``ema``: weight of the past in the running map (0 = only the newest step).
    ``temperature``/``background``: soft competition ``softmax([a_1..a_K, background] / T)``;
    soft mask values below ``floor`` become 0 (the background is left untouched).
    ``warmup``: what adapters do before the first maps exist (``"off"`` or ``"global"``);
    ``warmup_steps`` ≥ 1 steps use it. ``freeze_at``: fraction of the steps after which masks
    stop changing (capture stops too). ``max_adapters``: the cap on gated adapters.
    """

    capture: str | tuple[int, ...] = "mid"
    grid_level: int = 1
    ema: float = 0.5
    smooth: bool = True
    mode: str = "soft"
    temperature: float = 0.1
    background: float = 0.35
    floor: float = 0.05
    warmup: str = "off"
    warmup_steps: int = 1
    freeze_at: float = 0.4
    max_adapters: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.capture, str):
            if self.capture not in CAPTURE_PRESETS:
                raise IntegratorError(
                    f"capture must be one of {CAPTURE_PRESETS} or a tuple of levels, not {self.capture!r}"
                )
        elif not self.capture or any(int(level) < 0 for level in self.capture):
            raise IntegratorError(
                f"capture levels must be non-negative integers, got {self.capture!r}"
            )
        checks = (
            (self.grid_level >= 0, f"grid_level must be ≥ 0, got {self.grid_level}"),
            (0.0 <= self.ema < 1.0, f"ema must be in [0, 1), got {self.ema}"),
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (0.0 <= self.background <= 1.0, f"background must be in [0, 1], got {self.background}"),
            (0.0 <= self.floor < 1.0, f"floor must be in [0, 1), got {self.floor}"),
            (self.warmup in WARMUPS, f"warmup must be one of {WARMUPS}, got {self.warmup!r}"),
            (self.warmup_steps >= 1, f"warmup_steps must be ≥ 1, got {self.warmup_steps}"),
            (0.0 < self.freeze_at <= 1.0, f"freeze_at must be in (0, 1], got {self.freeze_at}"),
            (self.max_adapters >= 1, f"max_adapters must be ≥ 1, got {self.max_adapters}"),
        )
        for ok, message in checks:
            if not ok:
                raise IntegratorError(message)


@dataclass(frozen=True)
class GatedAdapter:
    """One picked adapter: its mapped deltas, user weight, and concept tokens per image.

    ``positions[i]`` are the context indices (77·chunk + index) of the adapter's phrase in
    image ``i``'s prompt; every adapter of a session has one entry per image of the batch.
    ``everywhere``: the adapter serves the whole image (a style): its mask is 1 on every image
    whose positions are not empty, and it takes no part in the competition between masks.
    """

    name: str
    mapped: MappedAdapter
    weight: float = 1.0
    positions: tuple[tuple[int, ...], ...] = ((),)
    everywhere: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise IntegratorError("a gated adapter needs a name")
        if not self.positions:
            raise IntegratorError(f"{self.name}: positions needs one entry per image")
        if self.weight != self.weight:
            raise IntegratorError(f"{self.name}: weight is NaN")


@dataclass(frozen=True)
class RowLayout:
    """Which image each row of one UNet call belongs to, and whether its attention is captured.

    Cond rows are captured; uncond rows (and, with AND, the sub-prompt rows whose positions were
    not computed) share their image's masks but are not captured.
    """

    image: tuple[int, ...]
    capture: tuple[bool, ...]

    def __post_init__(self) -> None:
        if len(self.image) != len(self.capture):
            raise IntegratorError(
                f"row layout: {len(self.image)} image indices but {len(self.capture)} capture flags"
            )
        if any(i < 0 for i in self.image):
            raise IntegratorError(f"row layout: negative image index in {self.image}")

    @classmethod
    def cond_then_uncond(cls, rows: int, images: int) -> RowLayout:
        """The default: the first ``images`` rows are cond, the rest repeat images (uncond)."""
        if images < 1 or rows % images:
            raise IntegratorError(
                f"cannot lay out {rows} rows over {images} images; call set_row_layout()"
            )
        return cls(tuple(r % images for r in range(rows)), tuple(r < images for r in range(rows)))


def match_uncond(
    uncond: torch.Tensor, images: int
) -> Callable[[int, torch.Tensor | None], RowLayout]:
    """A layout source that tells rows apart by their context: rows equal to ``uncond``
    (``[T, D]``, the negative prompt's conditioning) are uncond, the others cond; within each
    kind, rows follow the images in order. For callers whose cond and uncond rows may come in
    separate UNet calls (A1111 does so when their lengths differ)."""

    def layout(rows: int, context: torch.Tensor | None) -> RowLayout:
        if context is None:
            return RowLayout.cond_then_uncond(rows, images)
        flags = []
        for row in context:
            same = row.shape == uncond.shape and bool(torch.equal(row, uncond.to(row)))
            flags.append(not same)
        seen = {True: 0, False: 0}
        image = []
        for flag in flags:
            image.append(seen[flag] % images)
            seen[flag] += 1
        return RowLayout(tuple(image), tuple(flags))

    return layout
