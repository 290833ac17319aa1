"""``sample FOLDER [--broken] [--force]``: write a sample LoRA library to try PixTention on.

It refuses a path that is a file, and a folder that already holds adapters it did not write (a
real ``models/Lora`` given by mistake would get sixty fake adapters mixed in) unless forced.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ADAPTER_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin", ".pth")


def count_adapter_files(folder: Path) -> int:
    """Adapter-like files under ``folder`` (an index folder such as ``.pixtention`` skipped)."""
    count = 0
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        count += sum(1 for name in files if name.lower().endswith(ADAPTER_SUFFIXES))
    return count


def target_problem(folder: Path, force: bool) -> str | None:
    """Why the sample library must not be written to ``folder``, in one line (None: go ahead)."""
    from pixtention.library.sample import sample_version

    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder; give a new or empty folder"
    if force or not folder.is_dir() or sample_version(folder) is not None:
        return None
    found = count_adapter_files(folder)
    if found:
        return (
            f"{folder} already holds {found} adapter file(s), so it looks like a real LoRA "
            "folder; write the sample to a new or empty folder, or pass --force to add it "
            "beside them"
        )
    return None


def run_sample(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    problem = target_problem(folder, args.force)
    if problem:
        print(f"pixtention sample: {problem}", file=sys.stderr)
        return 2
    from pixtention.library.sample import write_sample

    try:
        written = write_sample(folder, broken=args.broken, seed=args.seed)
    except OSError as exc:
        print(f"pixtention sample: cannot write {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    adapters = [f for f in written if f.problem is None]
    if args.list:
        for item in written:
            note = f"  ({item.problem})" if item.problem else ""
            print(f"{os.path.relpath(item.path, folder)}{note}")
    themes = sorted({item.path.parent.name for item in adapters})
    problems = len(written) - len(adapters)
    extra = f" and {problems} problem files" if problems else ""
    print(f"wrote {len(adapters)} sample adapters{extra} in {len(themes)} theme folders")
    print(f"  to {folder}: {', '.join(themes)}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this part's subcommands to ``commands``."""
    parser = commands.add_parser(
        "sample",
        help="write a sample LoRA library (sixty tiny adapters in six themes)",
        description="Write sixty tiny themed adapters with realistic metadata, sidecars and "
        "previews to FOLDER. A folder that already holds other adapters is refused unless "
        "--force.",
    )
    parser.add_argument("folder", metavar="FOLDER", help="where to write (created if missing)")
    parser.add_argument(
        "--broken",
        action="store_true",
        help="also write problem files (pickle, truncated, not a LoRA, empty) under broken/",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--force", action="store_true", help="write even into a folder holding other adapters"
    )
    parser.add_argument("--list", action="store_true", help="print every file written")
    parser.set_defaults(func=run_sample)
