"""``python -m pixtention bench NAME [...]``: run a benchmark from the checkout's ``bench/``.

Benchmarks are not part of the installed package (they need the repository and, for retrieval,
the shared benchmark data), so this command finds ``bench/`` beside the package and hands the
remaining arguments to ``bench/NAME.py``'s ``main(argv)``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

BENCHMARKS = ("curator", "selector", "integrator")


def _bench_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "bench"


def _run(args: argparse.Namespace) -> int:
    script = _bench_dir() / f"{args.name}.py"
    if not script.is_file():
        print(
            f"pixtention: benchmark {script} not found (benchmarks run from a source checkout)",
            file=sys.stderr,
        )
        return 2
    repo = str(_bench_dir().parent)
    if repo not in sys.path:  # benchmarks share helpers as ``bench.*`` modules
        sys.path.insert(0, repo)
    spec = importlib.util.spec_from_file_location(f"pixtention_bench_{args.name}", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(list(args.bench_args)) or 0)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="run a benchmark (curator, selector, integrator); --quick and --json are understood",
        description="Run a benchmark from bench/; arguments after NAME go to the benchmark.",
    )
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_run)
