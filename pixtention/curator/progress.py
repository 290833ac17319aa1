"""Progress reports and cancellation for long indexing runs, shared by CLI, WebUI and API."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

STAGES = ("waiting", "scan", "read", "caption", "embed", "publish", "done")


@dataclass(frozen=True)
class Progress:
    """One report: ``done`` of ``total`` units in ``stage``; ``eta`` in seconds when known."""

    stage: str
    done: int
    total: int
    eta: float | None = None
    message: str = ""


ProgressCallback = Callable[[Progress], None]


class _Settable(Protocol):
    def is_set(self) -> bool: ...


Cancel = Callable[[], bool] | _Settable | None


class Cancelled(Exception):
    """Raised inside the indexer when the caller asked to stop; work done so far is kept."""


def cancel_requested(cancel: Cancel) -> bool:
    """Accept a ``threading.Event``-like object or a zero-argument callable."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if is_set is not None else cancel())  # type: ignore[operator]


class Reporter:
    """Sends :class:`Progress` for one stage at a time, estimating ETA from the stage's pace."""

    def __init__(self, callback: ProgressCallback | None, cancel: Cancel = None) -> None:
        self._callback = callback
        self._cancel = cancel
        self._stage = ""
        self._start = 0.0

    def stage(self, stage: str, total: int, message: str = "") -> None:
        self._stage, self._start = stage, time.perf_counter()
        self.update(0, total, message)

    def update(self, done: int, total: int, message: str = "") -> None:
        """Report, then raise :class:`Cancelled` if the caller asked to stop."""
        if self._callback is not None:
            eta = None
            elapsed = time.perf_counter() - self._start
            if 0 < done < total:
                eta = elapsed / done * (total - done)
            elif done >= total:
                eta = 0.0
            self._callback(Progress(self._stage, done, total, eta, message))
        if cancel_requested(self._cancel):
            raise Cancelled(f"indexing cancelled during {self._stage}")
