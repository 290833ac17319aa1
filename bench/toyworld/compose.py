"""Two-object compositions with one LoRA per object, sampled img2img from drawn scenes.

Text-to-image on the toy base rarely gets both shapes of a two-object prompt right (NOTES:
0.04), so fidelity figures on such samples would mostly measure the base's failures. Here
each case starts from a *drawn* scene — a plain circle and a plain square of base colours at
random places, whose true masks are known — noised to ``strength`` of the schedule, then
sampled with DDIM (``model.sample``'s update and guidance, rows cond first then uncond) under
the prompt ``a striped C circle and a purple square``. The striped-circles LoRA is bound to
``striped C circle`` and the purple-squares LoRA to ``purple square``: each LoRA has an object
it belongs to and one it must leave alone, and the background belongs to neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from bench.toyworld.model import TIMESTEPS, ToyModel, alphas_cumprod, to_image, to_latent
from bench.toyworld.scenes import COLOURS, Thing, _place, draw
from pixtention.integrator import token_positions

CONCEPTS = ("striped", "purple")  # object 0 (circle) and object 1 (square)
STEPS = 20  # the text-to-image schedule; img2img runs its last ``strength`` share
STRENGTH = 0.6

# (x, t, context) -> v for the 2B rows [cond; uncond]
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Case:
    """One composition: the drawn source, the prompt, each LoRA's phrase, the true masks."""

    image: torch.Tensor  # [3, 32, 32] in [-1, 1], plain objects
    masks: torch.Tensor  # [2, 32, 32] bool: circle, square
    circle_colour: str
    square_colour: str  # drawn colour; the prompt asks for purple
    prompt: str
    phrases: tuple[str, str]


def cases(seed: int, n: int) -> list[Case]:
    """``n`` compositions that depend only on ``seed``."""
    rng = np.random.default_rng(seed)
    names = tuple(COLOURS)
    out = []
    while len(out) < n:
        c1, c2 = (names[int(i)] for i in rng.choice(len(names), 2, replace=False))
        placed: list[Thing] = []
        for shape, colour in (("circle", c1), ("square", c2)):
            thing = _place(rng, placed, shape, colour)
            if thing is not None:
                placed.append(thing)
        if len(placed) < 2:
            continue
        scene = draw(tuple(placed))
        out.append(
            Case(
                image=scene.image,
                masks=scene.masks,
                circle_colour=c1,
                square_colour=c2,
                prompt=f"a striped {c1} circle and a purple square",
                phrases=(f"striped {c1} circle", "purple square"),
            )
        )
    return out


def positions(model: ToyModel, batch: list[Case], concept: int) -> tuple[tuple[int, ...], ...]:
    """Context indices of one LoRA's phrase in every case's prompt (the product's finder)."""
    return tuple(
        token_positions(model.tokenizer.tokenize_line, c.prompt, c.phrases[concept]) for c in batch
    )


def schedule(strength: float = STRENGTH, steps: int = STEPS) -> torch.Tensor:
    """The timesteps img2img visits: the tail of ``model.sample``'s grid from ``strength``."""
    times = torch.linspace(TIMESTEPS - 1, 0, steps).round().long()
    return times[steps - max(1, round(strength * steps)) :]


@dataclass
class Run:
    """A sampling run: the final images and every step's guided x0 prediction (image space)."""

    images: torch.Tensor  # [B, 3, 32, 32]
    x0: list[torch.Tensor]  # per step, [B, 3, 32, 32] (not clamped)
    seconds: float = 0.0  # thread CPU time of the denoiser calls
    # per probe, per step: the probe's x0 prediction from this run's own x_t
    probes: dict[str, list[torch.Tensor]] = field(default_factory=dict)


@torch.no_grad()
def img2img(
    model: ToyModel,
    batch: list[Case],
    denoise: Denoiser,
    *,
    seed: int = 0,
    strength: float = STRENGTH,
    steps: int = STEPS,
    guidance: float = 4.0,
    on_step: Callable[[int], None] | None = None,
    probes: Mapping[str, Denoiser] | None = None,
) -> Run:
    """DDIM (eta 0) from the drawn scenes noised to ``strength``, with CFG; the update is
    ``model.sample``'s. ``on_step(i)`` runs before step ``i``'s denoiser call; each of
    ``probes`` also denoises every step's x_t (untimed; their x0 go to ``Run.probes``)."""

    abar = alphas_cumprod()
    n = len(batch)
    x0_src = to_latent(torch.stack([c.image for c in batch]))
    noise = torch.randn(x0_src.shape, generator=torch.Generator().manual_seed(seed))
    times = schedule(strength, steps)
    x = abar[times[0]].sqrt() * x0_src + (1 - abar[times[0]]).sqrt() * noise
    context = model.encode([c.prompt for c in batch] + [""] * n)
    preds, spent = [], 0.0
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in probes or {}}

    def guided(fn: Denoiser, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_c, v_u = fn(torch.cat([x, x]), t.repeat(2 * n), context).chunk(2)
        return v_u + guidance * (v_c - v_u)

    for i, t in enumerate(times):
        a, s = abar[t].sqrt(), (1 - abar[t]).sqrt()
        for name, probe in (probes or {}).items():
            seen[name].append(to_image(a * x - s * guided(probe, x, t)))
        if on_step is not None:
            on_step(i)
        start = time.thread_time()
        v = guided(denoise, x, t)
        spent += time.thread_time() - start
        x0 = a * x - s * v
        eps = s * x + a * v
        preds.append(to_image(x0))
        if i + 1 < len(times):
            nxt = abar[times[i + 1]]
            x = nxt.sqrt() * x0 + (1 - nxt).sqrt() * eps
        else:
            x = x0
    return Run(to_image(x).clamp(-1, 1), preds, spent, seen)
