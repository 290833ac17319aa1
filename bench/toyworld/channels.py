"""Where one-pass gating leaks on the trained toy UNet: one UNet call, the true masks.

For drawn compositions noised to a few timesteps, one call each of the plain UNet, the two
LoRAs applied globally, and the gated session with the objects' true masks; at the output of
every UNet block, how far the gated call moved the features outside the objects (true masks
widened by one latent pixel, max-pooled to the block's grid) over how far the global call
moved them. Two counterfactuals on the guided output say how much two suspected channels
carry:

- ``groupnorm``: every GroupNorm of the gated call normalises with the plain call's
  statistics (image-wide statistics are one way an object's change reaches the background);
- ``fine-only``: adapters act only at the finest level (16×16), off at 8×8, 4×4 and 2×2,
  where the objects cover most tokens.

    python -m bench.toyworld.channels [--cases 16]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from bench.toyworld.compose import cases
from bench.toyworld.methods import applied, probes
from bench.toyworld.model import alphas_cumprod, load_fixture, to_latent
from bench.toyworld.quality_metrics import MARGIN, dilate
from pixtention.integrator.mask_state import MaskState

TIMESTEPS = (300, 600, 850)
GUIDANCE = 4.0


def _blocks(unet: torch.nn.Module) -> list[str]:
    names = [n for n, _ in unet.named_modules() if n.count(".") == 1 and "_blocks." in n]
    return names + ["middle_block"]


@contextlib.contextmanager
def _keep(unet: torch.nn.Module, names: list[str], store: dict) -> Iterator[None]:
    modules = dict(unet.named_modules())
    handles = [
        modules[n].register_forward_hook(lambda _m, _a, out, n=n: store.__setitem__(n, out))
        for n in names
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _outside_ratio(moved: torch.Tensor, ref: torch.Tensor, near: torch.Tensor) -> float:
    """Mean |moved| over mean |ref| on the tokens no object touches (``near`` max-pooled)."""
    outside = 1 - F.adaptive_max_pool2d(near, moved.shape[-1])
    outside = outside.repeat(moved.shape[0] // outside.shape[0], 1, 1, 1)  # cond and uncond
    return float((moved.abs() * outside).sum() / (ref.abs() * outside).sum().clamp_min(1e-12))


@contextlib.contextmanager
def _plain_groupnorm_stats(unet: torch.nn.Module, reference: torch.nn.Module) -> Iterator[None]:
    """GroupNorms of ``unet`` use the statistics the same GroupNorms of ``reference`` saw on
    its last call (hooks on both; the reference must run first on the same input)."""
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    pairs = [
        (r, g)
        for r, g in zip(reference.modules(), unet.modules())
        if isinstance(g, torch.nn.GroupNorm)
    ]

    def record(module, args, _out, target=None):
        x = args[0].reshape(args[0].shape[0], module.num_groups, -1)
        stats[id(target)] = (x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True))

    def replay(module, args, _out):
        x = args[0]
        mean, var = stats[id(module)]
        y = (x.reshape(x.shape[0], module.num_groups, -1) - mean) / (var + module.eps).sqrt()
        shape = [1, -1] + [1] * (x.dim() - 2)
        return y.reshape(x.shape) * module.weight.view(shape) + module.bias.view(shape)

    handles = [r.register_forward_hook(lambda m, a, o, g=g: record(m, a, o, g)) for r, g in pairs]
    handles += [g.register_forward_hook(replay) for _, g in pairs]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _fine_only() -> Iterator[None]:
    """Masks are zero at every level coarser than the latent (adapters off there)."""
    original = MaskState.rows_at

    def rows_at(self, images, size):
        out = original(self, images, size)
        return out if size[0] >= 16 else out * 0

    MaskState.rows_at = rows_at
    try:
        yield
    finally:
        MaskState.rows_at = original


def measure(n: int = 16) -> dict:
    """Per timestep: the block-by-block outside ratios and the guided-output counterfactuals."""
    torch.manual_seed(0)
    model = load_fixture()
    batch = cases(2024, n)
    reference = copy.deepcopy(model.unet)
    refs = probes(reference, (0, 1))
    abar = alphas_cumprod()
    x0 = to_latent(torch.stack([c.image for c in batch]))
    near = dilate(torch.stack([c.masks[0] | c.masks[1] for c in batch]), MARGIN).float()[:, None]
    context = model.encode([c.prompt for c in batch] + [""] * n)
    names = _blocks(model.unet)
    out: dict = {}
    for t in TIMESTEPS:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        x = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * noise
        xx, tt = torch.cat([x, x]), torch.full((2 * n,), t)

        def guided(fn: Callable, xx=xx, tt=tt) -> torch.Tensor:
            c, u = fn(xx, tt, context).chunk(2)
            return u + GUIDANCE * (c - u)

        feats: dict[str, dict] = {"plain": {}, "global": {}, "gated": {}}
        with _keep(reference, names, feats["plain"]), torch.no_grad():
            plain = guided(refs["plain"])
        with _keep(reference, names, feats["global"]), torch.no_grad():
            full = guided(refs["global"])
        rows: dict[str, float] = {}
        for variant in ("as-is", "groupnorm", "fine-only"):
            extra = {
                "as-is": contextlib.nullcontext(),
                "groupnorm": _plain_groupnorm_stats(model.unet, reference),
                "fine-only": _fine_only(),
            }[variant]
            with applied("gated-truth", model, batch, (0, 1), None, 1) as a, torch.no_grad():
                a.on_step(0)
                keep = _keep(model.unet, names, feats["gated"]) if variant == "as-is" else None
                with keep or contextlib.nullcontext(), extra:
                    if variant == "groupnorm":
                        refs["plain"](xx, tt, context)  # GroupNorm statistics to replay
                    gated = guided(a.denoise)
            rows[variant] = _outside_ratio(gated - plain, full - plain, near)
        out[t] = {
            "guided_output": rows,
            "blocks": {
                name: _outside_ratio(
                    feats["gated"][name] - feats["plain"][name],
                    feats["global"][name] - feats["plain"][name],
                    near,
                )
                for name in names
            },
        }
    return out


def main(argv: list[str] | None = None) -> None:
    from bench.toyworld.train_base import single_thread

    single_thread()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=16)
    args = p.parse_args(argv)
    result = measure(args.cases)
    for t, row in result.items():
        print(
            f"t={t}: guided output outside, gated (true masks) / global: "
            + ", ".join(f"{k} {v:.2f}" for k, v in row["guided_output"].items())
        )
        print("  per block: " + ", ".join(f"{k} {v:.2f}" for k, v in row["blocks"].items()))


if __name__ == "__main__":
    main()
