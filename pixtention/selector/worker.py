"""A query runs on one dedicated thread that uses one torch thread.

A query is small (a few dozen phrases, a few thousand candidates), so a second core speeds it
up little on a quiet machine, while on a busy one (a sampler, an indexer or another program on
the other core) torch's two-thread kernels wait at every barrier for the thread that lost its
core: over 200 real prompts at 10k adapters, with one core busy, select() took 857 ms p50 on
two torch threads and 57 ms on this thread. torch's thread count is per OS thread, so this
changes nothing for the caller or the WebUI's sampler.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_local = threading.local()


def _init_thread() -> None:
    _local.is_query_thread = True
    _one_torch_thread()


def _one_torch_thread() -> None:
    """One torch thread here, once torch is loaded (the CLI's numpy queries never load it)."""
    if not getattr(_local, "torch_set", False) and (torch := sys.modules.get("torch")):
        torch.set_num_threads(1)
        _local.torch_set = True


def _on_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    _one_torch_thread()
    return fn(*args, **kwargs)


def on_query_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` run on the query thread (directly when already on it)."""
    global _executor
    if getattr(_local, "is_query_thread", False):
        return fn(*args, **kwargs)
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                1, thread_name_prefix="pixtention-query", initializer=_init_thread
            )
    return _executor.submit(_on_thread, fn, *args, **kwargs).result()


def query_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: every call of ``fn`` runs on the query thread."""

    @functools.wraps(fn)
    def run(*args, **kwargs) -> T:
        return on_query_thread(fn, *args, **kwargs)

    return run
