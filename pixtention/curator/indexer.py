"""``index_folder``: the one way a LoRA folder becomes (or refreshes) a searchable store.

Stages, each committed in batches so a killed run keeps its work: scan (stat only) → read
headers and sidecars of new or changed files → caption previews → embed documents (bf16 on
capable CPUs, :mod:`.precision`) → publish a snapshot (clusters + faiss file + records; only the
changed rows when the clusters still hold, :mod:`.publish`). Readers keep using the previous
snapshot until the new one is committed in a single transaction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from pixtention.curator import keywords
from pixtention.curator.adapter_rows import adapter_columns
from pixtention.curator.captioner import Captioner, CaptionerError, make_captioner
from pixtention.curator.catalog import Catalog
from pixtention.curator.catalog_file import CatalogCorrupt, is_corruption, store_write_error
from pixtention.curator.embedder import Embedder, make_embedder
from pixtention.curator.precision import embed_bulk
from pixtention.curator.progress import Cancel, Cancelled, ProgressCallback, Reporter
from pixtention.curator.publish import Publisher, repair_snapshot_meta
from pixtention.curator.scan import ScannedFile, scan_folder
from pixtention.curator.serial import info_from_json
from pixtention.curator.store import (
    CATALOG_NAME,
    WRITE_ERRNOS,
    StoreError,
    file_identity,
    read_checked,
    resolve_store_dir,
    set_aside,
    write_checked,
    write_error,
    writer_lock,
)
from pixtention.library.confine import Skipped, library_roots, resolve_beside
from pixtention.library.display import clean_text, terminal_safe
from pixtention.library.errors import LibraryError

log = logging.getLogger("pixtention.curator")
if not log.handlers:  # the host (CLI, WebUI) decides where messages go
    log.addHandler(logging.NullHandler())

READ_BATCH = 256
EMBED_BATCH = 512
CAPTION_BATCH = 32
NAMES_SHOWN = 5  # file names quoted in a message about many files
CAPTION_CHARS = 1000  # of a caption kept (a pluggable captioner's output is bounded here)


@dataclass(frozen=True)
class IndexReport:
    """What a run did; ``problems`` lists every file that could not be indexed, with why."""

    folder: str
    store: str
    files: int  # model files found
    adapters: int  # indexed and searchable after the run
    new: int
    changed: int
    moved: int
    removed: int
    unchanged: int
    problems: tuple[tuple[str, str], ...]
    captioned: int
    embedded: int
    clusters: int
    published: bool  # a new snapshot was written (False: nothing changed, or cancelled)
    cancelled: bool
    seconds: float
    messages: tuple[str, ...] = ()

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["problems"] = [{"path": p, "error": e} for p, e in self.problems]
        return data


class _Run:
    """One indexing run under the writer lock."""

    def __init__(
        self,
        root: str,
        store: Path,
        embedder: Embedder,
        captioner: Captioner | None,
        reporter: Reporter,
        messages: list[str],
    ) -> None:
        self.root, self.store = root, store
        self.embedder, self.captioner = embedder, captioner
        self.reporter, self.messages = reporter, messages
        self.counts = dict(new=0, changed=0, moved=0, removed=0, unchanged=0)
        self.captioned = self.embedded = 0
        self.cat: Catalog | None = None
        self.skipped_links: list[str] = []  # sidecars/previews: links out of the library

    def _say(self, message: str) -> None:
        log.warning(message)
        self.messages.append(message)

    def _open_catalog(self) -> Catalog:
        """The catalog, checked once by ``quick_check`` when someone other than a writer of
        this store changed it since (a garbage page must not pass for an index)."""
        path = self.store / CATALOG_NAME
        notes: list[str] = []
        known = file_identity(path)
        cat = Catalog(path, notes=notes)
        for note in notes:
            self._say(note)
        try:
            if known and known != read_checked(self.store):
                problem = cat.quick_check()
                if problem is not None:
                    raise CatalogCorrupt(f"catalog is corrupt: quick_check found {problem}")
            repaired = repair_snapshot_meta(cat, self.store)
            if repaired:
                self._say(repaired)
        except BaseException:
            cat.close()
            raise
        return cat

    def run(self) -> tuple[bool, int, int]:
        """Bring the catalog up to date; returns (published, n files, n clusters)."""
        self.cat = cat = self._open_catalog()
        try:
            self.reporter.stage("scan", 1)
            scanned = scan_folder(self.root)
            self.reporter.update(1, 1)
            to_read, removed = self._diff(scanned)
            if removed or cat.get_meta("root") != self.root:
                with cat.transaction():
                    cat.remove_files(removed)
                    cat.set_meta("root", self.root)
                    self._note_changes(len(removed))
                    cat.bump_version()
            self._read(to_read, removed)
            self._say_skipped()
            keywords.sync(cat, self.root, lambda done, total: self.reporter.update(done, total))
            if self.captioner is not None:
                self._caption()
            self._embed()
            published, n_clusters = self._publish()
            return published, len(scanned), n_clusters
        finally:
            cat.close()

    def _diff(self, scanned: list[ScannedFile]) -> tuple[list[ScannedFile], dict[str, str]]:
        known = self.cat.file_states()
        to_read = []
        for f in scanned:
            state = known.pop(f.path, None)
            if state == (f.size, f.mtime_ns, f.sidecars):
                self.counts["unchanged"] += 1
            else:
                self.counts["changed" if state else "new"] += 1
                to_read.append(f)
        removed = self.cat.fingerprints_of(known)  # what is left was not found on disk
        removed.update({p: "" for p in known if p not in removed})
        self.counts["removed"] = len(removed)
        return to_read, removed

    def _note_changes(self, n: int) -> None:
        self.cat.set_meta("changes_since_fit", (self.cat.meta_int("changes_since_fit") or 0) + n)

    def _say_skipped(self) -> None:
        """One line for every symbolic link beside an adapter that was not followed."""
        links = self.skipped_links
        if links:
            shown = ", ".join(terminal_safe(name) for name in links[:NAMES_SHOWN])
            more = f" and {len(links) - NAMES_SHOWN} more" if len(links) > NAMES_SHOWN else ""
            self._say(
                f"skipped {len(links)} sidecar or preview file(s) that are symbolic links out of "
                f"the library folder (not followed): {shown}{more}"
            )

    def _read(self, files: list[ScannedFile], removed: dict[str, str]) -> None:
        cat = self.cat
        gone = {fp for fp in removed.values() if fp}
        cap_id = self.captioner.id if self.captioner is not None else None
        self.reporter.stage("read", len(files))
        for start in range(0, len(files), READ_BATCH):
            batch = files[start : start + READ_BATCH]
            with cat.transaction():
                fresh = 0
                for f in batch:
                    fresh += self._read_one(f, gone, cap_id)
                self._note_changes(fresh)
                cat.bump_version()
            self.reporter.update(min(start + READ_BATCH, len(files)), len(files))

    def _read_one(self, f: ScannedFile, gone: set[str], cap_id: str | None) -> int:
        """Read one new or changed file into the open batch; returns 1 if it is a new adapter."""
        from pixtention.library import read_adapter

        if f.problem:
            self.cat.put_file(f.path, f.size, f.mtime_ns, f.sidecars, None, f.problem)
            return 0
        try:
            info = read_adapter(f.path, self.root)
        except LibraryError as exc:
            self.cat.put_file(f.path, f.size, f.mtime_ns, f.sidecars, None, exc.reason)
            return 0
        except OSError as exc:  # vanished or unreadable between scan and read
            reason = f"cannot read file: {exc.strerror or exc}"
            self.cat.put_file(f.path, f.size, f.mtime_ns, f.sidecars, None, reason)
            return 0
        except Exception as exc:  # a reader bug must cost this file, not the whole run
            detail = terminal_safe(str(exc).strip().splitlines()[0][:200] if str(exc) else "")
            reason = f"internal error reading it ({type(exc).__name__}: {detail})"
            log.warning("%s: %s", terminal_safe(f.path), reason)
            self.cat.put_file(f.path, f.size, f.mtime_ns, f.sidecars, None, reason)
            return 0
        fp = info.file.fingerprint
        caption = self.cat.caption_for(fp, cap_id) if cap_id else None
        self.skipped_links.extend(info.metadata.skipped)
        try:
            columns = adapter_columns(info, caption)
        except ValueError as exc:  # a record over the JSON bound: a bug, kept out of the store
            self.cat.put_file(f.path, f.size, f.mtime_ns, f.sidecars, None, f"not indexed: {exc}")
            return 0
        self.cat.put_file(f.path, f.size, f.mtime_ns, f.sidecars, fp, None)
        self.cat.put_adapter(f.path, columns)
        if fp in gone:  # a path that vanished held the same file: counted as moved, not new
            self.counts["moved"] += 1
            self.counts["new"] -= 1
            gone.discard(fp)
            return 0
        return 1

    def _caption(self) -> None:
        cat, captioner = self.cat, self.captioner
        pending = cat.pending_captions(captioner.id)
        if not pending:
            return
        try:
            load = getattr(captioner, "load", None)
            if load is not None:
                load()
        except CaptionerError as exc:
            self._say(f"captions off for this run: {exc}")
            return
        self.reporter.stage("caption", len(pending))
        for start in range(0, len(pending), CAPTION_BATCH):
            batch = pending[start : start + CAPTION_BATCH]
            try:
                texts = self._caption_previews([preview for _, preview in batch])
            except CaptionerError as exc:
                self._say(f"captions off for this run: {exc}")
                return
            with cat.transaction():
                for (fp, _), text in zip(batch, texts):
                    cat.put_caption(fp, captioner.id, text)
                for path, info_json in cat.adapters_with([fp for fp, _ in batch]):
                    info = info_from_json(info_json)
                    caption = cat.caption_for(info.file.fingerprint, captioner.id)
                    cat.put_adapter(path, adapter_columns(info, caption))
                cat.bump_version()
            self.captioned += sum(1 for t in texts if t)
            self.reporter.update(min(start + CAPTION_BATCH, len(pending)), len(pending))

    def _caption_previews(self, previews: list[str]) -> list[str]:
        """One caption per preview ("" for a preview that cannot be captioned: a link leading
        out of the library, a decompression bomb, anything the captioner raises for it).

        A failed batch is captioned again one preview at a time, so one bad preview costs only
        its own caption; its empty caption is stored, so it is not retried on every run.
        """
        texts = [""] * len(previews)
        usable: list[tuple[int, str]] = []
        for i, preview in enumerate(previews):
            try:
                target = resolve_beside(preview, library_roots(preview, self.root))
            except Skipped as skipped:
                self._say(f"preview not captioned: {skipped}")
                continue
            if target is not None:
                usable.append((i, target))
        for (i, _), text in zip(usable, self._caption_each([t for _, t in usable])):
            texts[i] = text
        return texts

    def _caption_each(self, paths: list[str]) -> list[str]:
        if not paths:
            return []
        try:
            texts = [clean_text(str(t)[:CAPTION_CHARS]) for t in self.captioner.caption(paths)]
            return (texts + [""] * len(paths))[: len(paths)]
        except CaptionerError:
            raise
        except Exception as exc:  # the captioner is pluggable; one image must not stop a run
            if len(paths) > 1:
                return [text for path in paths for text in self._caption_each([path])]
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self._say(
                f"preview {terminal_safe(os.path.basename(paths[0]))} not captioned "
                f"({type(exc).__name__}: {terminal_safe(first)})"
            )
            return [""]

    def _embed(self) -> None:
        cat = self.cat
        pending = cat.pending_embeddings(self.embedder.id)
        self.reporter.stage("embed", len(pending))
        for start in range(0, len(pending), EMBED_BATCH):
            batch = pending[start : start + EMBED_BATCH]
            texts = [json.loads(record)["document"] for _, _, record in batch]
            vectors = embed_bulk(self.embedder, texts)
            with cat.transaction():
                cat.put_embeddings(
                    self.embedder.id,
                    ((fp, digest, vec.tobytes()) for (fp, digest, _), vec in zip(batch, vectors)),
                )
                cat.bump_version()
            self.embedded += len(batch)
            self.reporter.update(min(start + EMBED_BATCH, len(pending)), len(pending))

    def _publish(self) -> tuple[bool, int]:
        return Publisher(self.cat, self.store, self.embedder.id, self.reporter, self._say).publish()


def index_folder(
    folder: str | os.PathLike[str],
    store_dir: str | os.PathLike[str] | None = None,
    *,
    captions: bool = True,
    embedder: str | Embedder | None = None,
    captioner: str | Captioner | None = None,
    progress: ProgressCallback | None = None,
    cancel: Cancel = None,
    wait: bool = True,
    device: str = "cpu",
) -> IndexReport:
    """Index ``folder`` into the store (default: :func:`default_store_dir`), or refresh it.

    Unchanged files cost one ``stat``; moved files keep their captions and vectors (keyed by
    fingerprint); unreadable files are listed in ``IndexReport.problems``. A second indexer on
    the same store waits (``wait=True``) or raises :class:`StoreBusy`. ``cancel`` (an Event or
    a callable) stops at the next batch, keeping the work done.
    """
    started = time.perf_counter()
    root = os.path.abspath(os.fspath(folder))
    store = resolve_store_dir(store_dir)
    if not os.path.isdir(root):
        raise StoreError(f"folder {root} does not exist or is not a folder; the index is unchanged")
    reporter = Reporter(progress, cancel)
    messages: list[str] = []
    the_embedder = make_embedder(embedder, device=device)
    the_captioner = make_captioner(captioner, device=device) if captions else None
    try:
        with writer_lock(
            store, wait=wait, on_wait=lambda m: reporter.stage("waiting", 0, m), notes=messages
        ):
            run, outcome = _run_with_rebuild(
                root, store, the_embedder, the_captioner, reporter, messages
            )
            summary = _summary(store)
            write_checked(store)
    except sqlite3.OperationalError as exc:
        raise store_write_error(store, exc) from exc
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise write_error(store, exc) from exc
        raise
    published, n_files, n_clusters, cancelled = outcome
    return IndexReport(
        folder=root,
        store=str(store),
        files=n_files or summary["files"],
        adapters=summary["adapters"],
        problems=summary["problems"],
        captioned=run.captioned,
        embedded=run.embedded,
        clusters=n_clusters,
        published=published,
        cancelled=cancelled,
        seconds=time.perf_counter() - started,
        messages=tuple(messages),
        **run.counts,
    )


def _run_with_rebuild(
    root: str,
    store: Path,
    embedder: Embedder,
    captioner: Captioner | None,
    reporter: Reporter,
    messages: list[str],
) -> tuple[_Run, tuple[bool, int, int, bool]]:
    """One run; a corrupt catalog is set aside and the run made once more from scratch.
    Returns the run and (published, n files, n clusters, cancelled)."""
    for attempt in (1, 2):
        run = _Run(root, store, embedder, captioner, reporter, messages)
        try:
            published, n_files, n_clusters = run.run()
            return run, (published, n_files, n_clusters, False)
        except Cancelled as exc:
            messages.append(str(exc))
            return run, (False, 0, 0, True)
        except sqlite3.DatabaseError as exc:
            if attempt == 2 or not is_corruption(exc):
                raise
            run._say(set_aside(store / CATALOG_NAME, str(exc)))
    raise AssertionError("unreachable")


def _summary(store: Path) -> dict:
    cat = Catalog(store / CATALOG_NAME)
    try:
        return {
            "files": cat.count("files"),
            "adapters": cat.meta_int("snapshot_rows") or 0,
            "problems": tuple(cat.problems()),
        }
    finally:
        cat.close()
