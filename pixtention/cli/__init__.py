"""Command line: ``python -m pixtention <command>``.

Each part of the core registers its own commands from a small module here, so this file only
assembles the parser. A command function takes the parsed arguments and returns the exit code.
Building the parser imports no heavy module (numpy, torch, the selector): a command imports
what it needs when it runs, so ``--help`` and the light commands start at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pixtention.cli import (
    bench_cmds,
    curator_cmds,
    demo_cmds,
    library_cmds,
    sample_cmds,
    selector_cmds,
)
from pixtention.cli.environment import missing_dependency

_COMMAND_MODULES = (demo_cmds, library_cmds, sample_cmds, curator_cmds, selector_cmds, bench_cmds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pixtention",
        description="Index a LoRA folder, suggest adapters for a prompt, inspect adapter files.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        message = missing_dependency(exc)
        if message is None:
            raise
        print(f"pixtention: {message}", file=sys.stderr)
        return 2
