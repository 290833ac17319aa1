"""Curator benchmark: cold index, no-change refresh, one new file, store size, peak memory.

Libraries: the real Civitai library (``civitai_lora_library.jsonl``, each model written as a tiny
LoRA file with its real metadata in a ``.civitai.info`` sidecar) and synthetic libraries of 1k,
10k and 100k adapters with realistic kohya headers (``tests/rig/factory.py``). Each library runs
in its own subprocess so peak memory is its own. Side by side in the same run, the no-change
refresh is compared with re-reading every header (what a tool without a stat cache does).

    python -m pixtention bench curator [--quick] [--json] [--data DIR] [--sizes 1000,10000]
        [--civitai-limit N (0: skip the Civitai library)] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.civitai_sidecar import civitai_info
from bench.needs import DEFAULT_DATA, REPO, missing_data

TARGETS = {"cold_10k_s": 120.0, "refresh_10k_ms": 200.0, "one_new_10k_s": 2.0}


def _tiny_tensors(index: int):
    import torch

    stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    down = torch.full((1, 768), (index % 251) / 1000, dtype=torch.float16)
    return {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": torch.zeros(320, 1)}


def write_civitai_library(data: Path, folder: Path, limit: int | None) -> int:
    """Each Civitai model → ``<file>.safetensors`` (tiny) + its real ``.civitai.info``."""
    from safetensors.torch import save_file

    source = data / "civitai_lora_library.jsonl"
    if not source.is_file():
        raise SystemExit(f"bench curator: {source} not found (pass --data DIR)")
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    count = 0
    with open(source, encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and count >= limit:
                break
            model = json.loads(line)
            version = (model.get("versions") or [{}])[0]
            files = [
                f for f in version.get("files", []) if f.get("name", "").endswith(".safetensors")
            ]
            stem = files[0]["name"][: -len(".safetensors")] if files else model["name"]
            stem = re.sub(r"[^\w.\-]+", "_", stem).strip("._") or f"model_{model['model_id']}"
            if stem.lower() in used:
                stem = f"{stem}_{model['model_id']}"
            used.add(stem.lower())
            header = {"ss_output_name": stem, "ss_network_dim": "1", "ss_network_alpha": "1"}
            save_file(_tiny_tensors(count), str(folder / f"{stem}.safetensors"), metadata=header)
            info = civitai_info(model, version)
            (folder / f"{stem}.civitai.info").write_text(json.dumps(info), encoding="utf-8")
            count += 1
    return count


def write_synthetic(folder: Path, count: int) -> int:
    sys.path.insert(0, str(REPO))
    from tests.rig.factory import write_synthetic_library

    return len(write_synthetic_library(folder, count))


def _store_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.iterdir() if p.is_file())


def _reread_headers(folder: Path) -> float:
    """The baseline a tool without a stat cache pays on every start: read every header."""
    from pixtention.library import read_header

    started = time.perf_counter()
    for path in folder.rglob("*.safetensors"):
        read_header(path)
    return time.perf_counter() - started


class _StageClock:
    """Progress callback that records how long each indexing stage took (wall seconds)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage, self._since = "", 0.0

    def __call__(self, progress) -> None:
        if progress.stage != self._stage:
            self.stop()
            self._stage, self._since = progress.stage, time.perf_counter()

    def stop(self) -> None:
        if self._stage:
            elapsed = time.perf_counter() - self._since
            self.seconds[self._stage] = round(self.seconds.get(self._stage, 0.0) + elapsed, 2)
            self._stage = ""


def run_one(kind: str, size: int | None, data: Path, work: Path, queries: int) -> dict:
    """One library, measured inside this (child) process."""
    import numpy as np

    from pixtention.curator import index_folder, open_library
    from pixtention.curator.embedder import make_embedder
    from pixtention.curator.precision import native_dtype

    folder, store = work / "lib", work / "store"
    t = time.perf_counter()
    n = (
        write_civitai_library(data, folder, size)
        if kind == "civitai"
        else write_synthetic(folder, size)
    )
    write_s = time.perf_counter() - t

    embedder = make_embedder()
    stages = _StageClock()
    t, cpu = time.perf_counter(), time.process_time()
    cold = index_folder(folder, store, captions=False, embedder=embedder, progress=stages)
    cold_s, cold_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    stages.stop()

    refresh = []
    for _ in range(5):
        t = time.perf_counter()
        report = index_folder(folder, store, captions=False, embedder=embedder)
        refresh.append(time.perf_counter() - t)
        assert report.unchanged == n and not report.published, report
    reread_s = _reread_headers(folder)

    from safetensors.torch import save_file

    new = folder / "zz_brand_new_watercolor_fox.safetensors"
    t, cpu = time.perf_counter(), time.process_time()
    save_file(_tiny_tensors(7), str(new), metadata={"ss_output_name": new.stem,
              "ss_training_comment": "watercolor fox painting"})  # fmt: skip
    one = index_folder(folder, store, captions=False, embedder=embedder)
    one_index_s = time.perf_counter() - t
    lib = open_library(store, embedder=embedder)
    found = lib.find(new.stem)
    _, ids = lib.search(lib.embed([found.document]), 5, 4)
    one_new_s, one_new_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    assert one.new == 1 and found is not None and found.id in ids[0]
    assert len(lib) == cold.adapters + 1

    t = time.perf_counter()
    new.unlink()
    gone = index_folder(folder, store, captions=False, embedder=embedder)
    after = open_library(store, embedder=embedder)
    remove_one_s = time.perf_counter() - t
    assert gone.removed == 1 and after.find(new.stem) is None and len(after) == cold.adapters

    prompts = [f"{r.title}, masterpiece" for r in lib.records[: max(queries, 1)]]
    latencies = []
    for prompt in prompts:
        t = time.perf_counter()
        lib.search(lib.embed([prompt]), 8, 8)
        latencies.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    open_library(store)
    open_s = time.perf_counter() - t
    return {
        "library": kind if kind == "civitai" else f"synthetic-{size}",
        "adapters": n,
        "indexed": cold.adapters,
        "problems": len(cold.problems),
        "clusters": cold.clusters,
        "write_files_s": round(write_s, 2),
        "cold_index_s": round(cold_s, 2),
        "cold_files_per_s": round(n / cold_s, 1),
        "cold_cpu_s": round(cold_cpu_s, 2),  # all threads; less sensitive to a busy machine
        "cold_stages_s": stages.seconds,
        "embed_dtype": native_dtype(embedder),
        "load_average": round(os.getloadavg()[0], 2),
        "refresh_ms": round(statistics.median(refresh) * 1000, 1),
        "reread_headers_ms": round(reread_s * 1000, 1),
        "refresh_speedup_vs_reread": round(reread_s / statistics.median(refresh), 1),
        "one_new_file_s": round(one_new_s, 3),
        "one_new_cpu_s": round(one_new_cpu_s, 3),  # this process only: robust to load
        "one_new_index_s": round(one_index_s, 3),
        "remove_one_file_s": round(remove_one_s, 3),
        "open_library_ms": round(open_s * 1000, 1),
        "query_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "query_p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "store_mb": round(_store_bytes(store) / 1e6, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="pixtention-bench-", dir=args.workdir))
    try:
        result = run_one(args.kind, args.size, Path(args.data), work, args.queries)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


def _spawn(kind: str, size: int | None, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "bench.curator", "--child", kind, "--data", str(args.data),
           "--queries", str(args.queries)]  # fmt: skip
    if size is not None:
        cmd += ["--size", str(size)]
    if args.workdir:
        cmd += ["--workdir", args.workdir]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"bench curator: {kind} {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratios(rows: list[dict]) -> dict:
    """Measured / target for the 10k figures (≤ 1 meets the target)."""
    ten_k = next((r for r in rows if r["library"] == "synthetic-10000"), None)
    if ten_k is None:
        return {}
    return {
        "cold_10k_vs_target": round(ten_k["cold_index_s"] / TARGETS["cold_10k_s"], 3),
        "refresh_10k_vs_target": round(ten_k["refresh_ms"] / TARGETS["refresh_10k_ms"], 3),
        "one_new_10k_vs_target": round(ten_k["one_new_file_s"] / TARGETS["one_new_10k_s"], 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixtention bench curator")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1k libraries only: the first 1,000 Civitai models and a synthetic 1k (about 10 "
        "minutes at load 10 on 2 cores for 2 minutes of CPU; mostly embedding)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help=f"retrieval-bench folder (default {DEFAULT_DATA})"
    )
    parser.add_argument(
        "--sizes", help='synthetic sizes, e.g. 1000,10000 ("" for none; default by mode)'
    )
    parser.add_argument(
        "--civitai-limit", type=int, help="first N Civitai models only (0: skip that library)"
    )
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--workdir", help="where the libraries are written (default: /tmp)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.kind = args.child
        return _child(args)

    sizes = [int(s) for s in args.sizes.split(",") if s] if args.sizes is not None else (
        [1000] if args.quick else [1000, 10_000, 100_000]
    )  # fmt: skip
    civitai_limit = args.civitai_limit
    if civitai_limit is None and args.quick:
        civitai_limit = 1000
    civitai = [] if civitai_limit == 0 else [("civitai", civitai_limit)]
    need = civitai and missing_data(
        "curator",
        Path(args.data),
        ("civitai_lora_library.jsonl",),
        "or --civitai-limit 0 for the synthetic libraries alone",
    )
    if need:
        print(need, file=sys.stderr)
        return 2
    rows = []
    for kind, size in civitai + [("synthetic", s) for s in sizes]:
        row = _spawn(kind, size, args)
        rows.append(row)
        if not args.json:
            print(
                f"{row['library']:>16}: {row['adapters']:>6} adapters  cold {row['cold_index_s']:>7.1f} s"
                f" ({row['cold_files_per_s']:.0f}/s, cpu {row['cold_cpu_s']:.0f} s)  refresh {row['refresh_ms']:>6.1f} ms"
                f" (re-reading headers {row['reread_headers_ms']:.0f} ms,"
                f" ×{row['refresh_speedup_vs_reread']})  one new {row['one_new_file_s']:.2f} s"
                f" (cpu {row['one_new_cpu_s']:.2f} s)"
                f"  query p50/p95 {row['query_p50_ms']}/{row['query_p95_ms']} ms"
                f"  store {row['store_mb']} MB  peak {row['peak_rss_mb']} MB"
                f"  (load {row['load_average']}; cold stages {row['cold_stages_s']},"
                f" embedding in {row['embed_dtype']}; remove one {row['remove_one_file_s']:.2f} s)",
                flush=True,
            )
    result = {"targets": TARGETS, "libraries": rows, "ratios": _ratios(rows)}
    if args.json:
        print(json.dumps(result, indent=1))
    elif result["ratios"]:
        print("10k measured / target:", result["ratios"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
