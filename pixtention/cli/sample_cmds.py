"""``sample FOLDER [--broken]``: write a small sample LoRA library to try PixTention on."""

from __future__ import annotations

import argparse
import os


def run_sample(args: argparse.Namespace) -> int:
    from pixtention.library.sample import write_sample

    written = write_sample(args.folder, broken=args.broken, seed=args.seed)
    adapters = [f for f in written if f.problem is None]
    for item in written:
        note = f"  ({item.problem})" if item.problem else ""
        print(f"{os.path.relpath(item.path, args.folder)}{note}")
    problems = len(written) - len(adapters)
    extra = f" and {problems} problem files" if problems else ""
    print(f"wrote {len(adapters)} sample adapters{extra} to {args.folder}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this part's subcommands to ``commands``."""
    parser = commands.add_parser(
        "sample",
        help="write a small sample LoRA library (tiny adapters, metadata, sidecars, previews)",
        description="Write a dozen tiny themed adapters with realistic metadata to FOLDER.",
    )
    parser.add_argument("folder", metavar="FOLDER", help="where to write (created if missing)")
    parser.add_argument(
        "--broken",
        action="store_true",
        help="also write problem files (pickle, truncated, not a LoRA, empty) under broken/",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=run_sample)
