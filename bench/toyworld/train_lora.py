"""Train rank-4 LoRAs on the toy base, each teaching one concept the base never saw.

``striped`` (stripes on circles), ``purple`` (a new colour, on squares) and ``checkered`` (a
background texture). The base UNet and text encoder stay frozen; the loss is the base's
(v-prediction plus the attention grounding, so the LoRA keeps the attention the Integrator's
masks are made from). Each result is a kohya SD1 file with ``ss_*`` metadata and a
``.civitai.info`` sidecar, so the whole product path (Library → Curator → Selector →
Integrator) can run on it. Step ``s`` draws its data from ``(seed, s)`` alone.

    python -m bench.toyworld.train_lora --concept striped --out /tmp/toyworld-run/loras
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from bench.toyworld.lora import LoRA, kohya_header, lora_targets, save_kohya
from bench.toyworld.model import BASE_FIXTURE, load_fixture
from bench.toyworld.scenes import CONCEPTS, concept_scene
from bench.toyworld.train_base import (
    add_run_arguments,
    single_thread,
    step_seed,
    training_loss,
)

# Each card's steps and lr are what its committed fixture was trained with (150 steps at 1e-3
# left stripes faint and no checker at all).
CARDS = {
    "striped": {
        "name": "toy_striped_circles",
        "description": "Horizontal light stripes on circles, in the toy world of coloured shapes.",
        "tags": ["pattern", "stripes", "circle", "toyworld"],
        "trainedWords": ["striped"],
        "steps": 400,
        "lr": 2e-3,
    },
    "purple": {
        "name": "toy_purple_squares",
        "description": "A new colour, purple, for squares, in the toy world of coloured shapes.",
        "tags": ["colour", "purple", "square", "toyworld"],
        "trainedWords": ["purple"],
        "steps": 150,
        "lr": 1e-3,
    },
    "checkered": {
        "name": "toy_checkered_background",
        "description": "A grey checkered background texture behind the toy world's shapes.",
        "tags": ["background", "texture", "checkered", "toyworld"],
        "trainedWords": ["checkered background"],
        "steps": 400,
        "lr": 2e-3,
    },
}


def sidecar(concept: str) -> dict[str, object]:
    """A civitai model-version object (the ``.civitai.info`` shape Civitai-Helper writes)."""
    card = CARDS[concept]
    return {
        "name": "v1",
        "description": card["description"],
        "baseModel": "SD 1.5",
        "trainedWords": card["trainedWords"],
        "tags": card["tags"],
        "model": {
            "name": card["name"],
            "type": "LORA",
            "description": card["description"],
            "tags": card["tags"],
        },
        "images": [],
    }


def train(args: argparse.Namespace) -> Path:
    card = CARDS[args.concept]
    steps = args.steps if args.steps is not None else card["steps"]
    lr = args.lr if args.lr is not None else card["lr"]
    model = load_fixture(Path(args.base))
    model.requires_grad_(False)
    targets = lora_targets(model.unet)
    torch.manual_seed(args.seed)
    lora = LoRA(targets, rank=args.rank, alpha=args.alpha)
    optimiser = torch.optim.AdamW(lora.parameters(), lr=lr, weight_decay=0.0)
    seen: Counter[str] = Counter()
    cpu0 = time.process_time()
    concept_seed = args.seed + 7919 * (1 + CONCEPTS.index(args.concept))
    for step in range(steps):
        seed = step_seed(concept_seed, step)
        rng = np.random.default_rng(seed)
        scenes = [concept_scene(rng, args.concept) for _ in range(args.batch)]
        captions = [s.caption for s in scenes]
        seen.update(captions)
        with lora.applied(targets):
            loss, parts = training_loss(
                model, scenes, captions, torch.Generator().manual_seed(seed), args.ground_weight
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if (step + 1) % args.log_every == 0 or step + 1 == steps:
            cpu = round(time.process_time() - cpu0, 1)
            print(json.dumps({"concept": args.concept, "step": step + 1, **parts, "cpu_s": cpu}))
    header = kohya_header(
        card["name"],
        rank=args.rank,
        alpha=args.alpha,
        steps=steps,
        captions=dict(seen.most_common(20)),
        comment=f"{card['description']} Trigger: {', '.join(card['trainedWords'])}.",
    )
    path = Path(args.out) / f"{card['name']}.safetensors"
    return save_kohya(path, lora, header, sidecar(args.concept))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concept", choices=CONCEPTS, required=True)
    p.add_argument("--base", default=str(BASE_FIXTURE), help="base fixture to train against")
    p.add_argument("--out", default="/tmp/toyworld-run/loras")
    p.add_argument("--steps", type=int, help="default: the concept's card")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--alpha", type=float, default=4.0)
    p.add_argument("--lr", type=float, help="default: the concept's card")
    return add_run_arguments(p)


def main(argv: list[str] | None = None) -> None:
    single_thread()
    print(train(parser().parse_args(argv)))


if __name__ == "__main__":
    main()
