"""``index FOLDER`` and ``clusters``: build or refresh the store, and show its themes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pixtention.cli import stores
from pixtention.curator.progress import Progress
from pixtention.library.display import terminal_safe


class _Bar:
    """A tqdm bar on stderr per indexing stage, fed by the indexer's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.stage = ""

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if p.stage != self.stage:
            self.close()
            self.stage = p.stage
            if p.message:
                print(f"pixtention: {p.message}", file=sys.stderr)
            self.bar = tqdm(total=p.total, desc=p.stage, unit="file", file=sys.stderr, leave=False)
        if self.bar is not None:
            self.bar.total = p.total
            self.bar.n = p.done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _store_problem(store: Path) -> str | None:
    """Why ``store`` cannot hold an index, in one line (``None`` when it can)."""
    if store.exists() and not store.is_dir():
        return f"--store {store} is a file, not a folder; give a folder for the index"
    return None


def _no_adapters(report) -> str | None:
    """The line for a run that found nothing to index (an empty or wrong folder)."""
    if report.adapters:
        return None
    if report.files == 0:
        return f"found no adapter files (.safetensors) in {report.folder}; the index is empty"
    return f"none of the {report.files} file(s) in {report.folder} is a usable adapter"


def _index(args: argparse.Namespace) -> int:
    from pixtention.cli import models
    from pixtention.curator.indexer import index_folder
    from pixtention.curator.store import StoreError

    folder, choice = stores.for_folder(args.folder, args.store)
    problem = _store_problem(choice.path)
    if problem:
        print(f"pixtention index: {problem}", file=sys.stderr)
        return 2
    models.say(choice.line())
    if folder.resolve() != Path(args.folder).expanduser().resolve():
        models.say(f"{args.folder} is a WebUI folder: indexing its LoRAs in {folder}")
    bar = _Bar(enabled=not args.json and sys.stderr.isatty() or args.progress)
    try:
        report = index_folder(
            folder,
            choice.path,
            captions=not args.no_captions,
            embedder=models.embedder(args.embedder, device=args.device),
            captioner=None
            if args.no_captions
            else models.captioner(args.captioner, device=args.device),
            progress=bar,
            wait=not args.no_wait,
            device=args.device,
        )
    except StoreError as exc:
        bar.close()
        print(f"pixtention index: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        bar.close()
        reason = exc.strerror or str(exc)
        print(
            f"pixtention index: cannot write the index at {choice.path}: {reason}", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        bar.close()
        print("pixtention index: interrupted; completed work is kept", file=sys.stderr)
        return 130
    bar.close()
    if args.store is None:
        stores.remember(choice.path)
    for message in report.messages:
        print(f"pixtention: {terminal_safe(message)}", file=sys.stderr)
    empty = _no_adapters(report)
    if empty:
        models.say(empty)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=1))
        return 0
    print(
        f"{report.adapters} adapters indexed in {report.clusters} clusters "
        f"({report.new} new, {report.changed} changed, {report.moved} moved, "
        f"{report.removed} removed, {report.unchanged} unchanged) in {report.seconds:.1f} s"
    )
    if report.problems:
        print(f"{len(report.problems)} file(s) could not be indexed:")
        for path, error in report.problems:
            print(f"  {terminal_safe(path)}: {terminal_safe(error)}")
    return 0


def _clusters(args: argparse.Namespace) -> int:
    from pixtention.curator.library import open_library
    from pixtention.curator.store import StoreError

    choice = stores.for_reading(args.store, args.lora_dir)
    print(f"pixtention: {choice.line()}", file=sys.stderr)
    try:
        lib = open_library(choice.path)
    except StoreError as exc:
        print(f"pixtention clusters: {exc}", file=sys.stderr)
        return 2
    members: dict[int, list[str]] = {}
    for record in lib.records:
        members.setdefault(record.cluster, []).append(record.title or record.name)
    themes = [
        {"cluster": c, "label": label, "size": len(members.get(c, [])),
         "examples": members.get(c, [])[: args.examples]}
        for c, label in enumerate(lib.cluster_labels)
    ]  # fmt: skip
    themes.sort(key=lambda t: -t["size"])
    if args.json:
        data = {"store": str(choice.path), "adapters": len(lib), "embedder": lib.embedder_id}
        print(json.dumps(data | {"clusters": themes}, ensure_ascii=False, indent=1))
        return 0
    print(f"{len(lib)} adapters in {len(themes)} clusters")
    for t in themes:
        examples = ", ".join(terminal_safe(e) for e in t["examples"])
        print(f"[{t['size']:>5}] {terminal_safe(t['label'])}: {examples}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``index`` and ``clusters``."""
    index = commands.add_parser(
        "index",
        help="index a LoRA folder (re-run to refresh)",
        description="Index FOLDER into the store: new, changed, moved and removed files are "
        "reconciled; unchanged files cost one stat(). Without --store a WebUI folder (or its "
        "models/Lora) gets the WebUI's own index (models/Lora/.pixtention), any other folder the "
        "per-user store ($PIXTENTION_HOME/store or ~/.cache/pixtention/store). Captions need "
        "a captioning model (BLIP, about 990 MB, downloaded once when online; offline and not "
        "cached, indexing goes on without captions).",
    )
    index.add_argument("folder")
    index.add_argument("--store", help="store folder (default: see above; printed)")
    index.add_argument("--no-captions", action="store_true", help="skip preview captioning")
    index.add_argument("--json", action="store_true", help="print one JSON document")
    index.add_argument("--embedder", help="embedding model id or folder (default: MiniLM)")
    index.add_argument("--captioner", help="image-to-text model id or folder (default: BLIP)")
    index.add_argument("--device", default="cpu", help="torch device for the models")
    index.add_argument(
        "--no-wait", action="store_true", help="exit if another indexer holds the store"
    )
    index.add_argument("--progress", action="store_true", help="show the bar even when piped")
    index.set_defaults(func=_index)

    clusters = commands.add_parser(
        "clusters",
        help="list the library's themes (clusters) with sizes and examples",
        description="Print the clusters of the indexed library: label, size, example members.",
    )
    clusters.add_argument("--store", help="store folder (default: as for suggest; printed)")
    clusters.add_argument(
        "--lora-dir", help="use the WebUI's index of this LoRA folder or WebUI folder"
    )
    clusters.add_argument("--json", action="store_true", help="print one JSON document")
    clusters.add_argument("--examples", type=int, default=3, help="members shown per cluster")
    clusters.set_defaults(func=_clusters)
