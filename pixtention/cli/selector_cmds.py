"""``suggest "PROMPT"``: the adapters a prompt would get, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(picks, prompt: str) -> str:
    from pixtention.selector.triggers import apply_picks

    if not picks:
        return "no adapter fits this prompt (nothing scored above the threshold)"
    header = (
        f"{'#':>2}  {'adapter':<28} {'score':>5} {'weight':>6}  {'phrase':<24} {'triggers':<20}"
    )
    header += f" {'theme':<22} source"
    lines = [header, "-" * len(header)]
    for i, p in enumerate(picks, 1):
        lines.append(
            f"{i:>2}  {_cell(p.name, 28):<28} {p.score:>5.2f} {p.weight:>6.2f}  "
            f"{_cell(p.phrase or '(whole prompt)', 24):<24} {_cell(', '.join(p.triggers), 20):<20}"
            f" {_cell(p.cluster_label, 22):<22} {p.source}"
        )
    for p in picks:
        matched = "; ".join(f"{m.field}: {', '.join(m.terms)}" for m in p.evidence.matched)
        if matched:
            lines.append(f"    {p.name}: matched {matched}")
    lines.append("")
    lines.append("prompt with triggers: " + apply_picks(prompt, picks))
    return "\n".join(lines)


def _suggest(args: argparse.Namespace) -> int:
    from pixtention.curator.embedder import EmbedderError
    from pixtention.curator.library import open_library
    from pixtention.curator.store import StoreError
    from pixtention.selector.select import select

    try:
        library = open_library(args.store, embedder=args.embedder)
    except StoreError as exc:
        print(f"pixtention suggest: {exc}", file=sys.stderr)
        return 2
    for message in getattr(library, "messages", ()):
        print(f"pixtention: {message}", file=sys.stderr)
    try:
        picks = select(
            args.prompt,
            library,
            k=args.k,
            clusters=args.clusters if args.clusters > 0 else None,
            budget=args.budget,
            base_model=args.base_model,
            per_phrase=args.per_phrase,
            threshold=args.threshold,
            exclude=args.exclude,
            pins=args.pin,
            mode=args.mode,
        )
    except EmbedderError as exc:
        print(
            f"pixtention suggest: {exc}\n"
            "  re-embed the library with the current embedder: python -m pixtention index FOLDER",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"pixtention suggest: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([p.to_dict() for p in picks], ensure_ascii=False, indent=1))
    else:
        print(_table(picks, args.prompt))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``suggest``."""
    from pixtention.selector.probe import DEFAULT_BUDGET
    from pixtention.selector.select import DEFAULT_CLUSTERS, DEFAULT_THRESHOLD, MODES

    parser = commands.add_parser(
        "suggest",
        help="suggest adapters for a prompt from an indexed library",
        description="Pick the adapters a prompt needs, each bound to the phrase it serves.",
    )
    parser.add_argument("prompt", help="the prompt, in WebUI syntax (<lora:…> tags allowed)")
    parser.add_argument("--store", default=None, help="index store (default: the user store)")
    parser.add_argument("--k", type=int, default=3, help="at most this many picks (default 3)")
    parser.add_argument(
        "--clusters",
        type=int,
        default=DEFAULT_CLUSTERS,
        help="clusters probed at least, nearest first for the prompt and each phrase in turn;"
        f" 0 scores every adapter (default {DEFAULT_CLUSTERS})",
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        help="probe more clusters while the adapters scored stay within this many"
        f" (default {DEFAULT_BUDGET})",
    )
    parser.add_argument(
        "--base-model", default=None, help="loaded model family: sd1, sd2, sdxl, pony, …"
    )
    parser.add_argument("--per-phrase", type=int, default=1, help="picks per phrase (default 1)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"abstain below this score (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument("--mode", choices=MODES, default="auto")
    parser.add_argument("--exclude", action="append", default=[], help="never pick this adapter")
    parser.add_argument("--pin", action="append", default=[], help="always pick this adapter")
    parser.add_argument("--embedder", default=None, help="embedding model the store must match")
    parser.add_argument("--json", action="store_true", help="print the picks as a JSON list")
    parser.set_defaults(func=_suggest)
