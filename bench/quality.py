"""Quality benchmark: does region-gating compose LoRAs better than applying them globally?

On the trained toy world (``bench/toyworld/``, committed fixtures), two-object compositions
with one LoRA per object (``bench/toyworld/compose.py``: img2img from drawn scenes with known
masks, prompt ``a striped C circle and a purple square``), side by side in one run:

plain · global (WebUI ``<lora:…>``) · regional (K+1 passes, fixed boxes) · gated (PixTention,
attention masks) · gated-truth (the same with the true masks: the upper bound).

Figures (over ``--seeds`` compositions; ``bench/toyworld/quality_metrics.py``):

- concept: the LoRA's reading on its own object (stripes on the circle, purple share of the
  square) minus the plain run's; ``fidelity`` = that effect over the global application's.
- leakage: at every step of a method's run, the plain UNet and the global LoRAs also denoise
  that run's own x_t (untimed probes on a copy of the UNet); how far the method's x0
  prediction moved from the plain one outside an object (its true mask widened by one latent
  pixel), summed over the steps, over how far the global one moved there. Per LoRA (runs with
  that LoRA alone) and outside all objects (both LoRAs). ``change_outside`` is the cruder
  trajectory figure: final runs vs the plain run, which also counts the scene's legitimate
  response to the changed objects (every method, regional included, shows 0.2–0.5).
- mask IoU: each adapter's final mask (bilinear to 32×32, > 0.5) vs its object's true mask.
- prompt fidelity: share of samples where the circle keeps its colour and the square is purple
  without stripes (colours only: the base's shapes are right in 0.29 of samples).
- step time: thread CPU seconds of the UNet calls over the plain run's.

The gated sessions capture the 16×16 and 8×8 attention (levels 0 and 1): the only ones that
localise on this UNet (``BENCH_CONFIG``; the product's "mid" preset would take 8×8 and 4×4).

``python -m pixtention bench quality [--quick] [--seeds N] [--json] [--grid PNG]
[--set FIELD=VALUE …]`` (``--set`` overrides a ``MaskConfig`` field, for tuning). The default
run (32 compositions) takes about 6 CPU-minutes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.toyworld.compose import (  # noqa: E402
    CONCEPTS,
    STEPS,
    STRENGTH,
    Case,
    Run,
    cases,
    img2img,
    schedule,
)
from bench.toyworld.methods import METHODS, applied, probes  # noqa: E402
from bench.toyworld.model import ToyModel, load_fixture  # noqa: E402
from bench.toyworld.quality_metrics import (  # noqa: E402
    MARGIN,
    change,
    concept_score,
    dilate,
    mask_iou,
    object_colour,
    stripe_in,
)
from pixtention.integrator import MaskConfig  # noqa: E402

SCENE_SEED = 2024
# The levels that localise on the toy UNet (16×16 and 8×8; NOTES: 4×4 and 2×2 are at chance).
BENCH_CONFIG = MaskConfig(capture=(0, 1))
TARGETS = {"leakage": 0.05, "mask_iou": 0.6, "concept_fidelity_ratio": 0.9}
LEAKY = ("global", "regional", "gated", "gated-truth")
PROBED = ("regional", "gated", "gated-truth")  # leakage measured against per-step probes
STRIPES = 0.07  # evaluate.has_stripes' threshold


def _progress(message: str) -> None:
    print(f"[bench quality] {message}", file=sys.stderr, flush=True)


def sample_all(
    model: ToyModel,
    batch: list[Case],
    config: MaskConfig,
    strength: float,
    steps: int = STEPS,
    methods: tuple[str, ...] = METHODS,
) -> tuple[dict[str, Run], dict[tuple[str, int], Run], dict[str, torch.Tensor]]:
    """Every method with both LoRAs, and every LoRA-using method with each LoRA alone."""
    both: dict[str, Run] = {}
    alone: dict[tuple[str, int], Run] = {}
    masks: dict[str, torch.Tensor] = {}
    reference = copy.deepcopy(model.unet)  # before any session hooks the UNet
    jobs = [(m, (0, 1)) for m in methods]
    jobs += [(m, (k,)) for k in (0, 1) for m in methods if m in LEAKY]
    length = len(schedule(strength, steps))
    for method, concepts in jobs:
        refs = probes(reference, concepts) if method in PROBED else None
        with applied(method, model, batch, concepts, config, length) as a:
            run = img2img(
                model,
                batch,
                a.denoise,
                strength=strength,
                steps=steps,
                on_step=a.on_step,
                probes=refs,
            )
        if len(concepts) == 2:
            both[method] = run
            if a.masks is not None:
                masks[method] = a.masks
        else:
            alone[(method, concepts[0])] = run
        _progress(f"{method} {'+'.join(CONCEPTS[k] for k in concepts)}: {run.seconds:.1f} s")
    return both, alone, masks


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 1e-12 else float("nan")


def figures(
    batch: list[Case],
    both: dict[str, Run],
    alone: dict[tuple[str, int], Run],
    masks: dict[str, torch.Tensor],
) -> dict:
    """Per-method rows and the headline figures (gated = attention masks)."""
    truth = torch.stack([c.masks for c in batch])  # [B, 2, 32, 32]
    near = dilate(truth, MARGIN)
    outside = {k: ~near[:, k] for k in (0, 1)}
    background = ~(near[:, 0] | near[:, 1])
    plain = both["plain"]

    def leak(run: Run, region: torch.Tensor) -> float:
        """How far the run's step moved from plain outside, over global's, from the same x_t."""
        ref = run.probes["plain"]
        return _ratio(change(run.x0, ref, region), change(run.probes["global"], ref, region))

    def moved(run: Run, ref: Run, region: torch.Tensor) -> float:
        return _ratio(change(run.x0, plain.x0, region), change(ref.x0, plain.x0, region))

    scores = {
        m: {
            CONCEPTS[k]: _mean(
                [concept_score(CONCEPTS[k], img, c.masks[k]) for img, c in zip(r.images, batch)]
            )
            for k in (0, 1)
        }
        for m, r in both.items()
    }
    rows = {}
    for method, run in both.items():
        row: dict[str, object] = {}
        effect = {c: scores[method][c] - scores["plain"][c] for c in CONCEPTS}
        row["concept_effect"] = effect
        row["concept_fidelity"] = {
            c: _ratio(effect[c], scores["global"][c] - scores["plain"][c]) for c in CONCEPTS
        }
        if method != "plain":
            pairs = {k: (alone[(method, k)], alone[("global", k)]) for k in (0, 1)}
            if method in PROBED:
                row["leakage"] = {CONCEPTS[k]: leak(pairs[k][0], outside[k]) for k in (0, 1)}
                row["leakage"]["outside_all"] = leak(run, background)
            row["change_outside"] = {CONCEPTS[k]: moved(*pairs[k], outside[k]) for k in (0, 1)}
            row["change_outside"]["outside_all"] = moved(run, both["global"], background)
        row["prompt_fidelity"] = _mean(
            [float(_as_prompted(i, c)) for i, c in zip(run.images, batch)]
        )
        row["step_time_ratio"] = run.seconds / plain.seconds
        if method in masks:
            m = masks[method]
            row["mask_iou"] = {
                CONCEPTS[k]: _mean([mask_iou(m[b, k], truth[b, k]) for b in range(len(batch))])
                for k in (0, 1)
            }
        rows[method] = row
    gated = rows["gated"]
    return {
        "leakage": max(gated["leakage"].values()),
        "mask_iou": _mean(list(gated["mask_iou"].values())),
        "concept_fidelity_ratio": min(gated["concept_fidelity"].values()),
        "prompt_fidelity_gated": gated["prompt_fidelity"],
        "prompt_fidelity_global": rows["global"]["prompt_fidelity"],
        "step_time_ratio": gated["step_time_ratio"],
        "methods": rows,
    }


def _as_prompted(image: torch.Tensor, case: Case) -> bool:
    """The circle still in its own colour and the square purple without stripes."""
    circle, square = (object_colour(image, case.masks[k]) for k in (0, 1))
    striped_square = stripe_in(image, dilate(case.masks[1], MARGIN)) > STRIPES
    return circle == case.circle_colour and square == "purple" and not striped_square


def measure(
    *,
    seeds: int,
    config: MaskConfig = BENCH_CONFIG,
    strength: float = STRENGTH,
    steps: int = STEPS,
    methods: tuple[str, ...] = METHODS,
) -> tuple[dict, list[Case], dict[str, Run], dict[str, torch.Tensor]]:
    """Sample ``seeds`` compositions with ``methods`` (plain, global and gated at least) and
    read the figures; also returns the cases, the both-LoRA runs and the gated masks."""
    torch.manual_seed(0)
    model = load_fixture()
    batch = cases(SCENE_SEED, seeds)
    both, alone, masks = sample_all(model, batch, config, strength, steps, methods)
    out = figures(batch, both, alone, masks)
    out["targets_met"] = {
        "leakage": out["leakage"] <= TARGETS["leakage"],
        "mask_iou": out["mask_iou"] >= TARGETS["mask_iou"],
        "concept_fidelity_ratio": out["concept_fidelity_ratio"]
        >= TARGETS["concept_fidelity_ratio"],
        "prompt_fidelity": out["prompt_fidelity_gated"] > out["prompt_fidelity_global"],
    }
    out["settings"] = {
        "seeds": seeds,
        "strength": strength,
        "steps": len(schedule(strength, steps)),
        "mask_config": {k: v for k, v in dataclasses.asdict(config).items()},
    }
    return out, batch, both, masks


def _override(config: MaskConfig, items: list[str]) -> MaskConfig:
    """``FIELD=VALUE`` pairs onto a MaskConfig (values parsed as JSON, else as strings)."""
    changes = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in {f.name for f in dataclasses.fields(MaskConfig)}:
            raise SystemExit(f"bench quality: MaskConfig has no field {key!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        changes[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return dataclasses.replace(config, **changes)


def table(out: dict) -> str:
    head = (
        "| method | stripes on circle (fidelity) | purple on square (fidelity) | leakage striped "
        "| leakage purple | leakage outside all | x0 change outside all | mask IoU striped / "
        "purple | prompt fidelity | step time |"
    )
    lines = [head, "|" + "---|" * 10]
    for method, row in out["methods"].items():
        eff, fid = row["concept_effect"], row["concept_fidelity"]
        leak = row.get("leakage", {})
        iou = row.get("mask_iou")
        cells = [
            method,
            f"{eff['striped']:+.3f} ({fid['striped']:.2f})",
            f"{eff['purple']:+.3f} ({fid['purple']:.2f})",
            *(f"{leak[k]:.3f}" if k in leak else "—" for k in ("striped", "purple", "outside_all")),
            f"{row['change_outside']['outside_all']:.2f}" if "change_outside" in row else "—",
            f"{iou['striped']:.2f} / {iou['purple']:.2f}" if iou else "—",
            f"{row['prompt_fidelity']:.2f}",
            f"{row['step_time_ratio']:.2f}×",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.toyworld.grid import save_grid
    from bench.toyworld.train_base import single_thread

    single_thread()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="4 compositions, a 10-step schedule: about half a minute (tests)",
    )
    p.add_argument("--seeds", type=int, help="compositions (default 32, --quick 4)")
    p.add_argument("--strength", type=float, default=STRENGTH, help="img2img strength")
    p.add_argument("--steps", type=int, help=f"the full schedule's steps (default {STEPS})")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--grid", type=Path, help="write the picture (global/regional/gated, masks)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = p.parse_args(argv)
    seeds = args.seeds or (4 if args.quick else 32)
    steps = args.steps or (10 if args.quick else STEPS)
    config = _override(BENCH_CONFIG, args.set)
    out, batch, both, masks = measure(
        seeds=seeds, config=config, strength=args.strength, steps=steps
    )
    if args.grid:
        save_grid(args.grid, batch, both, masks["gated"])
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(table(out))
        for key in TARGETS:
            print(f"{key}: {out[key]:.3f} (target {TARGETS[key]})")
        print(
            f"prompt fidelity gated {out['prompt_fidelity_gated']:.2f}"
            f" vs global {out['prompt_fidelity_global']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
