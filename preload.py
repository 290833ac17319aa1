"""Command-line flags the WebUI parses before it loads any script (``preload(parser)``)."""

from __future__ import annotations

import argparse


def preload(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pixtention-index-dir",
        type=str,
        default=None,
        help="PixTention: folder for the LoRA index (default: models/Lora/.pixtention)",
    )
    parser.add_argument(
        "--pixtention-no-autoindex",
        action="store_true",
        help="PixTention: do not index the Lora folder in the background at start-up",
    )
