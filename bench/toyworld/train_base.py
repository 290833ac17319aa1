"""Train the toy world's base model (UNet + text encoder) from scratch, resumably.

v-prediction on the unshuffled 16×16×12 latent plus the attention-grounding loss on the 16×16
and 8×8 attn2 maps (each object's words → its mask). Step ``s`` draws its scenes, caption
dropout, timesteps and noise from ``(seed, s)`` alone, so a run resumed from a checkpoint
continues exactly as an uninterrupted one. One torch thread: on the shared 2-core machines two
threads burned 10× the CPU spin-waiting.

    python -m bench.toyworld.train_base --out /tmp/toyworld-run/base --steps 1200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.toyworld.attention import Capture, grounding_loss
from bench.toyworld.model import (
    ToyConfig,
    ToyModel,
    alphas_cumprod,
    save_fixture,
    to_latent,
    v_loss_terms,
)
from bench.toyworld.scenes import Scene, scene_batch
from pixtention.integrator.tokens import CHUNK

CHECKPOINT = "checkpoint.pt"
DROP_CAPTION = 0.1  # unconditional rows, for classifier-free guidance


def single_thread() -> None:
    """One torch thread, passive OpenMP waits (set before heavy work starts)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(1)


def step_seed(seed: int, step: int) -> int:
    return seed * 1_000_003 + step


def token_select(scenes: list[Scene], captions: list[str], objects: int = 2) -> torch.Tensor:
    """``[B, O, 77]``: 1 at each object's word positions (BOS is position 0)."""
    select = torch.zeros(len(scenes), objects, CHUNK)
    for b, (scene, caption) in enumerate(zip(scenes, captions)):
        if not caption:
            continue
        for o, span in enumerate(scene.word_spans()):
            select[b, o, [i + 1 for i in span]] = 1.0
    return select


def stacked_masks(scenes: list[Scene], objects: int = 2) -> torch.Tensor:
    out = torch.zeros(len(scenes), objects, *scenes[0].masks.shape[1:])
    for b, scene in enumerate(scenes):
        out[b, : len(scene.masks)] = scene.masks.float()
    return out


def training_loss(
    model: ToyModel,
    scenes: list[Scene],
    captions: list[str],
    generator: torch.Generator,
    ground_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """v-prediction MSE (+ grounding) for one batch."""
    x0 = to_latent(torch.stack([s.image for s in scenes]))
    t = torch.randint(0, 1000, (len(scenes),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    xt, target = v_loss_terms(x0, t, noise, alphas_cumprod())
    capture = Capture(model.unet)
    with capture.hooked():
        pred = model.unet(xt, t, context=model.encode(captions))
    loss_v = torch.nn.functional.mse_loss(pred, target)
    loss = loss_v
    parts = {"v": loss_v.item()}
    if ground_weight:
        loss_g = grounding_loss(
            capture.probs(), token_select(scenes, captions), stacked_masks(scenes)
        )
        loss = loss + ground_weight * loss_g
        parts["ground"] = loss_g.item()
    return loss, parts


def learning_rate(step: int, total: int, peak: float, warmup: int = 50) -> float:
    """Linear warm-up, then cosine down to a tenth of the peak at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    done = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: an interruption never leaves a half-written checkpoint


def train(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = ToyModel(ToyConfig(model_channels=args.model_channels))
    optimiser = torch.optim.AdamW(
        [*model.unet.parameters(), *model.text.parameters()], lr=args.lr, weight_decay=0.0
    )
    step = 0
    ckpt = out / CHECKPOINT
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.unet.load_state_dict(state["unet"])
        model.text.load_state_dict(state["text"])
        optimiser.load_state_dict(state["optimiser"])
        step = state["step"]
        print(f"resumed at step {step}", flush=True)
    model.train()
    log = (out / "log.jsonl").open("a")
    cpu0, wall0 = time.process_time(), time.time()
    while step < args.steps:
        seed = step_seed(args.seed, step)
        scenes = scene_batch(seed, args.batch)
        drop = np.random.default_rng(seed).random(args.batch) < DROP_CAPTION
        captions = ["" if d else s.caption for s, d in zip(scenes, drop)]
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr)
        loss, parts = training_loss(
            model, scenes, captions, torch.Generator().manual_seed(seed), args.ground_weight
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(optimiser.param_groups[0]["params"], 1.0)
        optimiser.step()
        step += 1
        if step % args.log_every == 0 or step == args.steps:
            record = {"step": step, **parts, "lr": optimiser.param_groups[0]["lr"]}
            record["cpu_s"] = round(time.process_time() - cpu0, 1)
            record["wall_s"] = round(time.time() - wall0, 1)
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
        if step % args.checkpoint_every == 0 or step == args.steps:
            save_checkpoint(
                ckpt,
                {
                    "step": step,
                    "unet": model.unet.state_dict(),
                    "text": model.text.state_dict(),
                    "optimiser": optimiser.state_dict(),
                },
            )
    log.close()
    return save_fixture(model.eval(), out / "base.safetensors", {"toyworld_steps": str(step)})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/toyworld-run/base", help="checkpoints, log, result")
    p.add_argument("--steps", type=int, default=1200, help="total steps (resume continues)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--model-channels", type=int, default=32)
    p.add_argument("--checkpoint-every", type=int, default=100)
    return add_run_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags every toy-world training script shares (batch, grounding loss, seed, log)."""
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ground-weight", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    return p


def main(argv: list[str] | None = None) -> None:
    single_thread()
    print(train(parser().parse_args(argv)))


if __name__ == "__main__":
    main()
