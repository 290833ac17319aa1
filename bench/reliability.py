"""Reliability suite (issue 12): hostile files, SIGKILLed indexers, concurrent requests, damage.

    python -m pixtention bench reliability [--quick] [--json] [--workdir DIR] [--budget SECONDS]

Four parts, each counted as "tried" and "handled", in a temporary folder (``--workdir`` keeps it):

- **hostile inputs**: a Lora folder full of what downloads can hold — decompression-bomb previews,
  sidecars linked to ``/proc/self/environ`` and to files outside the folder, FIFOs, 100 MB
  header values, terminal escapes and newlines in names and titles, non-UTF-8 names, a pickle
  whose unpickling would leave a marker, broken and disguised files. One index run (a
  subprocess, so a hang is caught) must finish, keep every good adapter, and neutralise each.
- **kills**: an indexer SIGKILLed at progress points and at random moments, with files added,
  changed and removed between kills, and two indexers racing on one store; readers open the
  store after every kill; ``entries_lost`` counts adapters missing after the final run.
- **concurrent requests**: the REST routes served by uvicorn on 127.0.0.1 only (in-process when
  FastAPI or uvicorn is missing), hit in parallel — status, suggest, adapters, clusters — while a
  re-index runs; and fifty first ``status()`` calls on a fresh service, which must open the store
  once.
- **store damages**: a good store, copied, then damaged one way each (zero-byte, garbage page,
  garbage header, planted links for the catalog, its ``-wal`` and the lock, folders in their
  place, vector files missing, garbled, crafted or named ``../victim``, garbage metadata, a
  read-only store and a full disk when ``unshare`` allows). A reader must answer or say one line;
  the next index run must rebuild a complete, sound store.

``--json`` prints exactly the contract keys: hostile_inputs_tried, hostile_inputs_handled, kills,
entries_lost, concurrent_requests, concurrent_requests_ok, store_damages,
store_damages_recovered. The text report also names every input that was not handled.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import pickle
import random
import re
import resource
import select
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEYS = (
    "hostile_inputs_tried",
    "hostile_inputs_handled",
    "kills",
    "entries_lost",
    "concurrent_requests",
    "concurrent_requests_ok",
    "store_damages",
    "store_damages_recovered",
)
SECRET = "PIXTENTION_BENCH_SECRET=0d6f1e2c"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
THEMES = {
    "watercolor": ("Soft Watercolor Painting", ["watercolor", "painting", "style"]),
    "cyberpunk": ("Neon Cyberpunk City", ["cyberpunk", "city", "neon"]),
    "armor": ("Medieval Knight Armor", ["armor", "knight", "clothing"]),
    "cats": ("Fluffy Cat Companion", ["cat", "kitten", "animal"]),
    "forest": ("Autumn Forest Scenery", ["forest", "autumn", "background"]),
    "dragon": ("Red Dragon Creature", ["dragon", "monster", "fantasy"]),
}
PROMPTS = (
    "a knight in shining armor, watercolor painting",
    "a red dragon over a neon cyberpunk city at night",
    "a fluffy cat in an autumn forest",
    "portrait of a knight, soft watercolor",
    "neon city streets, rain, cyberpunk",
)


# -- a cheap embedder and tiny real adapters ---------------------------------------------------


class HashEmbedder:
    """A deterministic bag-of-words embedder: no model, still meaningful for retrieval."""

    def __init__(self, dim: int = 64) -> None:
        self.id = f"bench-hash-{dim}"
        self.dim = dim

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            out[i, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def stub_captioner():
    """The real ``TransformersCaptioner`` (so previews open through its code path) with a stub
    model and processor instead of BLIP: no download, a fixed caption per readable image."""
    import torch

    from pixtention.curator.captioner import TransformersCaptioner

    class Processor:
        def __call__(self, images, return_tensors):
            return {"pixel_values": torch.zeros(len(images), 1)}

        def batch_decode(self, tokens, skip_special_tokens):
            return ["a small preview picture"] * len(tokens)

    class Model:
        def generate(self, pixel_values, max_new_tokens):
            return pixel_values

    captioner = TransformersCaptioner("bench-stub-captioner", batch_size=4)
    captioner._model, captioner._processor = Model(), Processor()
    return captioner


_TARGETS = (
    ("down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 768, 320),
    ("down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v", 768, 320),
    ("up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q", 640, 640),
)


def write_adapter(
    path: Path,
    seed: int,
    theme: str | None = None,
    metadata: dict[str, str] | None = None,
    preview: bool = False,
) -> Path:
    """A tiny real SD1 kohya LoRA (rank 2), with a civitai sidecar when ``theme`` is given."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for stem, fan_in, fan_out in _TARGETS:
        tensors[f"lora_unet_{stem}.lora_down.weight"] = torch.randn(2, fan_in, generator=gen)
        tensors[f"lora_unet_{stem}.lora_up.weight"] = torch.randn(fan_out, 2, generator=gen) / 10
        tensors[f"lora_unet_{stem}.alpha"] = torch.tensor(2.0)
    header = {"ss_network_dim": "2", "ss_network_alpha": "2", "ss_seed": str(seed)}
    header.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=header)
    stem = path.name[: -len(".safetensors")]
    if theme is not None:
        title, tags = THEMES[theme]
        info = {"id": seed, "modelId": seed + 1000, "name": "v1", "baseModel": "SD 1.5",
                "trainedWords": [tags[0]], "model": {"name": f"{title} {seed}", "tags": tags,
                "type": "LORA", "description": f"{title}: {', '.join(tags)}."}}  # fmt: skip
        (path.parent / f"{stem}.civitai.info").write_text(json.dumps(info), encoding="utf-8")
    if preview:
        small_png(path.parent / f"{stem}.preview.png", seed)
    return path


def write_library(folder: Path, count: int, start: int = 0) -> list[Path]:
    themes = list(THEMES)
    return [
        write_adapter(
            folder / themes[i % len(themes)] / f"lora_{i:04d}.safetensors",
            i,
            themes[i % len(themes)],
        )  # fmt: skip
        for i in range(start, start + count)
    ]


def small_png(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    Image.new("RGB", (48, 32), (seed * 37 % 256, 80, 160)).save(path)
    return path


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of zero pixels: tens of KB on disk, ``width × height`` bytes decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


class _Marker:
    """Unpickling this writes a marker file: proof that a pickle was (or was never) loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "unpickled"))


@dataclass
class Part:
    """Counts of one part of the suite, and what went wrong (for the text report)."""

    tried: int = 0
    handled: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, why: str = "") -> None:
        self.tried += 1
        if ok:
            self.handled += 1
        else:
            self.failures.append(f"{name}{': ' + why if why else ''}")


def _child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _python(code: str, *args: str, timeout: float, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, timeout=timeout,
        env=env or _child_env(), cwd=str(REPO),
    )  # fmt: skip


# -- 1. hostile inputs -------------------------------------------------------------------------

INDEX_DRIVER = """
import json, os, sys
from bench.reliability import HashEmbedder, stub_captioner
from pixtention.curator import index_folder
folder, store = sys.argv[1], sys.argv[2]
report = index_folder(folder, store, embedder=HashEmbedder(), captioner=stub_captioner())
import resource
data = report.to_json()
data["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(data, ensure_ascii=True))
"""


def hostile_inputs(work: Path, quick: bool, deadline: float) -> Part:
    """Build a folder of hostile files beside good ones, index it once, check each."""
    part = Part()
    folder, store, outside = work / "Lora", work / "store", work / "outside"
    outside.mkdir(parents=True)
    good = write_library(folder / "good", 6)
    for path in good[:3]:
        small_png(path.with_name(path.name[: -len(".safetensors")] + ".preview.png"))
    (outside / "secret.txt").write_text(SECRET)
    (outside / "secret.json").write_text(json.dumps({"description": SECRET, "notes": SECRET}))
    small_png(outside / "private.png")
    h = folder / "hostile"
    h.mkdir()
    seed = iter(range(100, 1000))
    huge = (4 if quick else 45) * 1024 * 1024  # per value; two values stay under the 100 MB cap

    def adapter(name: str, **kwargs) -> Path:
        return write_adapter(h / f"{name}.safetensors", next(seed), **kwargs)

    checks: list[tuple[str, Callable[[dict, dict], tuple[bool, str]]]] = []

    def expect_record(name: str, test: Callable[[dict], bool] | None = None, why: str = ""):
        def check(records: dict, report: dict) -> tuple[bool, str]:
            record = records.get(name)
            if record is None:
                return False, "not indexed"
            return (test is None or test(record)), why

        return check

    def expect_problem(path_part: str):
        def check(records: dict, report: dict) -> tuple[bool, str]:
            rows = [p for p in report["problems"] if path_part in p["path"]]
            if len(rows) != 1:
                return False, f"{len(rows)} problem rows"
            return not CONTROL.search(rows[0]["error"]), "reason is not one clean line"

        return check

    # previews
    adapter("bomb_big")
    png_bomb(h / "bomb_big.preview.png", 14000, 14000)
    checks.append(("decompression bomb 14000² preview", expect_record(
        "bomb_big", lambda r: "caption" not in r["fields"], "captioned")))  # fmt: skip
    adapter("bomb_mid")
    png_bomb(h / "bomb_mid.preview.png", 12000, 12000)
    checks.append(("12000² PNG preview (600 MB decoded)", expect_record(
        "bomb_mid", lambda r: "caption" not in r["fields"], "captioned")))  # fmt: skip
    adapter("junk_preview")
    (h / "junk_preview.preview.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    checks.append(("garbage PNG preview", expect_record("junk_preview")))
    adapter("preview_out")
    (h / "preview_out.preview.png").symlink_to(outside / "private.png")
    checks.append(("preview linked out of the folder", expect_record(
        "preview_out", lambda r: "caption" not in r["fields"], "followed")))  # fmt: skip

    # sidecars
    adapter("environ")
    (h / "environ.txt").symlink_to("/proc/self/environ")
    checks.append(("name.txt → /proc/self/environ", expect_record("environ")))
    adapter("secret_link")
    (h / "secret_link.civitai.info").symlink_to(outside / "secret.json")
    (h / "secret_link.description.txt").symlink_to(outside / "secret.txt")
    checks.append(("sidecars linked to a secret outside", expect_record("secret_link")))
    adapter("fifo")
    os.mkfifo(h / "fifo.json")
    checks.append(("FIFO sidecar", expect_record("fifo")))
    adapter("oversize")
    (h / "oversize.txt").write_bytes(b"x" * (3 * 1024 * 1024))
    checks.append(("3 MB text sidecar", expect_record(
        "oversize", lambda r: len(r["document"]) <= 1300, "unbounded")))  # fmt: skip
    adapter("nested")
    (h / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    checks.append(("deeply nested JSON sidecar", expect_record("nested")))
    adapter("latin1")
    (h / "latin1.civitai.info").write_bytes(b'{"model": {"name": "caf\xe9 \xff style"}}')
    checks.append(("sidecar that is not UTF-8", expect_record("latin1")))

    # header values
    big = "word " * (huge // 5)
    tags = ",".join(f"tag{i}" for i in range(huge // 10))
    adapter("huge_values", metadata={"modelspec.title": big, "modelspec.tags": tags})
    checks.append(
        (
            f"{2 * huge // 2**20} MB of header values",
            expect_record(
                "huge_values",
                lambda r: len(r["title"]) <= 200 and len(r["tags"]) <= 64,
                "unbounded",
            ),
        )
    )
    adapter("tag_flood", metadata={"ss_tag_frequency": "{" + '"a":' * 2_000_000})
    checks.append(("8 MB malformed ss_tag_frequency", expect_record("tag_flood")))
    adapter("escapes", metadata={"modelspec.title": "Evil\x1b]0;owned\x07 Title\x1b[2J",
                                 "modelspec.tags": "a\x1b[1m, \u202eb"})  # fmt: skip
    checks.append(
        (
            "terminal escapes in title and tags",
            expect_record(
                "escapes", lambda r: not CONTROL.search(r["title"] + "".join(r["tags"])), "raw"
            ),
        )
    )

    # names
    adapter("line\nok       forged")
    checks.append(("file name with a newline", expect_record("line\nok       forged")))
    adapter("esc\x1b[31mname")
    checks.append(("file name with an ESC sequence", expect_record("esc\x1b[31mname")))
    odd = os.fsdecode(b"caf\xe9-\xff")
    plain = write_adapter(h / "odd-name.safetensors", 7)  # safetensors takes UTF-8 paths only
    os.rename(plain, os.fsencode(str(h)) + b"/caf\xe9-\xff.safetensors")
    checks.append(("file name that is not UTF-8", expect_record(odd)))

    # files that are not adapters
    marker = work / "UNPICKLED"
    (h / "payload.ckpt").write_bytes(pickle.dumps(_Marker(str(marker))))
    (h / "payload_zip.safetensors").write_bytes(b"PK\x03\x04" + pickle.dumps(_Marker(str(marker))))

    def pickle_check(records: dict, report: dict) -> tuple[bool, str]:
        ok, why = expect_problem("payload.ckpt")(records, report)
        return ok and not marker.exists(), why or "unpickled"

    checks.append(("pickle checkpoint with a payload", pickle_check))
    checks.append(("zip archive renamed .safetensors", expect_problem("payload_zip")))
    whole = (h / "bomb_big.safetensors").read_bytes()
    (h / "truncated.safetensors").write_bytes(whole[: len(whole) // 2])
    checks.append(("truncated safetensors", expect_problem("truncated.safetensors")))
    (h / "claims_huge.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    checks.append(("header length 2^63", expect_problem("claims_huge")))
    (h / "not_json.safetensors").write_bytes(struct.pack("<Q", 8) + b"abcdefgh")
    checks.append(("header that is not JSON", expect_problem("not_json")))
    bad = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}).encode()
    (h / "bad_offsets.safetensors").write_bytes(struct.pack("<Q", len(bad)) + bad + b"\0" * 16)
    checks.append(("tensor offsets past the end", expect_problem("bad_offsets")))
    (h / "empty.safetensors").write_bytes(b"")
    checks.append(("empty file", expect_problem("empty.safetensors")))
    (h / "dangling.safetensors").symlink_to(work / "nowhere.safetensors")
    checks.append(("broken link named .safetensors", expect_problem("dangling")))
    (h / "zero.safetensors").symlink_to("/dev/zero")
    checks.append(("link to /dev/zero named .safetensors", expect_problem("zero.safetensors")))
    (h / "folder.safetensors").mkdir()
    checks.append(("folder named .safetensors", lambda r, rep: (True, "")))

    remaining = max(30.0, deadline - time.monotonic())
    env = dict(_child_env(), PIXTENTION_BENCH_SECRET=SECRET)
    began = time.monotonic()
    try:
        proc = _python(INDEX_DRIVER, str(folder), str(store), timeout=remaining, env=env)
    except subprocess.TimeoutExpired:
        for name, _ in checks:
            part.check(name, False, "the index run hung")
        return part
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        for name, _ in checks:
            part.check(name, False, f"the index run failed: {tail}")
        return part
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    seconds = time.monotonic() - began
    part.notes.append(
        f"hostile index run: {seconds:.0f} s, peak memory {report['peak_mb']:.0f} MB "
        f"({2 * huge // 2**20} MB of header values in one file)"
    )
    records = _catalog_records(store)
    stored = _store_bytes(store)
    leaked = SECRET.encode() in stored or b"PATH=" in stored
    all_good = all(f"lora_{i:04d}" in records for i in range(6))
    captioned = sum(1 for r in records.values() if "caption" in r["fields"])
    lines_clean = not any(CONTROL.search(m) for m in report["messages"])
    for name, check in checks:
        try:
            ok, why = check(records, report)
        except Exception as exc:  # a check that breaks counts as not handled
            ok, why = False, f"{type(exc).__name__}: {exc}"
        ok = ok and all_good and not leaked and lines_clean and captioned >= 3
        reason = why or ("secret in the store" if leaked else "")
        reason = reason or ("" if all_good else "a good adapter went missing")
        reason = reason or ("" if lines_clean else "a message holds control characters")
        part.check(name, ok, reason)
    return part


def _catalog_records(store: Path) -> dict[str, dict]:
    """name → record JSON of every adapter in the catalog (read-only)."""
    uri = f"file:{store / 'catalog.sqlite'}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        return {json.loads(r)["name"]: json.loads(r) for (r,) in conn.execute(
            "SELECT record FROM adapters")}  # fmt: skip
    finally:
        conn.close()


def _store_bytes(store: Path) -> bytes:
    return b"".join(p.read_bytes() for p in store.iterdir() if p.is_file() and not p.is_symlink())


# -- 2. kills ----------------------------------------------------------------------------------

KILL_DRIVER = """
import os, signal, sys
from bench.reliability import HashEmbedder
import pixtention.curator.indexer as ix
ix.READ_BATCH = ix.EMBED_BATCH = 8
folder, store, stage, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

started = []

def progress(p):
    if not started:  # the parent times a random kill from here
        started.append(print("started", flush=True))
    if p.stage == stage and p.done >= at:
        os.kill(os.getpid(), signal.SIGKILL)

ix.index_folder(folder, store, captions=False, embedder=HashEmbedder(), progress=progress)
print("finished")
"""


def kills(work: Path, quick: bool, deadline: float) -> tuple[int, int, Part]:
    """SIGKILL indexers at chosen and random moments; returns (kills, entries lost, readers)."""
    from pixtention.curator import index_folder, open_library
    from pixtention.curator.store import StoreError

    folder, store = work / "Lora", work / "store"
    n = 24 if quick else 48
    files = write_library(folder, n)
    rng = random.Random(12)
    readers = Part()
    rounds = 4 if quick else 20
    done = 0
    next_seed = n
    for round_ in range(rounds):
        if time.monotonic() > deadline:
            break
        if round_:  # change the library between kills: incremental paths get killed too
            victim = files.pop(rng.randrange(len(files)))
            victim.unlink()
            files += write_library(folder, 2, start=next_seed)
            next_seed += 2
            os.utime(files[rng.randrange(len(files))], ns=(round_, round_))
        args = [str(folder), str(store)]
        if round_ % 2 == 0:
            stage = rng.choice(("read", "embed", "publish"))
            at = {"read": rng.randrange(1, 17), "embed": rng.randrange(1, 9)}.get(stage, 2)
            proc = subprocess.Popen([sys.executable, "-c", KILL_DRIVER, *args, stage, str(at)],
                                    env=_child_env(), cwd=str(REPO),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        else:  # a random moment of the run, whatever it is doing (an SQLite commit, a rename)
            proc = subprocess.Popen([sys.executable, "-c", KILL_DRIVER, *args, "never", "0"],
                                    env=_child_env(), cwd=str(REPO),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 120.0)
            if ready and proc.stdout.readline().strip() == b"started":
                time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
        try:
            proc.communicate(timeout=max(60.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            done += 1
        try:  # a reader after every kill: the last good snapshot, or one clear line
            readers.check(f"reader after kill {round_}", len(open_library(store)) >= 0)
        except StoreError as exc:
            readers.check(f"reader after kill {round_}", "\n" not in str(exc), str(exc))
        except Exception as exc:
            readers.check(f"reader after kill {round_}", False, f"{type(exc).__name__}: {exc}")
    racers = [subprocess.Popen([sys.executable, "-c", KILL_DRIVER, str(folder), str(store),
                                "never", "0"], env=_child_env(), cwd=str(REPO),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(2)]  # fmt: skip
    for racer in racers:
        out, _ = racer.communicate(timeout=600)
        readers.check("racing indexer", b"finished" in out)
    index_folder(folder, store, captions=False, embedder=HashEmbedder())
    lib = open_library(store, embedder=HashEmbedder())
    expected = {str(p) for p in folder.rglob("*.safetensors")}
    found = {r.path for r in lib.records}
    scores, ids = lib.search(lib.embed([r.document for r in lib.records]), 1, len(lib.centroids))
    coherent = bool((ids[:, 0] == np.arange(len(lib))).all() or np.allclose(scores[:, 0], 1, 1e-4))
    readers.check("final snapshot coherent", coherent)
    readers.check("no entry of a removed file left", not found - expected, str(found - expected))
    return done, len(expected - found), readers


# -- 3. concurrent requests --------------------------------------------------------------------


def _service(folder: Path, store: Path):
    from pixtention.curator import index_folder, open_library
    from pixtention.selector.select import select
    from pixtention.webui.service import Core, LibraryService

    emb = HashEmbedder()
    core = Core(
        index_folder=functools.partial(index_folder, embedder=emb),
        open_library=functools.partial(open_library, embedder=emb),
        select=select,
    )
    return LibraryService(folder, store, core=core, captions=False)


class _Server:
    """The REST routes on 127.0.0.1 (an ephemeral port), served by uvicorn in a thread."""

    def __init__(self, service) -> None:
        import uvicorn
        from fastapi import FastAPI

        from pixtention.webui.masks import MaskStore
        from pixtention.webui.routes import build_router

        app = FastAPI()
        app.include_router(build_router(service, MaskStore()))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                lifespan="off", access_log=False)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> _Server:
        self.thread.start()
        started = time.monotonic()
        while not self.server.started:
            if time.monotonic() - started > 60 or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            answer = conn.getresponse()
            return answer.status, json.loads(answer.read() or b"null")
        finally:
            conn.close()


def _in_process(service, method: str, path: str, body: dict | None) -> tuple[int, object]:
    """The same requests without HTTP (when FastAPI or uvicorn is not installed)."""
    from pixtention.webui.args import parse_args

    if path.endswith("/status"):
        return 200, service.status().to_dict()
    if path.endswith("/index"):
        return 202, {"started": service.start_index()}
    if path.endswith("/suggest"):
        picks = service.suggest(body["prompt"], parse_args(body.get("args") or {}))
        return 200, {"picks": [p.name for p in picks]}
    library = service.library()
    return 200, {"total": len(library.records) if library is not None else 0}


def concurrent_requests(work: Path, quick: bool, deadline: float) -> Part:
    """Parallel requests during a re-index, and fifty first status calls on a fresh service."""
    from pixtention.curator import index_folder
    from pixtention.curator.catalog import Catalog

    part = Part()
    folder, store = work / "Lora", work / "store"
    write_library(folder, 36 if quick else 120)
    index_folder(folder, store, captions=False, embedder=HashEmbedder())

    # fifty first status() calls on a fresh service: one store open
    calls = [0]
    real = Catalog.read_snapshot

    def counted(self):  # as slow as reading thousands of records: the first open takes a while
        calls[0] += 1
        time.sleep(0.1)
        return real(self)

    Catalog.read_snapshot = counted
    try:
        service = _service(folder, store)
        barrier = threading.Barrier(50)

        def status() -> str:
            barrier.wait()
            return service.status().state

        with ThreadPoolExecutor(50) as pool:
            states = list(pool.map(lambda _: status(), range(50)))
    finally:
        Catalog.read_snapshot = real
    opened_once = calls[0] == 1
    for state in states:
        part.check("first status", state == "ready" and opened_once, f"store opened {calls[0]}×")
    part.notes.append(f"50 first status() calls opened the store {calls[0]} time(s)")

    # mixed requests while a re-index runs
    write_library(folder, 12, start=1000)
    n = 60 if quick else 400
    rng = random.Random(3)
    plan: list[tuple[str, str, dict | None]] = [("POST", "/pixtention/v1/index", None)]
    for i in range(n - 1):
        kind = rng.random()
        if kind < 0.5:
            plan.append(("POST", "/pixtention/v1/suggest",
                         {"prompt": PROMPTS[i % len(PROMPTS)], "args": {"k": 3}}))  # fmt: skip
        elif kind < 0.75:
            plan.append(("GET", "/pixtention/v1/status", None))
        elif kind < 0.9:
            plan.append(("GET", "/pixtention/v1/adapters?limit=50", None))
        else:
            plan.append(("GET", "/pixtention/v1/clusters", None))
    service = _service(folder, store)
    try:
        server = _Server(service)
    except ImportError as exc:
        server = None
        part.notes.append(f"REST requests made in-process ({exc.name} is not installed)")
    else:  # no route reads a file by path: traversal attempts get a 404
        for probe in ("..%2F..%2F..%2Fetc%2Fpasswd/0", "%2E%2E/0", "x/..%2F..%2Fcatalog"):
            plan.append(("GET", f"/pixtention/v1/masks/{probe}.png", None))

    def one(item: tuple[str, str, dict | None]) -> tuple[str, bool]:
        method, path, body = item
        try:
            if server is not None:
                status, data = server.request(method, path, body)
            else:
                status, data = _in_process(service, method, path, body)
        except Exception as exc:  # a dropped connection or a crash counts as failed
            return f"{method} {path} ({type(exc).__name__})", False
        if "/masks/" in path:
            return f"{method} {path} → {status}", status == 404 and "root:" not in str(data)
        return f"{method} {path} → {status}", 200 <= status < 300 and data is not None

    def run_all() -> list[tuple[str, bool]]:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(one, plan))

    if server is not None:
        with server:
            results = run_all()
    else:
        results = run_all()
    service.wait(max(10.0, deadline - time.monotonic()))
    for name, ok in results:
        part.check(name, ok)
    final = service.status()
    part.notes.append(
        f"re-index during the requests ended {final.state}, {final.adapters} adapters"
    )
    return part


# -- 4. store damages --------------------------------------------------------------------------


def _set_meta(store: Path, **values: str) -> None:
    conn = sqlite3.connect(store / "catalog.sqlite")
    with conn:
        for key, value in values.items():
            conn.execute("UPDATE meta SET value=? WHERE key=?", (value, key))
    conn.close()


def _checkpoint(store: Path) -> None:
    conn = sqlite3.connect(store / "catalog.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _vectors(store: Path) -> Path:
    return next(store.glob("vectors-*.faiss"))


def _garble_page(store: Path, needle: bytes) -> None:
    _checkpoint(store)
    path = store / "catalog.sqlite"
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    start = at - at % 4096 if at > 0 else len(data) // 2 // 4096 * 4096
    data[start : start + 4096] = random.Random(5).randbytes(4096)
    path.write_bytes(bytes(data))


def _crafted_vectors(store: Path) -> None:
    """A vector file whose quantizer claims a 1 TB vector, and a catalog that vouches for it."""
    path = _vectors(store)
    data = bytearray(path.read_bytes())
    at = data.find(struct.pack("<Q", 64), data.find(b"IxFI"))
    data[at : at + 8] = struct.pack("<Q", (1 << 38) - 1)
    path.write_bytes(bytes(data))
    _set_meta(store, vectors_digest=hashlib.blake2b(bytes(data), digest_size=16).hexdigest())


def _replace_with_folder(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _link(path: Path, target: Path | str) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def _huge_allocation_fails() -> bool:
    try:
        mode = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return False
    return mode in ("0", "2") and total < (1 << 37)


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


NAMESPACE_DRIVER = """
import sys
from bench.reliability import HashEmbedder
from pixtention.curator import index_folder, open_library
from pixtention.curator.store import StoreError
folder, store, what = sys.argv[1:4]
try:
    if what == "read":
        print("ok", len(open_library(store, embedder=HashEmbedder())))
    else:
        print("ok", index_folder(folder, store, captions=False, embedder=HashEmbedder()).adapters)
except StoreError as exc:
    print("StoreError", str(exc).replace("\\n", "<NEWLINE>"))
"""


def _in_namespace(setup: str, folder: Path, store: Path, *steps: str) -> str:
    """Run the driver once per step (``read``, ``index`` or a shell command) in a private mount
    namespace prepared by ``setup``; the drivers' lines, joined by " / "."""
    run = '"$0" -c "$1" "$2" "$3"'
    script = " && ".join([setup] + [f"{run} {s}" if s in ("read", "index") else s for s in steps])
    args = [sys.executable, NAMESPACE_DRIVER, str(folder), str(store)]
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, *args], capture_output=True,
                          env=_child_env(), cwd=str(REPO), timeout=300)  # fmt: skip
    if proc.returncode != 0:
        return "crashed " + proc.stderr.decode(errors="replace").strip()[-300:]
    return " / ".join(proc.stdout.decode().strip().splitlines())


def store_damages(work: Path, quick: bool, deadline: float) -> Part:
    """Damage copies of a good store one way each; readers answer or say one line, the writer
    rebuilds a complete, sound store."""
    from pixtention.curator import index_folder, open_library
    from pixtention.curator.store import StoreError

    part = Part()
    folder, good = work / "Lora", work / "good"
    n = 16
    write_library(folder, n)
    index_folder(folder, good, captions=False, embedder=HashEmbedder())
    victim = work / "victim"
    catalog, wal, lock = "catalog.sqlite", "catalog.sqlite-wal", "indexer.lock"
    damages: list[tuple[str, Callable[[Path], None]]] = [
        ("zero-byte catalog", lambda s: (s / catalog).write_bytes(b"")),
        ("garbage page in the catalog",
         lambda s: _garble_page(s, b"Soft Watercolor Painting")),
        ("garbage catalog header",
         lambda s: (_checkpoint(s), _patch(s / catalog, 0, os.urandom(100)))),
        ("catalog cut in half",
         lambda s: (_checkpoint(s), os.truncate(s / catalog, (s / catalog).stat().st_size // 2))),
        ("catalog is a link to another file", lambda s: _link(s / catalog, victim)),
        ("catalog replaced by a folder", lambda s: _replace_with_folder(s / catalog)),
        ("-wal is a link to another file", lambda s: _link(s / wal, victim)),
        ("-wal is garbage", lambda s: (s / wal).write_bytes(os.urandom(5000))),
        ("lock is a link to another file", lambda s: _link(s / lock, victim)),
        ("lock replaced by a folder", lambda s: _replace_with_folder(s / lock)),
        ("lock replaced by a FIFO", lambda s: ((s / lock).unlink(), os.mkfifo(s / lock))),
        ("vector file missing", lambda s: _vectors(s).unlink()),
        ("vector file truncated", lambda s: os.truncate(_vectors(s), 100)),
        ("vector file garbled", lambda s: _patch(_vectors(s), 200, os.urandom(64))),
        ("vector file replaced by a folder", lambda s: _replace_with_folder(_vectors(s))),
        ("vector file is a link to /dev/zero", lambda s: _link(_vectors(s), "/dev/zero")),
        ("catalog names vectors_file=../victim",
         lambda s: _set_meta(s, vectors_file="../victim")),
        ("garbage dim metadata", lambda s: _set_meta(s, dim="NaN", snapshot_rows="many")),
        ("garbage generation metadata", lambda s: _set_meta(s, generation="-x")),
        ("garbage schema version", lambda s: _set_meta(s, schema_version="two")),
        ("stale temporaries and old vector files",
         lambda s: ((s / ".vectors-00000009.faiss.x.tmp").write_bytes(b"x"),
                    (s / "vectors-00000000.faiss").write_bytes(b"old"))),
    ]  # fmt: skip
    if _huge_allocation_fails():
        damages.append(("crafted vector file (MemoryError in faiss)", _crafted_vectors))
    for i, (name, damage) in enumerate(damages):
        if time.monotonic() > deadline:
            part.notes.append(f"stopped before {name!r}: time budget spent")
            break
        victim.write_bytes(b"precious")
        store = work / f"damaged{i}"
        shutil.copytree(good, store, symlinks=True)
        try:
            damage(store)
        except OSError as exc:
            part.notes.append(f"{name}: could not be set up ({exc})")
            continue
        survive = functools.partial(_survives, folder, store, n, victim, index_folder,
                                    open_library, StoreError)  # fmt: skip
        try:  # a damage that hangs the reader or writer (a link to /dev/zero…) costs 60 s
            part.check(name, *_within(60.0, survive))
        except TimeoutError:
            part.check(name, False, "hung for 60 s (left running in the background)")
    if _unshare_works():
        store = work / "readonly"
        shutil.copytree(good, store, symlinks=True)
        _checkpoint(store)
        for extra in ("-wal", "-shm"):
            (store / (catalog + extra)).unlink(missing_ok=True)
        os.utime(next(folder.rglob("*.safetensors")), ns=(1, 1))  # the writer has work to do
        ro = f"mount --bind -o ro '{store}' '{store}'"
        out = _in_namespace(ro, folder, store, "read", "index", f"umount '{store}'", "index")
        read, write, again = (out.split(" / ") + ["", "", ""])[:3]
        ok = read == f"ok {n}" and write.startswith("StoreError") and "read-only" in write
        part.check("read-only store, then writable", ok and again == f"ok {n}", out)
        tiny = work / "tiny"
        tiny.mkdir()
        mount = f"mount -t tmpfs -o size=48k tmpfs '{tiny}'"
        out = _in_namespace(mount, folder, tiny, "index", f"mount -o remount,size=64m '{tiny}'",
                            "index", "read")  # fmt: skip
        full, again, read = (out.split(" / ") + ["", "", ""])[:3]
        ok = full.startswith("StoreError") and "disk full" in full and again == f"ok {n}"
        part.check("disk full, then freed", ok and read == f"ok {n}", out)
    else:
        part.notes.append("read-only store and full disk skipped: unshare -rm is not available")
    return part


def _within(seconds: float, call: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
    """``call()`` in a daemon thread; ``TimeoutError`` if it has not returned in ``seconds``."""
    result: list[tuple[bool, str]] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # reported as the damage not survived
            result.append((False, f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if not result:
        raise TimeoutError
    return result[0]


def _patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _survives(folder, store, n, victim, index_folder, open_library, store_error):
    """(recovered, why): the reader answers or says one line, nothing outside is touched, the
    writer rebuilds, and then the store is complete, sound and quiet."""
    try:
        lib = open_library(store, embedder=HashEmbedder())
        if len(lib) not in (0, n):
            return False, f"reader served {len(lib)} adapters"
    except store_error as exc:
        if "\n" in str(exc):
            return False, "reader message spans lines"
    except Exception as exc:
        return False, f"reader: {type(exc).__name__}: {exc}"
    try:
        report = index_folder(folder, store, captions=False, embedder=HashEmbedder())
    except Exception as exc:
        return False, f"writer: {type(exc).__name__}: {str(exc)[:200]}"
    if victim.read_bytes() != b"precious":
        return False, "a file outside the store was written"
    if any("\n" in m for m in report.messages):
        return False, "writer message spans lines"
    try:
        lib = open_library(store, embedder=HashEmbedder())
    except Exception as exc:
        return False, f"reader after rebuild: {type(exc).__name__}: {exc}"
    conn = sqlite3.connect(f"file:{store / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        sound = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    except sqlite3.DatabaseError:
        sound = False
    finally:
        conn.close()
    expected = {str(p) for p in folder.rglob("*.safetensors")}
    if {r.path for r in lib.records} != expected or not sound or lib.messages:
        return False, f"after rebuild: {len(lib)} adapters, sound={sound}, {lib.messages}"
    return True, ""


# -- the suite ---------------------------------------------------------------------------------


def _part(name: str, run, work: Path, args: argparse.Namespace, deadline: dict) -> Part:
    """One part; if it breaks, the figures so far are kept and the break is reported."""
    key = {"hostile inputs": "hostile", "concurrent requests": "requests"}.get(name, "damages")
    try:
        return run(work, args.quick, deadline[key])
    except Exception as exc:
        part = Part()
        part.check(name, False, f"the part broke: {type(exc).__name__}: {exc}")
        return part


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixtention bench reliability")
    parser.add_argument("--quick", action="store_true", help="the short pass CI runs")
    parser.add_argument("--json", action="store_true", help="print only the contract's keys")
    parser.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    parser.add_argument("--budget", type=float, help="seconds for the whole suite "
                        "(default 150 with --quick, else 420)")  # fmt: skip
    args = parser.parse_args(argv)
    budget = args.budget or (150.0 if args.quick else 420.0)
    started = time.monotonic()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pixt-rel-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        shares = (("hostile", 0.3), ("kills", 0.35), ("requests", 0.15), ("damages", 0.2))
        deadline, spent = {}, 0.0
        for name, share in shares:
            spent += share
            deadline[name] = started + budget * spent
        hostile = _part("hostile inputs", hostile_inputs, work / "hostile", args, deadline)
        readers = Part()
        try:
            n_kills, lost, readers = kills(work / "kills", args.quick, deadline["kills"])
        except Exception as exc:  # the figures say the part did not complete
            n_kills, lost = 0, -1
            readers.check("kills", False, f"{type(exc).__name__}: {exc}")
        requests = _part("concurrent requests", concurrent_requests, work / "requests", args,
                         deadline)  # fmt: skip
        damages = _part("store damages", store_damages, work / "damages", args, deadline)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    figures = {
        "hostile_inputs_tried": hostile.tried,
        "hostile_inputs_handled": hostile.handled,
        "kills": n_kills,
        "entries_lost": lost,
        "concurrent_requests": requests.tried,
        "concurrent_requests_ok": requests.handled,
        "store_damages": damages.tried,
        "store_damages_recovered": damages.handled,
    }
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps({key: figures[key] for key in KEYS}))
    else:
        print(f"reliability ({'quick' if args.quick else 'full'}, {seconds:.0f} s)")
        for key in KEYS:
            print(f"  {key:<26} {figures[key]}")
        print(f"  readers after kills: {readers.handled}/{readers.tried} answered cleanly")
    for part in (hostile, readers, requests, damages):
        for note in part.notes:
            print(f"note: {note}", file=sys.stderr)
        for failure in part.failures:
            print(f"not handled: {failure}", file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"note: {seconds:.0f} s, peak memory of the suite process {peak:.0f} MB", file=sys.stderr)
    clean = not (hostile.failures or readers.failures or requests.failures or damages.failures)
    return 0 if clean and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
