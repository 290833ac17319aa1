"""``suggest "PROMPT"``: the adapters a prompt would get, as a table or as JSON.

Defaults (K, clusters, threshold, adapters per phrase, mode) are the WebUI's, so the command
line and the accordion agree on a prompt. When nothing is picked the reason is said: an empty
prompt, an empty index, ``--k 0`` and "nothing scored above the threshold" differ.
"""

from __future__ import annotations

import argparse
import json
import sys

from pixtention.cli import defaults, stores

MORE = 5  # relevant adapters listed under the picks, not applied (pin one to use it)


def _why_none(args: argparse.Namespace) -> str:
    """Why ``select`` returned no pick (the prompt and the index are known to be non-empty)."""
    if args.k == 0:
        return "no adapter asked for: --k is 0 (pins and the prompt's own <lora:…> tags still show)"
    return (
        f"no adapter fits this prompt (nothing scored above the threshold {args.threshold:g};"
        " --threshold lowers it)"
    )


def _open(args: argparse.Namespace):
    """(store choice, library): the library to suggest from, with the process's shared query
    embedder (the default model's numpy twin: no transformers import)."""
    from pixtention.cli import models
    from pixtention.curator.library import open_library

    choice = stores.for_reading(args.store, args.lora_dir)
    if choice.reason:
        models.say(choice.line())
    query = models.query_embedder(args.embedder)
    library = open_library(choice.path, embedder=query)
    built_with = library.embedder_id
    if args.embedder is None and built_with and built_with != query.id:
        # built with another embedder: use that one (loaded once too)
        library = open_library(choice.path, embedder=models.embedder(built_with))
    return choice, library


def _suggest(args: argparse.Namespace) -> int:
    from pixtention.curator.embedder import EmbedderError
    from pixtention.curator.store import StoreError

    if not args.prompt.strip():
        print("pixtention suggest: the prompt is empty; nothing to suggest for", file=sys.stderr)
        return 2
    try:
        choice, library = _open(args)
    except StoreError as exc:
        print(f"pixtention suggest: {exc}", file=sys.stderr)
        return 2
    for message in getattr(library, "messages", ()):
        print(f"pixtention: {message}", file=sys.stderr)
    if len(library) == 0:
        print(
            f"pixtention suggest: the index at {choice.path} holds no adapters (its folder had "
            "none); index a folder with LoRAs: python -m pixtention index FOLDER",
            file=sys.stderr,
        )
        return 2
    from pixtention.selector.select import rank, select
    from pixtention.selector.triggers import apply_picks

    ranking = dict(
        clusters=args.clusters if args.clusters > 0 else None,
        budget=defaults.resolve(args.budget),
        base_model=args.base_model,
        exclude=args.exclude,
    )
    try:
        picks = select(
            args.prompt,
            library,
            k=args.k,
            per_phrase=args.per_phrase,
            threshold=args.threshold,
            pins=args.pin,
            mode=args.mode,
            **ranking,
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
    if args.ranked:
        return _print_ranked(args, rank(args.prompt, library, **ranking, k=args.ranked))
    if args.json:
        if not picks:
            print(f"pixtention: {_why_none(args)}", file=sys.stderr)
        print(json.dumps([p.to_dict() for p in picks], ensure_ascii=False, indent=1))
        return 0
    from pixtention.cli.picks_table import more_lines, table

    picked = {p.name for p in picks}
    more = [
        s for s in rank(args.prompt, library, **ranking, k=args.k + MORE) if s.name not in picked
    ]
    if not picks:
        print("\n".join([_why_none(args), *more_lines(more[:MORE])]))
    else:
        print(table(picks, apply_picks(args.prompt, picks), more[:MORE]))
    return 0


def _print_ranked(args: argparse.Namespace, ranked: list) -> int:
    """``--ranked N``: the N most relevant adapters, best first (what the user browses)."""
    if args.json:
        print(json.dumps([s.to_dict() for s in ranked], ensure_ascii=False, indent=1))
    elif ranked:
        from pixtention.cli.picks_table import ranked_rows

        print("\n".join(ranked_rows(ranked)))
    if not ranked:
        print("pixtention: no adapter is relevant to this prompt", file=sys.stderr)
    return 0


def _count(text: str) -> int:
    """A whole number ≥ 0 (argparse type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``suggest``."""
    parser = commands.add_parser(
        "suggest",
        help="suggest adapters for a prompt from an indexed library",
        description="Pick the adapters a prompt needs, each bound to the phrase it serves. "
        "Defaults are the WebUI's. Without --store: the WebUI's index when run in a WebUI "
        "folder, else the index built last, else the per-user store (the store is named on "
        "stderr).",
    )
    parser.add_argument("prompt", help="the prompt, in WebUI syntax (<lora:…> tags allowed)")
    parser.add_argument("--store", default=None, help="index store folder")
    parser.add_argument(
        "--lora-dir",
        default=None,
        help="use the WebUI's index of this LoRA folder or WebUI folder",
    )
    parser.add_argument(
        "--k",
        type=_count,
        default=defaults.K,
        help=f"at most this many picks (default {defaults.K})",
    )
    parser.add_argument(
        "--clusters",
        type=_count,
        default=defaults.CLUSTERS,
        help="clusters probed at least, nearest first for the prompt and each phrase in turn;"
        f" 0 scores every adapter (default {defaults.CLUSTERS})",
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=defaults.SelectorDefault("DEFAULT_BUDGET"),
        help="probe more clusters while the adapters scored stay within this many"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--base-model", default=None, help="loaded model family: sd1, sd2, sdxl, pony, …"
    )
    parser.add_argument(
        "--per-phrase",
        type=int,
        default=defaults.PER_PHRASE,
        help=f"picks per phrase (default {defaults.PER_PHRASE})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.THRESHOLD,
        help=f"abstain below this score (default {defaults.THRESHOLD:g})",
    )
    parser.add_argument("--mode", choices=defaults.MODES, default=defaults.MODE)
    parser.add_argument("--exclude", action="append", default=[], help="never pick this adapter")
    parser.add_argument("--pin", action="append", default=[], help="always pick this adapter")
    parser.add_argument("--embedder", default=None, help="embedding model the store must match")
    parser.add_argument(
        "--ranked",
        type=_count,
        default=0,
        metavar="N",
        help="list the N adapters most relevant to the prompt, best first, instead of the picks:"
        " what to browse and --pin from (a character is picked only when the prompt names it,"
        " but ranked whenever it is relevant)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the picks (or --ranked list) as a JSON list"
    )
    parser.set_defaults(func=_suggest)
