"""How well the toy base obeys prompts and where its cross-attention looks.

- **Prompt fidelity**: every single-object prompt (4 colours × 3 shapes) over ``--seeds``
  samples, read back by a classifier that knows the world: foreground = pixels far from the
  background colour, labelled with the nearest palette colour, split into 4-connected
  components, shape from the component's fill of its bounding box (square ≈ 1, circle ≈ 0.79,
  triangle ≈ 0.5). Colour / shape accuracy of the largest component, and "exact" (one object,
  right colour and shape). Two-object prompts: both objects found.
- **Localisation**: drawn scenes with known masks, noised to a few timesteps, one UNet call
  with the capture hooks; per attn2 resolution, AUROC and IoU of each object's words' map
  (positions from the product's ``token_positions``) vs its true mask.
- **LoRA concepts** (``--lora CONCEPT FILE``): on the concept's prompts, without and with the
  LoRA applied globally, how often a detector that knows the drawn concept fires, and the mean
  of its continuous score (stripes, purple largest object, checker contrast).

    python -m bench.toyworld.evaluate [--fixture PATH] [--seeds 4] [--json OUT]
        [--lora striped FILE …] [--skip-base]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.toyworld.attention import Capture, localisation, word_map
from bench.toyworld.lora import load_kohya
from bench.toyworld.model import (
    BASE_FIXTURE,
    ToyModel,
    alphas_cumprod,
    load_fixture,
    sample,
    to_latent,
)
from bench.toyworld.scenes import (
    BACKGROUND,
    COLOURS,
    PALETTE,
    SHAPES,
    Scene,
    scene_batch,
)
from pixtention.integrator.tokens import token_positions

MIN_PIXELS = 10
FOREGROUND = 60.0  # RGB distance from the background colour that counts as an object


@dataclass(frozen=True)
class Found:
    colour: str
    shape: str
    pixels: int


def _components(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """4-connected components of equal non-negative labels: ``[(label, bool mask), …]``."""
    seen = np.zeros(labels.shape, bool)
    out = []
    h, w = labels.shape
    for y, x in zip(*np.nonzero(labels >= 0)):
        if seen[y, x]:
            continue
        label, mask, queue = labels[y, x], np.zeros(labels.shape, bool), deque([(y, x)])
        seen[y, x] = True
        while queue:
            cy, cx = queue.popleft()
            mask[cy, cx] = True
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx] and labels[ny, nx] == label:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        out.append((int(label), mask))
    return out


def shape_of(mask: np.ndarray) -> str:
    """Fill of the bounding box: square ≈ 1, circle ≈ π/4, triangle ≈ 1/2."""
    ys, xs = np.nonzero(mask)
    fill = mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    return "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"


def classify(image: torch.Tensor) -> list[Found]:
    """Objects in one ``[3, 32, 32]`` image in [-1, 1], largest first."""
    rgb = ((image.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    names = list(PALETTE)
    palette = np.array([PALETTE[n] for n in names], np.float32)
    far = np.linalg.norm(rgb - np.array(BACKGROUND, np.float32), axis=-1) > FOREGROUND
    nearest = np.linalg.norm(rgb[:, :, None] - palette, axis=-1).argmin(-1)
    labels = np.where(far, nearest, -1)
    found = [
        Found(names[label], shape_of(mask), int(mask.sum()))
        for label, mask in _components(labels)
        if mask.sum() >= MIN_PIXELS
    ]
    return sorted(found, key=lambda f: -f.pixels)


def single_prompts() -> list[tuple[str, str]]:
    return list(itertools.product(COLOURS, SHAPES))


def prompt_fidelity(
    model: ToyModel, seeds: int, *, steps: int = 20, guidance: float = 4.0
) -> dict[str, float]:
    """Colour/shape/exact accuracy on single-object prompts; both-present on pairs."""
    single = single_prompts()
    captions = [f"a {c} {s}" for c, s in single]
    colour = shape = exact = 0
    for seed in range(seeds):
        images = sample(model, captions, seed=seed, steps=steps, guidance=guidance)
        for (c, s), image in zip(single, images):
            found = classify(image)
            top = found[0] if found else None
            colour += bool(top and top.colour == c)
            shape += bool(top and top.shape == s)
            exact += len(found) == 1 and top.colour == c and top.shape == s
    pairs = [(a, b) for a, b in itertools.combinations(single, 2) if a[0] != b[0] and a[1] != b[1]]
    pairs = pairs[:: max(1, len(pairs) // 12)][:12]
    both = 0
    for seed in range(seeds):
        captions2 = [f"a {a[0]} {a[1]} and a {b[0]} {b[1]}" for a, b in pairs]
        images = sample(model, captions2, seed=1000 + seed, steps=steps, guidance=guidance)
        for (a, b), image in zip(pairs, images):
            got = {(f.colour, f.shape) for f in classify(image)}
            both += a in got and b in got
    n = seeds * len(single)
    return {
        "single_colour_accuracy": colour / n,
        "single_shape_accuracy": shape / n,
        "single_exact": exact / n,
        "pair_both_present": both / (seeds * len(pairs)),
        "samples": n + seeds * len(pairs),
    }


def _phrase(scene: Scene, index: int) -> str:
    thing = scene.things[index]
    return f"{thing.colour} {thing.shape}"


@torch.no_grad()
def attention_localisation(
    model: ToyModel, scenes: int = 32, timesteps: tuple[int, ...] = (300, 500, 700)
) -> dict[str, dict[str, float]]:
    """Mean AUROC and IoU per attn2 resolution of each object's words vs its true mask."""
    batch = scene_batch(777, scenes)
    x0 = to_latent(torch.stack([s.image for s in batch]))
    context = model.encode([s.caption for s in batch])
    abar = alphas_cumprod()
    scores: dict[int, list[tuple[float, float]]] = {}
    capture = Capture(model.unet)
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        xt = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * noise
        with capture.hooked():
            model.unet(xt, torch.full((scenes,), t), context=context)
        for res, layers in capture.probs().items():
            for b, scene in enumerate(batch):
                for o in range(len(scene.things)):
                    pos = token_positions(
                        model.tokenizer.tokenize_line, scene.caption, _phrase(scene, o)
                    )
                    word = torch.stack([word_map(p[b], pos) for p in layers]).mean(0)
                    scores.setdefault(res, []).append(localisation(word, scene.masks[o]))
    out = {}
    for res, pairs in sorted(scores.items(), reverse=True):
        au = [a for a, _ in pairs if not math.isnan(a)]
        io = [i for _, i in pairs if not math.isnan(i)]
        out[f"{res}x{res}"] = {"auroc": sum(au) / len(au), "iou": sum(io) / len(io)}
    return out


def _rgb(image: torch.Tensor) -> np.ndarray:
    return ((image.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()


def stripe_score(image: torch.Tensor) -> float:
    """Horizontal stripes: colour change two rows apart minus two columns apart, on objects.

    Over the foreground widened by two pixels each way (so the light rows count), the mean RGB
    distance between pixels two rows apart minus that between pixels two columns apart, / 255:
    stripes change along y only; plain shapes and sampling noise change alike along both axes.
    """
    rgb = _rgb(image)
    fg = np.linalg.norm(rgb - np.array(BACKGROUND, np.float32), axis=-1) > FOREGROUND
    region = fg.copy()
    for shift in (1, 2):
        region[shift:] |= fg[:-shift]
        region[:-shift] |= fg[shift:]
        region[:, shift:] |= fg[:, :-shift]
        region[:, :-shift] |= fg[:, shift:]
    if region.sum() < MIN_PIXELS:
        return 0.0
    down = np.linalg.norm(rgb[2:] - rgb[:-2], axis=-1)[region[2:] & region[:-2]]
    across = np.linalg.norm(rgb[:, 2:] - rgb[:, :-2], axis=-1)[region[:, 2:] & region[:, :-2]]
    return float(down.mean() - across.mean()) / 255


def has_stripes(image: torch.Tensor) -> bool:
    return stripe_score(image) > 0.07


def has_purple(image: torch.Tensor) -> bool:
    """The largest object is purple (noise specks of any hue do not count)."""
    found = classify(image)
    return bool(found) and found[0].colour == "purple"


def checker_score(image: torch.Tensor) -> float:
    """Light minus dark cells of a 4-pixel checker at its best offset, grey levels / 255.

    The drawn checker scores 0.31; any offset counts, since a convolutional UNet has little
    sense of absolute position.
    """
    grey = _rgb(image).mean(-1)
    yy, xx = np.mgrid[0:32, 0:32]
    best = 0.0
    for dy, dx in itertools.product(range(8), range(8)):
        dark = (((yy + dy) // 4 + (xx + dx) // 4) % 2).astype(bool)
        best = max(best, float(grey[~dark].mean() - grey[dark].mean()) / 255)
    return best


def has_checker(image: torch.Tensor) -> bool:
    return checker_score(image) > 0.1


DETECTORS = {"striped": has_stripes, "purple": has_purple, "checkered": has_checker}
SCORES = {
    "striped": stripe_score,
    "purple": lambda image: float(has_purple(image)),
    "checkered": checker_score,
}
CONCEPT_PROMPTS = {
    "striped": [f"a striped {c} circle" for c in COLOURS],
    "purple": ["a purple square"] * len(COLOURS),
    "checkered": [f"a {c} {s} on a checkered background" for c, s in zip(COLOURS, SHAPES * 2)],
}


def lora_effect(
    model: ToyModel, path: Path, concept: str, seeds: int, *, steps: int = 20
) -> dict[str, float]:
    """The concept on its prompts without and with the LoRA (global, weight 1): how often it
    is detected, and the mean of its continuous score."""
    lora, targets = load_kohya(path, model.unet)
    detect, score, prompts = DETECTORS[concept], SCORES[concept], CONCEPT_PROMPTS[concept]
    images: dict[str, list[torch.Tensor]] = {"base": [], "lora": []}
    for seed in range(seeds):
        images["base"] += sample(model, prompts, seed=seed, steps=steps)
        with lora.applied(targets):
            images["lora"] += sample(model, prompts, seed=seed, steps=steps)
    out = {}
    for key, found in images.items():
        out[f"concept_rate_{key}"] = sum(map(detect, found)) / len(found)
        out[f"concept_score_{key}"] = sum(map(score, found)) / len(found)
    return out


def evaluate(model: ToyModel, seeds: int) -> dict:
    return {
        "prompt_fidelity": prompt_fidelity(model, seeds),
        "attention_localisation": attention_localisation(model),
    }


def main(argv: list[str] | None = None) -> None:
    from bench.toyworld.train_base import single_thread

    single_thread()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fixture", type=Path, default=BASE_FIXTURE)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--lora", nargs=2, action="append", default=[], metavar=("CONCEPT", "FILE"))
    p.add_argument("--skip-base", action="store_true", help="only the --lora figures")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = load_fixture(args.fixture)
    figures: dict = {"fixture": args.fixture.name}
    if not args.skip_base:
        figures.update(evaluate(model, args.seeds))
    for concept, file in args.lora:
        figures.setdefault("loras", {})[Path(file).name] = lora_effect(
            model, Path(file), concept, args.seeds
        )
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
