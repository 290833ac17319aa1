"""Commands of this part (filled in by its issue)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add this part's subcommands to ``commands``."""
