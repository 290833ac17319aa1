"""``python -m pixtention bench NAME [...]``: run a benchmark from the checkout's ``bench/``.

Benchmarks are not part of the installed package (they need the repository and, for retrieval,
the shared benchmark data), so this command finds ``bench/`` beside the package and hands the
remaining arguments to ``bench/NAME.py``'s ``main(argv)``. A benchmark that lacks a package or
its data says what it needs, and where to get it, in one line (``bench/needs.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

BENCHMARKS = (
    "curator",
    "selector",
    "integrator",
    "quality",
    "cli",
    "captioner",
    "reliability",
)
# Python packages each benchmark imports beyond PixTention's own dependencies.
PACKAGES = {"integrator": ("einops", "ldm"), "quality": ("einops", "ldm")}


def _bench_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "bench"


def _say(name: str, message: str) -> int:
    print(f"pixtention bench {name}: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from pixtention.cli.environment import missing_dependency

    script = _bench_dir() / f"{args.name}.py"
    if not script.is_file():
        return _say(args.name, f"{script} not found (benchmarks run from a source checkout)")
    repo = str(_bench_dir().parent)
    if repo not in sys.path:  # benchmarks share helpers as ``bench.*`` modules
        sys.path.insert(0, repo)
    from bench import needs

    missing = needs.missing_package(args.name, PACKAGES.get(args.name, ()))
    if missing:
        return _say(args.name, missing)
    spec = importlib.util.spec_from_file_location(f"pixtention_bench_{args.name}", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in a benchmark look their module up there
    try:
        spec.loader.exec_module(module)
        return int(module.main(list(args.bench_args)) or 0)
    except ModuleNotFoundError as exc:
        line = missing_dependency(exc)
        if line is None and exc.name:
            line = needs.package_line(args.name, exc.name.split(".")[0])
        return _say(args.name, line or str(exc))


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="run a benchmark (" + ", ".join(BENCHMARKS) + "); most understand --quick, --json",
        description="Run a benchmark from bench/; arguments after NAME go to the benchmark "
        "(python -m pixtention bench NAME --help lists them). Needs a source checkout; "
        "curator and selector read the retrieval-bench data, integrator and quality need ldm.",
    )
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_run)
