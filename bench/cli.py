"""CLI benchmark: wall time of ``python -m pixtention suggest`` on a 1k store, beside the cost
of starting Python and importing what it needs.

Each command runs in a fresh process, as a person typing it would; its wall and CPU time
(children's ``getrusage``) are the median over ``--rounds``, and the rows run interleaved (round
by round) so a load change hits every row alike. One more child times the stages of a suggest
inside the process (imports, opening the store, loading the embedder, the first ``select``).
Target: ``suggest`` on a 1k store ≤ 2 s wall on an idle machine.

    python -m pixtention bench cli [--quick] [--json] [--size N] [--rounds N] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SUGGEST_S = 2.0
PROMPTS = (
    "a knight in an autumn forest, watercolor",
    "pixel art of a red dragon over a neon city at night",
    "portrait of a cat wearing steampunk goggles, oil painting",
    "a samurai in the rain, ink wash painting",
    "a castle on a cliff at sunset, highly detailed",
)
# The selector computes its cosines in torch and sets its query thread's torch thread count
# (bench selector measured why): with the numpy query embedder those are the only torch imports
# left in a suggest. This row runs the same suggest with the products in numpy and the thread
# set-up skipped while torch is not loaded, to show what a torch-free suggest costs.
_NUMPY_COSINE = """
import sys
import numpy as np
import pixtention.selector.select  # noqa: F401 (loads every selector module)
from pixtention.selector import worker
def init_thread():
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    worker._local.is_query_thread = True
worker._init_thread = init_thread
def cosine(q, v):
    q = np.ascontiguousarray(q, dtype=np.float32)
    v = np.ascontiguousarray(v, dtype=np.float32)
    return q @ v.T if len(q) and len(v) else np.zeros((len(q), len(v)), np.float32)
for name, module in list(sys.modules.items()):
    if name.startswith("pixtention.selector") and hasattr(module, "cosine"):
        module.cosine = cosine
from pixtention.cli import main
sys.exit(main(sys.argv[1:]))
"""
_STAGES = """
import json, sys, time
t0 = time.perf_counter()
import pixtention.cli
t1 = time.perf_counter()
from pixtention.cli import models
from pixtention.curator.library import open_library
from pixtention.selector.select import select
t2 = time.perf_counter()
library = open_library(sys.argv[1], embedder=models.query_embedder(None))
t3 = time.perf_counter()
library.embed(["warm up"])
t4 = time.perf_counter()
select(sys.argv[2], library)
t5 = time.perf_counter()
print(json.dumps({"import_cli_s": t1 - t0, "import_selector_curator_s": t2 - t1,
                  "open_store_s": t3 - t2, "load_embedder_s": t4 - t3, "first_select_s": t5 - t4,
                  "torch_imported": "torch" in sys.modules,
                  "transformers_imported": "transformers" in sys.modules}))
"""


def build_store(work: Path, size: int) -> Path:
    """A synthetic library of ``size`` adapters, indexed without captions."""
    sys.path.insert(0, str(REPO))
    from pixtention.curator.indexer import index_folder
    from tests.rig.factory import write_synthetic_library

    write_synthetic_library(work / "lib", size)
    report = index_folder(work / "lib", work / "store", captions=False)
    assert report.adapters == size, report
    return work / "store"


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bench cli: {' '.join(cmd[:4])} … failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def commands(store: Path) -> dict[str, list[str] | None]:
    """The rows: what each one runs (``None`` for the suggest row, whose prompt changes)."""
    python = sys.executable
    return {
        "python -c pass": [python, "-c", "pass"],
        "import pixtention": [python, "-c", "import pixtention"],
        "python -m pixtention --help": [python, "-m", "pixtention", "--help"],
        "import numpy, torch": [python, "-c", "import numpy, torch"],
        "import transformers model classes": [
            python, "-c", "import torch; from transformers import AutoModel, AutoTokenizer",
        ],
        "suggest (1k store, --json)": None,
        "suggest, selector without torch": None,
    }  # fmt: skip


def measure(store: Path, rounds: int, work: Path) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(REPO)
    rows = commands(store)
    walls: dict[str, list[float]] = {name: [] for name in rows}
    cpus: dict[str, list[float]] = {name: [] for name in rows}
    picks = 0
    for i in range(rounds):
        for name, cmd in rows.items():
            if cmd is None:
                prompt = PROMPTS[i % len(PROMPTS)]
                head = ["-c", _NUMPY_COSINE] if "without torch" in name else ["-m", "pixtention"]
                cmd = [sys.executable, *head, "suggest", prompt, "--store", str(store), "--json"]
            wall, cpu, out = _timed(cmd, env, work)
            walls[name].append(wall)
            cpus[name].append(cpu)
            if name == "suggest (1k store, --json)":
                picks += len(json.loads(out))
    _, _, stages = _timed([sys.executable, "-c", _STAGES, str(store), PROMPTS[0]], env, work)
    table = {
        name: {
            "wall_p50_s": round(statistics.median(walls[name]), 3),
            "wall_min_s": round(min(walls[name]), 3),
            "cpu_p50_s": round(statistics.median(cpus[name]), 3),
        }
        for name in rows
    }
    suggest = table["suggest (1k store, --json)"]
    return {
        "rounds": rounds,
        "load_average": round(os.getloadavg()[0], 2),
        "commands": table,
        "suggest_stages_s": {
            k: round(v, 3) if isinstance(v, float) else v for k, v in json.loads(stages).items()
        },
        "picks_per_prompt": round(picks / rounds, 2),
        "suggest_vs_target": round(suggest["wall_p50_s"] / TARGET_SUGGEST_S, 3),
        "suggest_vs_import_torch": round(
            suggest["wall_p50_s"] / table["import numpy, torch"]["wall_p50_s"], 2
        ),
    }


def _print(result: dict, size: int) -> None:
    print(f"{'command':<38}{'wall p50':>10}{'wall min':>10}{'cpu p50':>10}")
    for name, row in result["commands"].items():
        print(f"{name:<38}{row['wall_p50_s']:>9.2f}s{row['wall_min_s']:>9.2f}s"
              f"{row['cpu_p50_s']:>9.2f}s")  # fmt: skip
    stages = ", ".join(
        f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}"
        for k, v in result["suggest_stages_s"].items()
    )
    print(f"suggest's stages in one process: {stages}")
    print(
        f"suggest on {size} adapters: {result['suggest_vs_target']:.2f} × the "
        f"{TARGET_SUGGEST_S:g} s target, {result['suggest_vs_import_torch']:.2f} × "
        f"`import numpy, torch` (load average {result['load_average']}, "
        f"{result['rounds']} rounds)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixtention bench cli")
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds instead of 7 (about a minute)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size", type=int, default=1000, help="adapters in the store")
    parser.add_argument("--rounds", type=int, default=None, help="fresh processes per row")
    parser.add_argument("--work", type=Path, default=None, help="keep the library and store here")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    work = args.work or Path(tempfile.mkdtemp(prefix="pixtention-bench-cli-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        store = work / "store" if (work / "store").is_dir() else build_store(work, args.size)
        result = measure(store, rounds, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result |= {"adapters": args.size, "target_suggest_s": TARGET_SUGGEST_S}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print(result, args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
