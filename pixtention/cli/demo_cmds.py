"""``demo [FOLDER]``: the README's main job in one command — index a folder, suggest adapters.

Without a folder it writes the sample library first, so a fresh machine with no LoRAs still
shows the whole flow. It only chains the other commands; it holds no logic of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_PROMPTS = (
    "a knight in shining armor standing in an autumn forest, watercolor painting",
    "pixel art of a red dragon flying over a neon cyberpunk city at night",
    "portrait of a cat wearing steampunk goggles",
    "a bowl of ramen on a wooden table",
)


def _sample_folder() -> Path:
    from pixtention.curator.store import default_store_dir

    return default_store_dir().parent / "sample-loras"


def _demo(args: argparse.Namespace) -> int:
    from pixtention.cli import main
    from pixtention.curator.store import resolve_store_dir

    folder = Path(args.folder) if args.folder else _sample_folder()
    store = str(resolve_store_dir(args.store))
    if args.folder is None and not folder.is_dir():
        print(f"pixtention demo: no folder given; writing the sample library to {folder}")
        if main(["sample", str(folder)]):
            return 1
    steps = [["doctor", str(folder)], ["index", str(folder), "--store", store]]
    if not args.captions:
        steps[-1].append("--no-captions")
    steps += [["suggest", prompt, "--store", store, "--k", str(args.k)] for prompt in args.prompt]
    for step in steps:
        shown = " ".join(repr(a) if " " in a else a for a in step)
        print(f"\n$ python -m pixtention {shown}", flush=True)
        code = main(step)
        sys.stdout.flush()
        if code:
            return code
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="index a LoRA folder (the sample library by default) and suggest adapters",
        description="Check a folder (doctor), index it and suggest adapters for a few prompts.",
    )
    parser.add_argument(
        "folder", nargs="?", help="a LoRA folder (default: the sample library, written if missing)"
    )
    parser.add_argument("--store", help="index location (default: the per-user store)")
    parser.add_argument("--k", type=int, default=3, help="adapters per prompt (default 3)")
    parser.add_argument(
        "--captions", action="store_true", help="caption previews with the captioning model"
    )
    parser.add_argument(
        "--prompt", action="append", help="a prompt to suggest for (repeatable; default: examples)"
    )
    parser.set_defaults(func=lambda a: _demo(_with_default_prompts(a)))


def _with_default_prompts(args: argparse.Namespace) -> argparse.Namespace:
    if not args.prompt:
        args.prompt = list(DEMO_PROMPTS)
    return args
