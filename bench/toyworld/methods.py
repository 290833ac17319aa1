"""The ways of applying the composition's LoRAs that ``bench quality`` compares.

Each method is a context manager that yields a ``Denoiser`` for ``compose.img2img`` (and, for
gated sessions, the per-step hook and the final masks):

- ``plain``: the base UNet.
- ``global``: every LoRA on every pixel, unmerged (``y + (α/r)·up(down(x))`` per target): what
  the WebUI's built-in ``<lora:…>`` does.
- ``regional``: K+1 passes per step — the base and one pass per LoRA (applied globally) — and
  the outputs blended by fixed rectangles around each object (what a user draws in Regional
  Prompter / latent couple), the base pass outside them.
- ``gated``: PixTention's one-pass session, masks from cross-attention (``MaskConfig``).
- ``gated-truth``: the same session with the objects' true masks handed over (upper bound).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.toyworld.compose import CONCEPTS, Case, Denoiser, positions, schedule
from bench.toyworld.lora import load_kohya
from bench.toyworld.model import FIXTURES, ToyModel
from pixtention.integrator import GatedAdapter, MaskConfig, attach
from pixtention.library.keymap import map_to_model
from pixtention.library.weights import load_weights

FILES = {"striped": "toy_striped_circles", "purple": "toy_purple_squares"}
METHODS = ("plain", "global", "regional", "gated", "gated-truth")
LATENT = 16


def lora_path(concept: str) -> Path:
    return FIXTURES / f"{FILES[concept]}.safetensors"


@dataclass
class Applied:
    """A method ready to sample: its denoiser, a per-step callback, and (gated) its session."""

    denoise: Denoiser
    on_step: Callable[[int], None] | None = None
    masks: torch.Tensor | None = None  # gated: final masks [B, K, h, w] on the common grid
    warnings: list[str] = field(default_factory=list)


def truth_masks(batch: Sequence[Case], concepts: Sequence[int]) -> torch.Tensor:
    """The objects' true masks as latent-pixel coverage ``[B, K, 16, 16]`` (area fractions)."""
    masks = torch.stack([c.masks[list(concepts)] for c in batch]).float()
    return F.adaptive_avg_pool2d(masks, LATENT)


def boxes(batch: Sequence[Case], concepts: Sequence[int], margin: int = 1) -> torch.Tensor:
    """Fixed regions a user would draw: each object's bounding box plus ``margin`` pixels,
    as latent coverage ``[B, K, 16, 16]``; where boxes overlap they share the pixel."""
    out = torch.zeros(len(batch), len(concepts), 32, 32)
    for b, case in enumerate(batch):
        for j, k in enumerate(concepts):
            ys, xs = torch.nonzero(case.masks[k], as_tuple=True)
            y0, y1 = max(0, int(ys.min()) - margin), min(32, int(ys.max()) + 1 + margin)
            x0, x1 = max(0, int(xs.min()) - margin), min(32, int(xs.max()) + 1 + margin)
            out[b, j, y0:y1, x0:x1] = 1.0
    out = out / out.sum(1, keepdim=True).clamp_min(1.0)
    return F.adaptive_avg_pool2d(out, LATENT)


def probes(reference: torch.nn.Module, concepts: Sequence[int]) -> dict[str, Denoiser]:
    """The references leakage is measured against at every step of a run, from that run's
    own x_t: the plain UNet and the LoRAs applied globally, on ``reference`` (a copy of the
    UNet that no session hooks)."""
    loras = [load_kohya(lora_path(CONCEPTS[k]), reference) for k in concepts]

    def plain(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return reference(x, t, context=context)

    def globally(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        with contextlib.ExitStack() as stack:
            for lora, targets in loras:
                stack.enter_context(lora.applied(targets))
            return reference(x, t, context=context)

    return {"plain": plain, "global": globally}


@contextlib.contextmanager
def applied(
    method: str,
    model: ToyModel,
    batch: Sequence[Case],
    concepts: Sequence[int] = (0, 1),
    config: MaskConfig | None = None,
    steps: int = len(schedule()),
) -> Iterator[Applied]:
    """``method`` with the LoRAs of ``concepts`` (indices into ``compose.CONCEPTS``) for a
    run of ``steps`` sampling steps."""
    unet = model.unet

    def base(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return unet(x, t, context=context)

    if method == "plain":
        yield Applied(base)
        return
    if method in ("global", "regional"):
        loras = [load_kohya(lora_path(CONCEPTS[k]), unet) for k in concepts]
        if method == "global":
            with contextlib.ExitStack() as stack:
                for lora, targets in loras:
                    stack.enter_context(lora.applied(targets))
                yield Applied(base)
            return
        regions = boxes(batch, concepts).repeat(2, 1, 1, 1)  # cond and uncond rows

        def regional(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
            out = base(x, t, context) * (1 - regions.sum(1, keepdim=True))
            for j, (lora, targets) in enumerate(loras):
                with lora.applied(targets):
                    out = out + base(x, t, context) * regions[:, j : j + 1]
            return out

        yield Applied(regional)
        return
    if method not in ("gated", "gated-truth"):
        raise ValueError(f"unknown method {method!r}; one of {METHODS}")
    adapters = [
        GatedAdapter(
            CONCEPTS[k],
            map_to_model(load_weights(lora_path(CONCEPTS[k])), unet.named_modules()),
            positions=positions(model, list(batch), k),
        )
        for k in concepts
    ]
    with attach(unet, adapters, config or MaskConfig(), total_steps=steps) as session:
        if method == "gated-truth":
            session.set_masks(truth_masks(batch, concepts), hard=False)
        result = Applied(base, on_step=lambda i: session.begin_step(i, steps))
        yield result
        result.masks = session.masks()
        result.warnings = list(session.warnings)
