"""``demo [FOLDER]``: the README's main job in one command — index a folder, suggest adapters.

Without a folder it writes the sample library first, so a fresh machine with no LoRAs still
shows the whole flow; the sample's index is kept beside it (``sample-loras/.pixtention``, as the
WebUI keeps its own), so the demo never replaces an index the user built. It only chains the
other commands in one process (the embedding model loads once); it holds no logic of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixtention.cli import defaults, stores
from pixtention.cli.stores import WEBUI_INDEX_NAME

DEMO_PROMPTS = (
    "a knight in shining armor standing in an autumn forest, watercolor painting",
    "pixel art of a red dragon flying over a neon cyberpunk city at night",
    "an elf archer in a snowy mountain village, ukiyo-e woodblock print",
    "an orange tabby cat wearing brass steampunk goggles, oil painting",
    "a bowl of ramen on a wooden table",  # nothing in the sample fits: PixTention abstains
)


def _sample_folder() -> Path:
    from pixtention.curator.store import default_store_dir

    return default_store_dir().parent / "sample-loras"


def _demo(args: argparse.Namespace) -> int:
    from pixtention.cli import main

    if args.folder is None:
        from pixtention.library.sample import SAMPLE_VERSION, sample_version

        folder = _sample_folder()
        store = str(Path(args.store).expanduser() if args.store else folder / WEBUI_INDEX_NAME)
        if sample_version(folder) != SAMPLE_VERSION:  # missing, or an older sample
            print(f"pixtention demo: no folder given; writing the sample library to {folder}")
            if main(["sample", str(folder), "--force"]):
                return 1
    else:
        found, choice = stores.for_folder(args.folder, args.store)
        folder, store = found, str(choice.path)
    steps = [["doctor", str(folder), "--problems"], ["index", str(folder), "--store", store]]
    if not args.captions:
        steps[-1].append("--no-captions")
    steps.append(["clusters", "--store", store])
    steps += [["suggest", prompt, "--store", store, "--k", str(args.k)] for prompt in args.prompt]
    for step in steps:
        shown = " ".join(repr(a) if " " in a else a for a in step)
        print(f"\n$ python -m pixtention {shown}", flush=True)
        code = main(step)
        sys.stdout.flush()
        if code:
            return code
        if step[0] == "index":
            stores.remember(Path(store))  # a later `suggest` without --store reads this index
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
    parser.add_argument(
        "--store",
        help="index location (default: beside the sample library; for FOLDER as `index` does)",
    )
    parser.add_argument(
        "--k", type=int, default=defaults.K, help=f"adapters per prompt (default {defaults.K})"
    )
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
