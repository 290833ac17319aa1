"""Integrator benchmark: per-step cost of region-gated LoRAs against the plain UNet.

Full-size SD1.5 UNet architecture (random weights), fp32 on CPU, batch 2 (cond + uncond), a
reduced latent, one torch thread. Configurations (``bench/integrator_configs.py``):

plain · capture alone · merged-weights LoRA · unmerged global LoRA (WebUI ``lora_functional``)
· PixTention gated K = 1, 2, 4, 8 (rank 32, kohya's standard targets) · gated K = 4 with masks
covering everything (the dense path) · gated K = 4 LoCon (ResBlock convs too; no target) · a
K+1-pass regional baseline for K = 4 (one UNet pass per region, as latent-couple style tools do).

Measurement, made for a shared 2-core machine:

- Interleaved: every timed configuration call sits between two timed plain calls, and its ratio
  is taken over the mean of those two neighbours; a configuration's figure is the median of its
  ratios over the rounds (the order of configurations rotates each round). Gated sessions (and
  capture) run one untimed call after attaching — a generation attaches once for all its steps
  — then get their masks handed over again, so the timed call rebuilds its per-level mask
  caches as every step does while captured masks still change.
- Wall time and the thread's CPU time (``time.thread_time``: not inflated while another process
  holds the core) are both reported. ``best`` is a configuration's fastest call over the
  fastest of its neighbouring plain calls.
- Allocator: glibc malloc returns large blocks to the kernel and maps them again on the next
  call, so every step pays page faults whose number depends on the heap's history (plain calls
  varied 3.4–5.4 s from that alone, and a gated call left the next plain call faulting).
  ``--malloc steady`` (default) turns that off for every configuration alike (``mallopt``: no
  mmap, no trimming), which is what tcmalloc does anyway (the WebUI's Linux launch script
  preloads it when installed); ``--malloc default`` keeps glibc's behaviour.

Also printed: the analytic FLOP floor of each configuration (extra multiply-adds of the
low-rank paths, attention branches and capture over the plain UNet's), and the extra peak
memory of gated K = 4 at a 64×64 latent (``--memory-latent``, measured first, with the default
allocator): the process's peak resident set during attach + one gated call over its peak during
one plain call (``VmHWM``, reset between the two), which includes the adapters' factors.

``python -m pixtention bench integrator [--quick] [--json] [--latent N] [--rounds N]``
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.integrator_configs import (  # noqa: E402
    Gated,
    GlobalHooks,
    MacCounter,
    Merged,
    extra_macs,
    random_adapter,
    regions,
    unet_call,
)
from pixtention.library.factors import MappedAdapter  # noqa: E402

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters


def steady_malloc() -> bool:
    """Keep freed memory in glibc's heap (no mmap, no trim); False if this is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**62))


def _peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM) since the last ``_reset_peak``."""
    with open("/proc/self/status") as handle:
        return int(re.search(r"VmHWM:\s+(\d+)", handle.read()).group(1)) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # Linux: reset VmHWM to the current RSS


def _progress(message: str) -> None:
    print(f"[bench integrator] {message}", file=sys.stderr, flush=True)


def timed(fn, cpu_clock) -> tuple[float, float]:
    """Wall and CPU seconds of one ``fn()``."""
    w0, c0 = time.perf_counter(), cpu_clock()
    fn()
    return time.perf_counter() - w0, cpu_clock() - c0


def kplus1(call, unet: torch.nn.Module, adapters: list[MappedAdapter]) -> None:
    """One step of the K+1-pass regional baseline: a plain pass and one pass per adapter."""
    call()
    for i in range(4):
        with GlobalHooks(unet, [adapters[i]]):
            call()


class Timings:
    """Per configuration: wall and CPU seconds of each timed call and its ratios over the mean
    of the plain calls either side of it."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[tuple[float, float]]] = {"plain": []}
        self.ratios: dict[str, list[tuple[float, float]]] = {}
        self.neighbours: dict[str, list[float]] = {}  # wall seconds of the plain calls beside
        self._pending: list[tuple[str, tuple[float, float]]] = []

    def plain(self, t: tuple[float, float]) -> None:
        before = self.seconds["plain"][-1] if self.seconds["plain"] else t
        for name, mine in self._pending:
            self.ratios.setdefault(name, []).append(
                tuple(m / ((b + a) / 2) for m, b, a in zip(mine, before, t))
            )
            self.neighbours.setdefault(name, []).extend((before[0], t[0]))
        self._pending.clear()
        self.seconds["plain"].append(t)

    def config(self, name: str, t: tuple[float, float]) -> None:
        self.seconds.setdefault(name, []).append(t)
        self._pending.append((name, t))

    def median(self, name: str, which: int) -> float:
        return statistics.median(r[which] for r in self.ratios[name])

    def best(self, name: str) -> float:
        return min(t[0] for t in self.seconds[name]) / min(self.neighbours[name])

    def spread(self, name: str) -> tuple[float, float]:
        walls = [r[0] for r in self.ratios[name]]
        return min(walls), max(walls)


def time_configs(configs: dict, call, rounds: int, *, quick: bool, unet, adapters) -> Timings:
    """Every configuration ``rounds`` times, each timed call between two timed plain calls."""
    cpu_clock = time.thread_time if torch.get_num_threads() == 1 else time.process_time
    out = Timings()
    names = list(configs)
    started = time.perf_counter()
    out.plain(timed(call, cpu_clock))
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            with configs[name]() as config:
                if isinstance(config, Gated):
                    call()  # untimed: the first call after attaching (module docstring)
                    config.refresh()
                out.config(name, timed(call, cpu_clock))
            out.plain(timed(call, cpu_clock))
        if quick:  # one plain pass + K single-adapter passes, each measured above
            plain, single = out.seconds["plain"][-1], out.seconds["unmerged_global"][-1]
            out.config("kplus1_k4", tuple(p + 4 * s for p, s in zip(plain, single)))
        else:
            out.config("kplus1_k4", timed(lambda: kplus1(call, unet, adapters), cpu_clock))
        out.plain(timed(call, cpu_clock))
        _progress(f"round {r + 1}/{rounds} done at {time.perf_counter() - started:.0f} s")
    return out


def extra_peak_mb(unet: torch.nn.Module, pool: list[MappedAdapter], latent: int) -> float:
    """Peak RSS of attach + one gated K=4 call over that of one plain call, at ``latent``."""
    call = unet_call(unet, latent)
    _reset_peak()
    call()
    plain = _peak_rss_mb()
    _reset_peak()
    with Gated(unet, pool, regions(4, latent)):
        call()
    return max(0.0, _peak_rss_mb() - plain)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench integrator", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="latent 8, 2 rounds, no LoCon: about 2 minutes at load 3-5 on 2 cores, up to 8 "
        "under heavy load",
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
    parser.add_argument(
        "--malloc",
        choices=("steady", "default"),
        default="steady",
        help="glibc allocator during timing: steady (no mmap/trim, as a tcmalloc preload) "
        "or glibc's default",
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
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
    configs = {
        "capture": lambda: Gated(unet, [], everywhere[:0]),
        "merged": lambda: Merged(unet, adapters[0]),
        "unmerged_global": lambda: GlobalHooks(unet, adapters[:1]),
        **{
            f"gated_k{k}": (lambda k=k: Gated(unet, adapters, regions(k, latent)))
            for k in (1, 2, 4, 8)
        },
        "gated_k4_dense": lambda: Gated(unet, adapters, everywhere[:4]),
    }
    if locon:
        configs["gated_k4_locon"] = lambda: Gated(unet, locon, regions(4, latent))
    call = unet_call(unet, latent)
    with torch.no_grad():
        with MacCounter(unet) as counter:
            call()  # warm-up and shape census
        plain_macs = counter.macs
        extra_mb = extra_peak_mb(unet, adapters, memory_latent)
        _progress(f"built, warmed up, peak memory at latent {memory_latent} measured")
        steady = args.malloc == "steady" and steady_malloc()
        timings = time_configs(
            configs, call, rounds, quick=args.quick, unet=unet, adapters=adapters
        )
    result = summarise(args, latent, rounds, memory_latent, steady, timings, extra_mb)
    floors = flop_floors(counter, modules, adapters, locon, latent)
    result.update({f"flop_floor_{n.removeprefix('gated_')}": v for n, v in floors.items()})
    result["plain_gmacs"] = plain_macs / 1e9
    result["adapter_factors_mb_k4"] = factors_mb(adapters[:4])
    result["seconds"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result, timings, floors)
    return 0


def factors_mb(adapters: list[MappedAdapter]) -> float:
    """Size of the adapters' low-rank factors in fp32, MB."""
    count = sum(
        d.factors.down.numel() + d.factors.up.numel() for a in adapters for d in a.targets.values()
    )
    return count * 4 / 2**20


def flop_floors(counter, modules, adapters, locon, latent: int) -> dict[str, float]:
    """The analytic FLOP floor of every configuration (1 = the plain UNet's multiply-adds)."""

    def floor(pool: list[MappedAdapter], **kw) -> float:
        return 1 + extra_macs(counter, modules, pool, latent=latent, **kw) / counter.macs

    floors = {
        "capture": floor([], capture=True, gated=False),
        "merged": 1.0,
        "unmerged_global": floor(adapters[:1], capture=False, gated=False),
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
    return floors


def summarise(args, latent, rounds, memory_latent, steady, timings: Timings, extra_mb) -> dict:
    """The JSON object: the issue's keys (wall ratios) plus CPU ratios, best and spread."""
    names = list(timings.ratios)
    plain = timings.seconds["plain"]
    result = {
        "latent": latent,
        "rounds": rounds,
        "rank": args.rank,
        "threads": torch.get_num_threads(),
        "malloc": "steady" if steady else "default",
        "plain_s": statistics.median(t[0] for t in plain),
        "plain_cpu_s": statistics.median(t[1] for t in plain),
        **{f"{n}_ratio": timings.median(n, 0) for n in names},
        **{f"{n}_cpu_ratio": timings.median(n, 1) for n in names},
        **{f"{n}_ratio_best": timings.best(n) for n in names},
        "memory_latent": memory_latent,
        "extra_peak_mb_k4": extra_mb,
    }
    return result


def print_table(result: dict, timings: Timings, floors: dict[str, float]) -> None:
    print(
        f"SD1.5 UNet (random weights), fp32 CPU, batch 2, latent {result['latent']}×"
        f"{result['latent']}, rank {result['rank']}, {result['threads']} thread(s), "
        f"{result['rounds']} round(s), malloc {result['malloc']}; ratio = median over rounds of "
        f"time / mean of the plain calls either side"
    )
    print(
        f"plain: {result['plain_s']:.3f} s wall, {result['plain_cpu_s']:.3f} s CPU per step "
        f"(median), {result['plain_gmacs']:.1f} GMAC"
    )
    print(f"{'configuration':<18}{'wall':>8}{'spread':>14}{'CPU':>8}{'best':>8}{'FLOP floor':>12}")
    for name in timings.ratios:
        low, high = timings.spread(name)
        print(
            f"{name:<18}{result[f'{name}_ratio']:>8.3f}{f'{low:.2f}–{high:.2f}':>14}"
            f"{result[f'{name}_cpu_ratio']:>8.3f}{result[f'{name}_ratio_best']:>8.3f}"
            f"{floors.get(name, float('nan')):>12.3f}"
        )
    print(
        f"extra peak memory, gated K=4 at latent {result['memory_latent']}: "
        f"{result['extra_peak_mb_k4']:.0f} MB (target ≤ adapter factors "
        f"{result['adapter_factors_mb_k4']:.0f} MB + 150 MB)"
    )
    print(f"total {result['seconds']:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
