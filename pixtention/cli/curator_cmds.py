"""``index FOLDER`` and ``clusters``: build or refresh the store, and show its themes."""

from __future__ import annotations

import argparse
import json
import sys

from pixtention.curator.progress import Progress


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


def _index(args: argparse.Namespace) -> int:
    from pixtention.curator.indexer import index_folder
    from pixtention.curator.store import StoreError, resolve_store_dir

    store = resolve_store_dir(args.store)
    print(f"pixtention: store {store}", file=sys.stderr)
    bar = _Bar(enabled=not args.json and sys.stderr.isatty() or args.progress)
    try:
        report = index_folder(
            args.folder,
            store,
            captions=not args.no_captions,
            embedder=args.embedder,
            captioner=args.captioner,
            progress=bar,
            wait=not args.no_wait,
            device=args.device,
        )
    except StoreError as exc:
        bar.close()
        print(f"pixtention index: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print("pixtention index: interrupted; completed work is kept", file=sys.stderr)
        return 130
    bar.close()
    for message in report.messages:
        print(f"pixtention: {message}", file=sys.stderr)
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
            print(f"  {path}: {error}")
    return 0


def _clusters(args: argparse.Namespace) -> int:
    from pixtention.curator.library import open_library
    from pixtention.curator.store import StoreError, resolve_store_dir

    store = resolve_store_dir(args.store)
    print(f"pixtention: store {store}", file=sys.stderr)
    try:
        lib = open_library(store)
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
        data = {"store": str(store), "adapters": len(lib), "embedder": lib.embedder_id}
        print(json.dumps(data | {"clusters": themes}, ensure_ascii=False, indent=1))
        return 0
    print(f"{len(lib)} adapters in {len(themes)} clusters")
    for t in themes:
        print(f"[{t['size']:>5}] {t['label']}: {', '.join(t['examples'])}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``index`` and ``clusters``."""
    index = commands.add_parser(
        "index",
        help="index a LoRA folder (re-run to refresh)",
        description="Index FOLDER into the store: new, changed, moved and removed files are "
        "reconciled; unchanged files cost one stat(). Without --store the per-user store "
        "($PIXTENTION_HOME/store or ~/.cache/pixtention/store) is used.",
    )
    index.add_argument("folder")
    index.add_argument("--store", help="store folder (default: per-user store, printed)")
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
    clusters.add_argument("--store", help="store folder (default: per-user store, printed)")
    clusters.add_argument("--json", action="store_true", help="print one JSON document")
    clusters.add_argument("--examples", type=int, default=3, help="members shown per cluster")
    clusters.set_defaults(func=_clusters)
