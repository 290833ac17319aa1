"""Procedural 32×32 scenes of coloured shapes, with captions and ground-truth object masks.

The toy world the Integrator is measured on: one or two shapes (circle/square/triangle ×
red/green/blue/yellow) on a plain background. Every scene comes from a seed, so a batch is the
same on every machine and a resumed training run sees the same data. The LoRA concepts the base
never sees (``purple``, ``striped`` objects, a ``checkered`` background) are drawn by the same
code, so their masks are exact too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

SIZE = 32
SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 205, 40),
}
# Drawn only for LoRA training: the base never sees these words or looks.
EXTRA_COLOURS = {"purple": (150, 50, 190)}
PALETTE = {**COLOURS, **EXTRA_COLOURS}
BACKGROUND = (200, 200, 200)
CHECKER = ((200, 200, 200), (120, 120, 120))
PATTERNS = ("plain", "striped")
BACKGROUNDS = ("plain", "checkered")
_RADIUS = (5, 7)  # half-size of a shape in pixels


@dataclass(frozen=True)
class Thing:
    """One object: what it is and where (centre and half-size in pixels)."""

    shape: str
    colour: str
    cx: int
    cy: int
    r: int
    pattern: str = "plain"

    def words(self) -> list[str]:
        """The object's words in caption order (pattern, colour, shape)."""
        head = ["striped"] if self.pattern == "striped" else []
        return [*head, self.colour, self.shape]


@dataclass(frozen=True)
class Scene:
    """A drawn scene: image in [-1, 1] ``[3, 32, 32]``, one bool mask per object, caption."""

    things: tuple[Thing, ...]
    background: str
    image: torch.Tensor
    masks: torch.Tensor
    caption: str

    def word_spans(self) -> list[tuple[int, ...]]:
        """Per object, the indices of its words in ``caption.split()`` (for grounding)."""
        return caption_spans(self.things)


def shape_mask(shape: str, cx: int, cy: int, r: int, size: int = SIZE) -> np.ndarray:
    """Pixels of one shape: a disc, an axis-aligned square, or an upright triangle."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - (cx + 0.5), yy - (cy + 0.5)
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "triangle":
        # apex at the top (cy - r), base at cy + r, width 2r at the base
        inside_y = (dy >= -r) & (dy <= r)
        return inside_y & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(f"unknown shape {shape!r}")


def caption_of(things: tuple[Thing, ...], background: str = "plain") -> str:
    """``a red circle and a blue square`` (+ ``on a checkered background``)."""
    text = " and ".join("a " + " ".join(t.words()) for t in things)
    return f"{text} on a checkered background" if background == "checkered" else text


def caption_spans(things: tuple[Thing, ...]) -> list[tuple[int, ...]]:
    """Word indices (in the caption's ``split()``) of each object's words."""
    spans, index = [], 0
    for thing in things:
        n = len(thing.words())
        spans.append(tuple(range(index + 1, index + 1 + n)))  # after "a"
        index += n + 2  # "a" + words + "and"
    return spans


def draw(things: tuple[Thing, ...], background: str = "plain") -> Scene:
    """Render ``things`` in order (later ones on top); masks are the visible pixels."""
    img = np.empty((SIZE, SIZE, 3), np.float32)
    if background == "checkered":
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        odd = ((yy // 4 + xx // 4) % 2).astype(bool)
        img[~odd], img[odd] = CHECKER
    else:
        img[:] = BACKGROUND
    masks = np.zeros((len(things), SIZE, SIZE), bool)
    for i, thing in enumerate(things):
        m = shape_mask(thing.shape, thing.cx, thing.cy, thing.r)
        masks[:i] &= ~m
        masks[i] = m
        colour = np.array(PALETTE[thing.colour], np.float32)
        if thing.pattern == "striped":
            yy = np.arange(SIZE)[:, None].repeat(SIZE, 1)
            light = ((yy // 2) % 2 == 1) & m
            img[m] = colour
            img[light] = colour * 0.35 + 255 * 0.65
        else:
            img[m] = colour
    image = torch.from_numpy(img).permute(2, 0, 1) / 127.5 - 1.0
    return Scene(
        things=things,
        background=background,
        image=image,
        masks=torch.from_numpy(masks),
        caption=caption_of(things, background),
    )


def _place(rng: np.random.Generator, placed: list[Thing], shape: str, colour: str) -> Thing | None:
    """A position that keeps a 1-pixel gap from the shapes already placed (rejection)."""
    for _ in range(100):
        r = int(rng.integers(_RADIUS[0], _RADIUS[1] + 1))
        cx, cy = (int(v) for v in rng.integers(r, SIZE - r, size=2))
        if all(max(abs(cx - p.cx), abs(cy - p.cy)) > r + p.r + 1 for p in placed):
            return Thing(shape, colour, cx, cy, r)
    return None  # no room: the scene keeps fewer objects


def random_things(
    rng: np.random.Generator,
    *,
    count: int | None = None,
    colours: tuple[str, ...] = tuple(COLOURS),
    shapes: tuple[str, ...] = SHAPES,
) -> tuple[Thing, ...]:
    """One or two distinct (colour, shape) objects at random, non-overlapping places."""
    n = count if count is not None else int(rng.integers(1, 3))
    placed: list[Thing] = []
    while len(placed) < n:
        shape = shapes[int(rng.integers(len(shapes)))]
        colour = colours[int(rng.integers(len(colours)))]
        if any(p.shape == shape and p.colour == colour for p in placed):
            continue
        thing = _place(rng, placed, shape, colour)
        if thing is None:
            break
        placed.append(thing)
    return tuple(placed)


def random_scene(rng: np.random.Generator, *, count: int | None = None) -> Scene:
    """A base-world scene: the four base colours, the three shapes, plain background."""
    return draw(random_things(rng, count=count))


def scene_batch(seed: int, n: int, *, count: int | None = None) -> list[Scene]:
    """``n`` scenes that depend only on ``seed`` (a training step's batch uses its step)."""
    rng = np.random.default_rng(seed)
    return [random_scene(rng, count=count) for _ in range(n)]


CONCEPTS = ("striped", "purple", "checkered")


def concept_scene(rng: np.random.Generator, concept: str) -> Scene:
    """A LoRA training scene: the concept's object (or background) plus maybe one plain object.

    ``striped``: a striped circle of a base colour; ``purple``: a purple square;
    ``checkered``: a base scene on a checkered background.
    """
    if concept == "checkered":
        return draw(random_things(rng), "checkered")
    if concept == "striped":
        shape, colour = "circle", tuple(COLOURS)[int(rng.integers(len(COLOURS)))]
    elif concept == "purple":
        shape, colour = "square", "purple"
    else:
        raise ValueError(f"unknown concept {concept!r}; one of {CONCEPTS}")
    first = _place(rng, [], shape, colour)
    assert first is not None  # the first object always fits
    things = [replace(first, pattern="striped" if concept == "striped" else "plain")]
    if rng.random() < 0.5:
        others = [s for s in SHAPES if s != shape]
        other = others[int(rng.integers(len(others)))]
        second = _place(rng, things, other, tuple(COLOURS)[int(rng.integers(len(COLOURS)))])
        things += [second] if second else []
    order = rng.permutation(len(things))
    return draw(tuple(things[int(i)] for i in order))
