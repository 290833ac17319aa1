"""Adapter weights as plain data: what every adapter type becomes, per target module.

This is the seam between the library layer (which reads files) and the integrator (which
applies deltas). A module delta is either a low-rank product (cheap to gate in rank space) or
a dense weight delta materialised once per generation (LoHa, LoKr, IA3, full, DoRA).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

KINDS = ("lora", "locon", "loha", "lokr", "ia3", "full", "dora", "peft")


@dataclass(frozen=True)
class LowRank:
    """``ΔW = scale · up @ [mid ∘] down`` for a Linear or Conv2d target.

    Linear: ``down`` (r, in), ``up`` (out, r).
    Conv2d: ``down`` (r, in, kh, kw) using the base conv's stride/padding and ``up``
    (out, r, 1, 1); with a Tucker ``mid`` (r, r, kh, kw), ``down`` is (r, in, 1, 1) and ``mid``
    carries the base conv's kernel, stride and padding.
    ``scale`` = alpha / rank (1 when alpha is missing), not yet multiplied by the user weight.
    """

    down: torch.Tensor
    up: torch.Tensor
    scale: float
    mid: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])


@dataclass(frozen=True)
class Dense:
    """A delta that does not factor cheaply; ``delta(orig_weight)`` returns the full ΔW.

    The function takes the base module's weight because IA3 and DoRA deltas depend on it; the
    returned tensor has the base weight's shape and already includes the adapter's own scale.
    ``bias`` is an optional additive bias delta (full diffs carry one).
    """

    delta: Callable[[torch.Tensor], torch.Tensor]
    bias: torch.Tensor | None = None
    rank: int | None = None


@dataclass(frozen=True)
class ModuleDelta:
    """One target module's delta, under the key stem it had in the file."""

    key: str
    kind: str
    factors: LowRank | Dense

    @property
    def is_dense(self) -> bool:
        return isinstance(self.factors, Dense)


@dataclass(frozen=True)
class AdapterWeights:
    """Every delta one adapter file holds, split by the network it targets.

    ``unet`` and ``text_encoder`` are keyed by the key stem as written in the file (e.g.
    ``lora_unet_down_blocks_0_attentions_0_proj_in``); ``unrecognised`` lists tensor names that
    matched no known adapter layout, so nothing is dropped silently.
    """

    kind: str
    rank: int | None
    unet: Mapping[str, ModuleDelta]
    text_encoder: Mapping[str, ModuleDelta] = field(default_factory=dict)
    unrecognised: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappedAdapter:
    """An adapter's UNet deltas keyed by the live model's module names (``named_modules()``)."""

    targets: Mapping[str, ModuleDelta]
    unmatched: tuple[str, ...] = ()
    text_encoder: tuple[str, ...] = ()
