"""Integrator benchmark: per-step cost of region-gated LoRAs against the plain UNet.

Full-size SD1.5 UNet architecture (random weights), fp32 on CPU, batch 2 (cond + uncond), a
reduced latent. Every configuration is timed in the same run, round by round (the order rotates
each round), and reported as the median over rounds of its time over that round's plain UNet
time; the fastest-round ratio and the spread are printed too, since other processes share the
machine:

plain · capture alone · merged-weights LoRA · unmerged global LoRA (WebUI ``lora_functional``)
· PixTention gated K = 1, 2, 4, 8 (rank 32, kohya's standard targets) · gated K = 4 LoCon
(ResBlock convs too; no target) · a K+1-pass regional baseline for K = 4 (one UNet pass per
region, as latent-couple style tools do).

Also printed: the analytic FLOP floor of each configuration (extra multiply-adds of the
low-rank paths, attention branches and capture over the plain UNet's), and the extra peak
memory of gated K = 4 at a 64×64 latent (``--memory-latent``): the process's peak resident set
during attach + one gated call over its peak during one plain call (``VmHWM``, reset between
the two), which includes the adapters' factors as the session holds them.

``python -m pixtention bench integrator [--quick] [--json] [--latent N] [--rounds N]``
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixtention.integrator import GatedAdapter, MaskConfig, attach  # noqa: E402
from pixtention.integrator.masks import level_of  # noqa: E402
from pixtention.library.factors import LowRank, MappedAdapter, ModuleDelta  # noqa: E402

STANDARD = (
    "attn1.to_q",
    "attn1.to_k",
    "attn1.to_v",
    "attn1.to_out.0",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
    "proj_in",
    "proj_out",
)
LOCON_EXTRA = ("in_layers.2", "out_layers.3", "skip_connection", "emb_layers.1", ".op", ".conv")


def _is_target(name: str, locon: bool) -> bool:
    return name.endswith(STANDARD) or (locon and name.endswith(LOCON_EXTRA))


def random_adapter(
    unet: torch.nn.Module, seed: int, rank: int, *, locon: bool = False
) -> MappedAdapter:
    """Rank-``rank`` random factors on the standard (or LoCon) targets."""
    g = torch.Generator().manual_seed(seed)
    targets = {}
    for name, module in unet.named_modules():
        w = getattr(module, "weight", None)
        if not isinstance(w, torch.Tensor) or w.dim() not in (2, 4) or not _is_target(name, locon):
            continue
        kernel = tuple(w.shape[2:]) if w.dim() == 4 else ()
        down = torch.randn(rank, w.shape[1], *kernel, generator=g) * 0.01
        up = torch.randn(w.shape[0], rank, *((1, 1) if kernel else ()), generator=g) * 0.01
        targets[name] = ModuleDelta(name, "locon" if kernel else "lora", LowRank(down, up, 1.0))
    return MappedAdapter(targets)


def _lowrank_out(module: torch.nn.Module, x: torch.Tensor, f: LowRank) -> torch.Tensor:
    if f.down.dim() == 2:
        return (x @ f.down.T) @ f.up.T * f.scale
    h = torch.nn.functional.conv2d(x, f.down, None, module.stride, module.padding, module.dilation)
    return torch.nn.functional.conv2d(h, f.up) * f.scale


class GlobalHooks:
    """Unmerged global LoRA: ``y + scale·up(down(x))`` on every target, per call."""

    def __init__(self, unet: torch.nn.Module, adapters: list[MappedAdapter]) -> None:
        self.unet, self.adapters, self.handles = unet, adapters, []

    def __enter__(self) -> GlobalHooks:
        modules = dict(self.unet.named_modules())
        for mapped in self.adapters:
            for name, delta in mapped.targets.items():
                self.handles.append(
                    modules[name].register_forward_hook(
                        lambda m, a, y, f=delta.factors: y + _lowrank_out(m, a[0], f)
                    )
                )
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


class Merged:
    """Merged-weights LoRA: ΔW added into the weights in place, subtracted again on exit."""

    def __init__(self, unet: torch.nn.Module, mapped: MappedAdapter) -> None:
        self.unet, self.mapped = unet, mapped

    def _apply(self, sign: float) -> None:
        modules = dict(self.unet.named_modules())
        with torch.no_grad():
            for name, delta in self.mapped.targets.items():
                w = modules[name].weight
                f = delta.factors
                dw = f.up.reshape(f.up.shape[0], -1) @ f.down.reshape(f.rank, -1)
                w += (dw * (sign * f.scale)).reshape(w.shape)

    def __enter__(self) -> Merged:
        self._apply(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._apply(-1.0)


def _peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM) since the last ``_reset_peak``."""
    with open("/proc/self/status") as handle:
        return int(re.search(r"VmHWM:\s+(\d+)", handle.read()).group(1)) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # Linux: reset VmHWM to the current RSS


def _progress(message: str) -> None:
    print(f"[bench integrator] {message}", file=sys.stderr, flush=True)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class MacCounter:
    """Multiply-adds of one plain forward: Linear/Conv2d from shapes, attention matmuls."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet, self.macs, self.handles = unet, 0, []
        self.layers: dict[str, tuple[int, ...]] = {}  # module → tokens (or out H·W) per row

    def __enter__(self) -> MacCounter:
        for name, module in self.unet.named_modules():
            w = getattr(module, "weight", None)
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and isinstance(
                w, torch.Tensor
            ):
                self.handles.append(module.register_forward_hook(self._count(name)))
            if name.endswith(("attn1", "attn2")):
                self.handles.append(
                    module.register_forward_hook(self._attention(name), with_kwargs=True)
                )
        return self

    def _count(self, name: str):
        def hook(module, args, out):
            per_out = module.weight[0].numel()
            self.macs += out.numel() * per_out
            self.layers[name] = tuple(out.shape)

        return hook

    def _attention(self, name: str):
        def hook(module, args, kwargs, out):
            context = kwargs.get("context")
            keys = (
                args[0].shape[1] if context is None or name.endswith("attn1") else context.shape[1]
            )
            self.macs += 2 * out.shape[0] * out.shape[1] * keys * module.to_q.weight.shape[0]
            self.layers[name] = (out.shape[0], out.shape[1], keys, module.to_q.weight.shape[0])

        return hook

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def extra_macs(
    counter: MacCounter,
    modules: dict[str, torch.nn.Module],
    adapters: list[MappedAdapter],
    *,
    latent: int,
    capture: bool,
    gated: bool,
    coverage: float = 1.0,
) -> int:
    """Analytic extra multiply-adds of K low-rank adapters (+ branches and capture) per call.

    ``coverage``: the fraction of the image each adapter's mask covers; pointwise targets
    (Linear on pixels, 1×1 convs) run on those tokens only (the token-sparse path).
    """
    total = 0
    for mapped in adapters:
        for name, delta in mapped.targets.items():
            shape = counter.layers[name]
            f = delta.factors
            module = modules[name]
            if module.weight.dim() == 4:
                hw = shape[0] * shape[2] * shape[3]
                share = coverage if module.weight.shape[2:] == (1, 1) else 1.0
                total += share * hw * f.rank * (module.weight[0].numel() + module.weight.shape[0])
            else:
                tokens = int(torch.tensor(shape[:-1]).prod())
                share = 1.0 if name.endswith(("attn2.to_k", "attn2.to_v")) else coverage
                total += share * tokens * f.rank * (module.weight.shape[1] + module.weight.shape[0])
            if gated and name.endswith("attn2.to_k"):
                b, n, keys, inner = counter.layers[name[: -len(".to_k")]]
                total += 2 * b * n * keys * inner  # this adapter's attention branch
    if capture:
        for key, shape in counter.layers.items():
            if not key.endswith("attn2"):
                continue
            b, n, keys, inner = shape
            found = level_of(n, latent, latent)
            if found and found[0] in (1, 2):  # the "mid" preset
                total += (b // 2) * n * keys * inner  # cond rows: q kᵀ only
    return total


def regions(k: int, latent: int) -> torch.Tensor:
    """K side-by-side concept regions over 3/4 of the width (soft inside, 0 outside) and a
    background quarter — the shape captured masks have once the floor zeroes the rest."""
    out = torch.zeros(k, latent, latent)
    edges = [round(0.75 * latent * i / k) for i in range(k + 1)]
    for i in range(k):
        out[i, :, edges[i] : edges[i + 1]] = 0.9
    return out


def gated(unet: torch.nn.Module, pool: list[MappedAdapter], masks: torch.Tensor):
    """A session gating ``len(masks)`` adapters of ``pool`` by fixed masks."""
    picks = [GatedAdapter(f"a{i}", pool[i], 1.0, ((5, 6),)) for i in range(len(masks))]
    session = attach(unet, picks, MaskConfig(max_adapters=8))
    session.set_masks(masks)
    return session


def unet_call(unet: torch.nn.Module, latent: int):
    """One batch-2 UNet call at ``latent`` (a new timestep each time, like sampling steps)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, latent, latent, generator=g)
    context = torch.randn(2, 77, 768, generator=g)
    step = [0]

    def call() -> None:
        step[0] += 1
        unet(x, torch.full((2,), 999 - step[0] % 999), context)

    return call


def time_configs(configs: dict, call, rounds: int, *, quick: bool, unet, adapters) -> dict:
    """Seconds per call of every configuration, ``rounds`` times, order rotating per round."""
    times: dict[str, list[float]] = {name: [] for name in [*configs, "kplus1_k4"]}
    names = list(configs)
    started = time.perf_counter()
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            with configs[name]():
                if name == "capture":
                    call()  # capture's first call sees every level once
                # gated: the first call after attach builds the per-level mask caches, as
                # every step does while captured masks still change (until they freeze)
                times[name].append(timed(call))
        if quick:  # one plain pass + K single-adapter passes, each measured above
            times["kplus1_k4"].append(times["plain"][-1] + 4 * times["unmerged_global"][-1])
        else:
            t0 = time.perf_counter()
            call()
            for i in range(4):
                with GlobalHooks(unet, [adapters[i]]):
                    call()
            times["kplus1_k4"].append(time.perf_counter() - t0)
        _progress(f"round {r + 1}/{rounds} done at {time.perf_counter() - started:.0f} s")
    return times


def extra_peak_mb(unet: torch.nn.Module, pool: list[MappedAdapter], latent: int) -> float:
    """Peak RSS of attach + one gated K=4 call over that of one plain call, at ``latent``."""
    call = unet_call(unet, latent)
    _reset_peak()
    call()
    plain = _peak_rss_mb()
    _reset_peak()
    with gated(unet, pool, regions(4, latent)):
        call()
    return max(0.0, _peak_rss_mb() - plain)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench integrator", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller latent, fewer rounds (< 3 minutes)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--latent", type=int, default=None, help="latent side (default 32; quick 8)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="timing rounds (default 5; quick 2)"
    )
    parser.add_argument(
        "--memory-latent",
        type=int,
        default=None,
        help="latent side of the peak-memory measurement (default 64; quick: --latent)",
    )
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine two threads stall each "
        "other at every op and swamp the ratios; 0 keeps torch's default)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    latent = args.latent or (8 if args.quick else 32)
    rounds = args.rounds or (2 if args.quick else 5)
    memory_latent = args.memory_latent or (latent if args.quick else 64)
    torch.manual_seed(0)
    from tests.rig.unet import sd15_unet

    started = time.perf_counter()
    unet = sd15_unet()
    modules = dict(unet.named_modules())
    adapters = [random_adapter(unet, seed, args.rank) for seed in range(8)]
    locon = (
        [random_adapter(unet, 100 + seed, args.rank, locon=True) for seed in range(4)]
        if not args.quick
        else []
    )
    everywhere = torch.rand(8, latent, latent, generator=torch.Generator().manual_seed(2))
    everywhere = everywhere * 0.5 + 0.25  # nowhere 0: the dense path
    capture_only = [GatedAdapter("capture", MappedAdapter({}), 1.0, ((5, 6),))]
    configs = {
        "plain": lambda: _Null(),
        "capture": lambda: attach(unet, capture_only),
        "merged": lambda: Merged(unet, adapters[0]),
        "unmerged_global": lambda: GlobalHooks(unet, adapters[:1]),
        **{
            f"gated_k{k}": (lambda k=k: gated(unet, adapters, regions(k, latent)))
            for k in (1, 2, 4, 8)
        },
        "gated_k4_dense": lambda: gated(unet, adapters, everywhere[:4]),
    }
    if locon:
        configs["gated_k4_locon"] = lambda: gated(unet, locon, regions(4, latent))
    call = unet_call(unet, latent)
    with torch.no_grad():
        with MacCounter(unet) as counter:
            call()  # warm-up and shape census
        plain_macs = counter.macs
        _progress(f"built and warmed up in {time.perf_counter() - started:.0f} s")
        times = time_configs(configs, call, rounds, quick=args.quick, unet=unet, adapters=adapters)
        extra_mb = extra_peak_mb(unet, adapters, memory_latent)
        _progress(f"peak memory at latent {memory_latent} measured")
    factors_mb = (
        sum(
            f.down.numel() + f.up.numel()
            for a in adapters[:4]
            for f in (d.factors for d in a.targets.values())
        )
        * 4
        / 2**20
    )

    per_round = {name: [t / p for t, p in zip(v, times["plain"])] for name, v in times.items()}
    ratios = {name: statistics.median(v) for name, v in per_round.items()}
    best = {name: min(v) / min(times["plain"]) for name, v in times.items()}

    def floor(pool: list[MappedAdapter], **kw) -> float:
        return 1 + extra_macs(counter, modules, pool, latent=latent, **kw) / plain_macs

    floors = {
        "merged": 1.0,
        "unmerged_global": floor(adapters[:1], capture=False, gated=False),
        "capture": floor([], capture=True, gated=False),
        **{
            f"gated_k{k}": floor(
                adapters[:k], capture=False, gated=True, coverage=0.75 / k if k > 1 else 1.0
            )
            for k in (1, 2, 4, 8)
        },
        "gated_k4_dense": floor(adapters[:4], capture=False, gated=True),
        "kplus1_k4": 4 + floor(adapters[:4], capture=False, gated=False),
    }
    if locon:
        floors["gated_k4_locon"] = floor(locon, capture=False, gated=True)
    result = {
        "latent": latent,
        "rounds": rounds,
        "rank": args.rank,
        "threads": torch.get_num_threads(),
        "plain_s": statistics.median(times["plain"]),
        **{f"{name}_ratio": ratio for name, ratio in ratios.items() if name != "plain"},
        **{f"{name}_ratio_best": v for name, v in best.items() if name != "plain"},
        **{f"flop_floor_{name.removeprefix('gated_')}": v for name, v in floors.items()},
        "plain_gmacs": plain_macs / 1e9,
        "memory_latent": memory_latent,
        "extra_peak_mb_k4": extra_mb,
        "adapter_factors_mb_k4": factors_mb,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"SD1.5 UNet (random weights), fp32 CPU, batch 2, latent {latent}×{latent}, rank "
        f"{args.rank}, {torch.get_num_threads()} thread(s), {rounds} round(s); ratio = median over rounds of time / that round's plain"
    )
    print(f"plain: {result['plain_s']:.3f} s per step (median), {plain_macs / 1e9:.1f} GMAC")
    print(f"{'configuration':<18}{'ratio':>8}{'spread':>16}{'best':>8}{'FLOP floor':>12}")
    for name in ratios:
        if name == "plain":
            continue
        spread = f"{min(per_round[name]):.2f}–{max(per_round[name]):.2f}"
        print(
            f"{name:<18}{ratios[name]:>8.3f}{spread:>16}{best[name]:>8.3f}"
            f"{floors.get(name, float('nan')):>12.3f}"
        )
    print(
        f"extra peak memory, gated K=4 at latent {memory_latent}: {extra_mb:.0f} MB "
        f"(target ≤ adapter factors {factors_mb:.0f} MB + 150 MB)"
    )
    print(f"total {result['seconds']:.0f} s")
    return 0


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
