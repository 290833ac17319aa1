"""``show FILE`` and ``doctor FOLDER``: what the library layer makes of files on disk.

``show`` prints one adapter in full; ``doctor`` walks a folder and gives every adapter-like file
a status (ok, or a problem with its one-line reason). ``doctor`` exits 0 whenever the folder
could be read, whatever state its files are in; 2 is reserved for usage errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import stat
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pixtention.library.display import terminal_safe

ADAPTER_SUFFIXES = (".safetensors",)
HEADER_VALUE_CHARS = 300  # header metadata values longer than this are elided in --json


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _say(text: str, stream=None) -> None:
    """Print ``text``; file names that are not UTF-8 (surrogate-escaped) show as \\xNN."""
    safe = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    print(safe, file=stream or sys.stdout)


def _say_json(document: dict[str, Any]) -> None:
    """One JSON document; ASCII-escaped so any file name survives the round trip."""
    print(json.dumps(document, ensure_ascii=True))


def _elide(value: str) -> str:
    if len(value) <= HEADER_VALUE_CHARS:
        return value
    return value[:HEADER_VALUE_CHARS] + f"… <{len(value)} characters>"


def info_to_json(info) -> dict[str, Any]:
    """The JSON document ``show --json`` prints for one ``AdapterInfo``."""
    layout = info.layout
    return {
        "path": info.file.path,
        "status": "ok",
        "name": info.metadata.name,
        "title": info.metadata.title,
        "file": {
            "size": info.file.size,
            "mtime": info.file.mtime,
            "fingerprint": info.file.fingerprint,
            "tensors": len(info.file.tensors),
        },
        "kind": layout.kind,
        "concept_kind": concept_kind(info),
        "rank": layout.rank,
        "alpha": layout.alpha,
        "base_model": dataclasses.asdict(info.base_model),
        "modules": {
            "count": len(layout.unet_modules) + len(layout.text_encoder_modules),
            "unet": list(layout.unet_modules),
            "text_encoder": list(layout.text_encoder_modules),
            "unrecognised": list(layout.unrecognised),
        },
        "metadata": dataclasses.asdict(info.metadata),
        "header_metadata": {k: _elide(v) for k, v in sorted(info.file.metadata.items())},
        "hashes": dataclasses.asdict(info.hashes) if info.hashes else None,
        "warnings": list(info.warnings),
    }


def concept_kind(info) -> str:
    """What the adapter is about (character, style …), read as the indexer reads it."""
    from pixtention.curator.documents import build_document
    from pixtention.curator.kinds import classify

    doc, meta = build_document(info), info.metadata
    return classify(
        doc.fields.get("title", meta.title),
        meta.tags,
        name=meta.name,
        category=doc.kind,
        description=doc.fields.get("description", ""),
    )


def _base_text(base) -> str:
    return base.family + (f" ({base.variant})" if base.variant else "")


def _show_lines(info) -> list[str]:
    meta, layout = info.metadata, info.layout
    alpha = f", alpha {layout.alpha:g}" if layout.alpha is not None else ""
    rows = [
        ("file", f"{terminal_safe(info.file.path)} ({info.file.size} bytes)"),
        ("fingerprint", info.file.fingerprint),
        ("kind", f"{layout.kind}, rank {layout.rank}{alpha}"),
        ("base model", f"{_base_text(info.base_model)} — {info.base_model.evidence}"),
        (
            "modules",
            f"{len(layout.unet_modules)} unet, {len(layout.text_encoder_modules)} text encoder, "
            f"{len(layout.unrecognised)} unrecognised",
        ),
        ("category", meta.category or ""),
        ("about", f"{concept_kind(info)} (what the selector binds by)"),
        ("triggers", ", ".join(meta.triggers)),
        (
            "weight",
            f"{meta.preferred_weight:g} ({meta.weight_source})" if meta.preferred_weight else "",
        ),
        ("tags", ", ".join(meta.tags[:16]) + (" …" if len(meta.tags) > 16 else "")),
        ("folders", "/".join(meta.folders)),
        ("civitai", str(meta.civitai.get("url", ""))),
        (
            "previews",
            ", ".join(terminal_safe(p) for p in meta.previews)
            + (" (embedded)" if meta.has_embedded_preview else ""),
        ),
        ("sources", ", ".join(meta.sources)),
    ]
    if info.hashes:
        hashes = info.hashes
        rows.append(("sha256", hashes.sha256))
        rows.append(("short hashes", f"AutoV2 {hashes.autov2}, AutoV3 {hashes.autov3}"))
    lines = [f"{terminal_safe(meta.name)}: {terminal_safe(meta.title)}"]
    lines += [f"  {label:<12} {value}" for label, value in rows if value]
    if meta.description:
        lines.append("  description")
        lines += [
            f"    {terminal_safe(line)}".rstrip() for line in meta.description.splitlines()[:12]
        ]
    lines += [f"  warning: {_one_line(w)}" for w in info.warnings]
    return lines


def doc_to_json(view) -> dict[str, Any]:
    """The JSON document ``show --doc --json`` prints for one ``DocumentView``."""
    doc = view.document
    return {
        "path": view.path,
        "status": "ok",
        "name": view.name,
        "fingerprint": view.fingerprint,
        "document": {
            "text": doc.text,
            "digest": view.digest,
            "fields": dict(doc.fields),
            "kind": doc.kind,
            "triggers": list(doc.triggers),
            "embedded_triggers": list(doc.embedded_triggers),
            "prompt_only_triggers": _prompt_only(doc),
        },
        "root": view.root,
        "captions": list(view.captions),
        "store": None if view.store is None else {"path": view.store, "state": view.store_state},
    }


def _prompt_only(doc) -> list[str]:
    """Triggers whose words are all left out of the embedded text (``sks``, ``ohwx``, hashes)."""
    from pixtention.curator.documents import embeddable_trigger

    return [t for t in doc.triggers if not embeddable_trigger(t)]


_STORE_STATES = {
    "current": "indexed with this text",
    "stale": "indexed with another text; run `python -m pixtention index` to refresh",
    "absent": "not in this store",
}


def _doc_lines(view) -> list[str]:
    doc = view.document
    lines = [f"{terminal_safe(view.name)}: document ({len(doc.text)} characters embedded)"]
    lines += textwrap.wrap(doc.text, 96, initial_indent="  ", subsequent_indent="  ")
    lines.append("  fields")
    lines += [f"    {name:<12} {_one_line(value)}" for name, value in doc.fields.items()]
    rows = [
        ("triggers", ", ".join(doc.triggers)),
        ("embedded", ", ".join(doc.embedded_triggers)),
        ("prompt only", ", ".join(_prompt_only(doc))),
        ("folders from", view.root or ""),
        ("captions", "; ".join(view.captions)),
        ("store", f"{view.store} ({_STORE_STATES[view.store_state]})" if view.store else ""),
    ]
    lines += [f"  {label:<14} {value}" for label, value in rows if value]
    return lines


def _print_shown(args: argparse.Namespace, load, to_json, to_lines) -> int:
    """Print what ``load()`` returns (JSON or lines), or the file's problem in one line."""
    from pixtention.library import LibraryError

    try:
        shown = load()
    except LibraryError as exc:
        if args.json:
            _say_json({"path": exc.path, "status": "problem", "reason": exc.reason})
        else:
            _say(f"pixtention show: {_one_line(str(exc))}", sys.stderr)
        return 1
    if args.json:
        _say_json(to_json(shown))
    else:
        _say("\n".join(to_lines(shown)))
    return 0


def _show(args: argparse.Namespace) -> int:
    if not os.path.lexists(args.file):
        _say(f"pixtention show: {terminal_safe(args.file)}: no such file", sys.stderr)
        return 2
    if args.doc:
        from pixtention.cli.stores import for_reading
        from pixtention.curator.inspect_doc import document_for

        store = for_reading(args.store).path
        return _print_shown(
            args, lambda: document_for(args.file, store, root=args.root), doc_to_json, _doc_lines
        )
    from pixtention.library import read_adapter

    return _print_shown(
        args,
        lambda: read_adapter(args.file, with_hashes=not args.no_hashes),
        info_to_json,
        _show_lines,
    )


def walk_adapter_files(folder: str) -> Iterator[tuple[str, str | None]]:
    """(path, None) for every adapter-like file under ``folder`` (following folder symlinks,
    each real folder once), and (path, reason) for folders that could not be listed."""
    from pixtention.library.safetensors_file import PICKLE_SUFFIXES

    suffixes = ADAPTER_SUFFIXES + PICKLE_SUFFIXES
    seen: set[tuple[int, int]] = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            info = os.stat(current)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except OSError as exc:
            yield current, f"cannot list folder: {exc.strerror or exc}"
            continue
        folders = []
        for entry in entries:
            try:
                is_dir = stat.S_ISDIR(os.stat(entry.path).st_mode)
            except OSError:
                is_dir = False  # broken or looping symlink: reported below if it looks like a file
            if is_dir:
                folders.append(entry.path)
            elif entry.name.lower().endswith(suffixes):
                yield entry.path, None
        pending.extend(reversed(folders))


def check_file(path: str, root: str) -> dict[str, Any]:
    """One doctor row: status ok (with what was read) or problem (with the reason)."""
    from pixtention.library import LibraryError, read_adapter

    try:
        info = read_adapter(path, root)
    except LibraryError as exc:
        return {"status": "problem", "reason": _one_line(exc.reason)}
    except Exception as exc:  # a reader bug must not stop the walk; it is shown, not hidden
        return {"status": "problem", "reason": f"internal error ({type(exc).__name__}: {exc})"}
    return {
        "status": "ok",
        "title": info.metadata.title,
        "kind": info.layout.kind,
        "rank": info.layout.rank,
        "base_model": info.base_model.family,
        "variant": info.base_model.variant,
        "fingerprint": info.file.fingerprint,
        "warnings": [_one_line(w) for w in info.warnings],
    }


def _doctor_line(row: dict[str, Any]) -> str:
    path = terminal_safe(row["path"])
    if row["status"] != "ok":
        return f"problem  {path}: {terminal_safe(row['reason'])}"
    base = row["base_model"] + (f"/{row['variant']}" if row["variant"] else "")
    warnings = f"  ({len(row['warnings'])} warning(s))" if row["warnings"] else ""
    return f"ok       {path}  {row['kind']} r{row['rank']} {base}  {row['title']!r}{warnings}"


def _doctor(args: argparse.Namespace) -> int:
    from pixtention.library.safetensors_file import PICKLE_REASON, is_pickle_path

    folder = os.path.abspath(args.folder)
    if not os.path.isdir(folder):
        _say(f"pixtention doctor: {terminal_safe(args.folder)}: not a folder", sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    for path, folder_problem in walk_adapter_files(folder):
        shown = os.path.relpath(path, folder)
        if folder_problem is not None:
            rows.append({"path": shown, "status": "problem", "reason": folder_problem})
        elif is_pickle_path(path):
            rows.append({"path": shown, "status": "problem", "reason": PICKLE_REASON})
        else:
            rows.append({"path": shown, **check_file(path, folder)})
    rows.sort(key=lambda row: row["path"])
    counts = Counter(row["status"] for row in rows)
    summary = {
        "files": len(rows),
        "ok": counts["ok"],
        "problems": counts["problem"],
        "pickle": sum(1 for row in rows if row.get("reason") == PICKLE_REASON),
        "base_models": dict(Counter(r["base_model"] for r in rows if r["status"] == "ok")),
    }
    if args.json:
        _say_json({"folder": folder, "files": rows, "summary": summary})
        return 0
    for row in rows:
        if not (args.problems and row["status"] == "ok"):
            _say(_doctor_line(row))
    _say(
        f"{summary['files']} file(s) in {folder}: {summary['ok']} ok, "
        f"{summary['problems']} problem(s) ({summary['pickle']} pickle)"
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``show`` and ``doctor``."""
    show = commands.add_parser(
        "show",
        help="print what PixTention reads from one adapter file",
        description="Metadata, base model, kind, rank, modules, hashes and warnings of a file; "
        "with --doc, the text the indexer embeds for it.",
    )
    show.add_argument("file")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.add_argument("--no-hashes", action="store_true", help="skip the full-file hashes")
    show.add_argument(
        "--doc",
        action="store_true",
        help="print the document the indexer embeds for this file and its trigger words",
    )
    show.add_argument(
        "--store", help="with --doc: store whose folder themes and captions to use (default: "
        "the per-user store)",
    )  # fmt: skip
    show.add_argument("--root", help="with --doc: the library folder (its sub-folders are themes)")
    show.set_defaults(func=_show)
    doctor = commands.add_parser(
        "doctor",
        help="check every adapter file in a folder",
        description="Walk FOLDER (recursively) and give every adapter file's status.",
    )
    doctor.add_argument("folder")
    doctor.add_argument("--json", action="store_true", help="print one JSON document")
    doctor.add_argument(
        "--problems", action="store_true", help="list only the problem files, then the summary"
    )
    doctor.set_defaults(func=_doctor)
