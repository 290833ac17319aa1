"""The library as the WebUI sees it: background indexing, its status, and suggestions.

One ``LibraryService`` per WebUI process, shared by the script hooks, the UI callbacks and the
REST routes. Indexing runs in a daemon thread (never on the generation thread, never in a route
handler); readers get the last good library meanwhile. The core is reached through ``Core``,
so tests can point the service at a small folder and the real curator and selector.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pixtention.webui.args import Pin, WebuiArgs

STATES = ("missing", "idle", "indexing", "ready", "error", "cancelled")
MAX_QUERY_CHARS = 4000  # ~800 words: far past what CLIP reads, a bound on retrieval's work


@dataclass(frozen=True)
class IndexStatus:
    """What the UI's status line and ``GET /pixtention/v1/status`` show."""

    state: str  # one of STATES
    lora_dir: str
    store_dir: str
    adapters: int = 0
    stage: str = ""
    done: int = 0
    total: int = 0
    eta: float | None = None
    error: str = ""
    finished_at: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["fraction"] = round(self.fraction, 4)
        return data


def _rank(*args: Any, **kwargs: Any) -> Any:
    from pixtention.selector.select import rank

    return rank(*args, **kwargs)


def _warm(library: Any) -> Any:
    from pixtention.selector.vocabulary import warm

    return warm(library)


@dataclass(frozen=True)
class Core:
    """The core entry points the glue calls, bound late so ``import`` stays cheap."""

    index_folder: Callable[..., Any]
    open_library: Callable[..., Any]
    select: Callable[..., Any]
    rank: Callable[..., Any] = _rank
    # the library's own tags and triggers embedded in the background, once per snapshot, so a
    # new prompt embeds only its unfamiliar phrases (selector.vocabulary)
    warm: Callable[[Any], Any] = _warm

    @classmethod
    def default(cls) -> Core:
        from pixtention.curator.indexer import index_folder
        from pixtention.curator.library import open_library
        from pixtention.selector.select import select

        return cls(index_folder=index_folder, open_library=open_library, select=select)


@dataclass
class _Run:
    thread: threading.Thread
    cancel: threading.Event = field(default_factory=threading.Event)


class LibraryService:
    """Owns the store of one Lora folder: index it in the background, answer queries."""

    def __init__(
        self,
        lora_dir: str | Path,
        store_dir: str | Path,
        *,
        core: Core | None = None,
        captions: bool = True,
        index_options: dict[str, Any] | None = None,
    ) -> None:
        self.lora_dir = Path(lora_dir)
        self.store_dir = Path(store_dir)
        self._core = core
        self._captions = captions
        self._index_options = dict(index_options or {})
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()  # held only while the store is being opened
        self._library: Any = None
        self._run: _Run | None = None
        self._status = IndexStatus("idle", str(self.lora_dir), str(self.store_dir))

    @property
    def core(self) -> Core:
        if self._core is None:
            self._core = Core.default()
        return self._core

    # -- indexing ---------------------------------------------------------------------------

    def status(self) -> IndexStatus:
        with self._lock:
            status = self._status
        if status.state == "idle" and self.library() is not None:
            with self._lock:
                status = self._status  # opening an existing index made it "ready"
        if status.state == "idle" and not self.lora_dir.is_dir():
            return replace(status, state="missing", error=f"{self.lora_dir} is not a folder")
        return status

    def start_index(self) -> bool:
        """Start a background (re)index; ``False`` if one is already running."""
        with self._lock:
            if self._run is not None and self._run.thread.is_alive():
                return False
            thread = threading.Thread(target=self._index, name="pixtention-index", daemon=True)
            self._run = _Run(thread)
            self._status = replace(self._status, state="indexing", stage="scan", error="")
        thread.start()
        return True

    def cancel_index(self) -> bool:
        with self._lock:
            run = self._run
        if run is None or not run.thread.is_alive():
            return False
        run.cancel.set()
        return True

    def wait(self, timeout: float | None = None) -> IndexStatus:
        """Block until the current run ends (tests and ``--nowebui`` scripts)."""
        with self._lock:
            run = self._run
        if run is not None:
            run.thread.join(timeout)
        return self.status()

    def _index(self) -> None:
        run = self._run
        assert run is not None
        try:
            report = self.core.index_folder(
                self.lora_dir,
                self.store_dir,
                captions=self._captions,
                progress=self._on_progress,
                cancel=run.cancel,
                **self._index_options,
            )
        except Exception as error:  # reported in the console and the UI/API status
            state = "cancelled" if run.cancel.is_set() else "error"
            message = _explain(error)
            self._set(state=state, error=message, eta=None)
            if state == "error":
                print(f"PixTention: indexing {self.lora_dir} failed: {message}", file=sys.stderr)
            return
        with self._lock:
            self._library = None  # reopen on next use: the store has changed
        library = self.library()
        count = _library_size(library)
        # A cancelled run returns normally with the work done so far kept.
        state = "cancelled" if getattr(report, "cancelled", False) else "ready"
        self._set(state=state, stage="done", adapters=count, eta=0.0, finished_at=time.time())
        print(summary_line(self.lora_dir, report, count), file=sys.stderr)

    def _on_progress(self, progress: Any) -> None:
        self._set(
            stage=str(getattr(progress, "stage", "")),
            done=int(getattr(progress, "done", 0)),
            total=int(getattr(progress, "total", 0)),
            eta=getattr(progress, "eta", None),
        )

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    # -- reading ----------------------------------------------------------------------------

    def library(self) -> Any:
        """The last good library, or ``None`` when nothing has been indexed yet.

        Opened once however many callers ask at the same time (every UI and REST request at
        start-up asks; each open decodes the whole catalog)."""
        with self._lock:
            if self._library is not None:
                return self._library
        with self._open_lock:
            with self._lock:
                if self._library is not None:
                    return self._library
            if not self.store_dir.is_dir() or not any(self.store_dir.iterdir()):
                return None
            try:
                library = self.core.open_library(self.store_dir)
            except Exception as error:  # an unreadable store is shown as an error, not hidden
                self._set(state="error", error=f"cannot open index: {error}")
                return None
            self.core.warm(library)
            with self._lock:
                self._library = library
                if self._status.state == "idle":
                    size = _library_size(library)
                    self._status = replace(self._status, state="ready", adapters=size)
            return library

    def suggest(
        self, prompt: str, args: WebuiArgs, *, base_model: str | None = None, mode: str = "suggest"
    ) -> list[Any]:
        """Picks for one prompt with the UI/API settings; ``[]`` when there is no index yet."""
        library = self.library()
        if library is None or not prompt.strip():
            return []
        # Retrieval reads the start of a long prompt only (the picks' phrase spans index it).
        prompt = prompt[:MAX_QUERY_CHARS]
        return list(
            self.core.select(
                prompt,
                library,
                **args.select_options(),
                base_model=base_model,
                exclude=tuple(args.exclude),
                pins=pin_keys(library, args.pins[: args.k]),
                mode=mode,
            )
        )

    def rank(
        self, prompt: str, args: WebuiArgs, *, base_model: str | None = None, k: int = 5
    ) -> list[Any]:
        """The ``k`` adapters most relevant to ``prompt`` that the settings do not exclude
        (``select.rank``: shown to pin from, not applied); ``[]`` when there is no index yet."""
        library = self.library()
        if library is None or not prompt.strip():
            return []
        return list(
            self.core.rank(
                prompt[:MAX_QUERY_CHARS],
                library,
                k=k,
                clusters=args.clusters,
                base_model=base_model,
                exclude=tuple(args.exclude),
            )
        )


def pin_keys(library: Any, pins: Sequence[Pin]) -> tuple[str, ...]:
    """What the selector should look pins up by: the file the name names (a byte-identical
    copy under another name is another adapter, with its own sidecar); the short hash only
    when no file has that name any more (a renamed file); the name otherwise (reported)."""
    keys = []
    for pin in pins:
        record = library.find(pin.name)
        if record is None and pin.short_hash:
            record = library.find(pin.short_hash)
        keys.append(record.path if record is not None else pin.name)
    return tuple(keys)


def summary_line(lora_dir: Path, report: Any, adapters: int) -> str:
    """The console's one line per index run: what changed, what could not be read, how long."""
    changed = sum(int(getattr(report, name, 0)) for name in ("new", "changed", "moved", "removed"))
    problems = len(getattr(report, "problems", ()))
    parts = [f"PixTention: {adapters} adapters indexed from {lora_dir}"]
    parts.append(f"{changed} changed" if changed else "nothing changed")
    if problems:
        parts.append(f"{problems} files skipped (see Settings → PixTention or `doctor`)")
    if getattr(report, "cancelled", False):
        parts.append("cancelled")
    seconds = getattr(report, "seconds", None)
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds:.1f} s")
    for message in getattr(report, "messages", ()):
        parts.append(str(message))
    return "; ".join(parts)


def _explain(error: Exception) -> str:
    """One line for the user; a missing package says how to install it."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        package = {"faiss": "faiss-cpu"}.get(error.name, error.name)
        return (
            f"{error.name} is not installed (run: python -m pip install --no-deps {package} "
            "in the WebUI's environment, then restart)"
        )
    return f"{type(error).__name__}: {error}"


def _library_size(library: Any) -> int:
    if library is None:
        return 0
    try:
        return len(library)
    except TypeError:
        return len(getattr(library, "records", ()))
