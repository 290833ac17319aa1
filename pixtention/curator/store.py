"""Where the index lives on disk, who may write it, and how its files are replaced safely.

The store is a folder holding the SQLite catalog, the faiss vector file of the current snapshot
and a lock file. Only the indexer takes the lock; readers rely on SQLite WAL snapshots and on the
faiss file being replaced atomically (written to a temporary name, then ``os.replace``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CATALOG_NAME = "catalog.sqlite"
LOCK_NAME = "indexer.lock"
VECTORS_PREFIX = "vectors-"
VECTORS_SUFFIX = ".faiss"


class StoreError(Exception):
    """The store cannot be used as asked; ``str()`` is the one line shown to the user."""


class StoreBusy(StoreError):
    """Another indexer holds the store's lock."""


def default_store_dir() -> Path:
    """``$PIXTENTION_HOME/store`` if set, else the per-user cache folder."""
    home = os.environ.get("PIXTENTION_HOME")
    if home:
        return Path(home).expanduser() / "store"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pixtention" / "store"


def resolve_store_dir(store_dir: str | os.PathLike[str] | None) -> Path:
    return Path(store_dir).expanduser() if store_dir is not None else default_store_dir()


def vectors_name(generation: int) -> str:
    return f"{VECTORS_PREFIX}{generation:08d}{VECTORS_SUFFIX}"


@contextmanager
def writer_lock(store: Path, *, wait: bool = True, on_wait=None) -> Iterator[None]:
    """Hold the store's exclusive writer lock (``fcntl.flock``); released even on SIGKILL.

    With ``wait=False`` a busy store raises :class:`StoreBusy` naming the holder's pid.
    """
    store.mkdir(parents=True, exist_ok=True)
    path = store / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            if not wait:
                raise StoreBusy(
                    f"another indexer (pid {holder}) is writing the store {store}; "
                    "wait for it to finish or run again later"
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for another indexer (pid {holder}) on {store}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then fsync and ``os.replace`` onto ``path``: all or nothing."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def set_aside(path: Path, reason: str) -> str:
    """Move a corrupt store file (and its SQLite companions) out of the way; return a message."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    os.replace(path, target)
    for extra in ("-wal", "-shm"):
        companion = path.with_name(path.name + extra)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + extra))
    return f"store file {path} is corrupt ({reason}); moved it to {target.name} and rebuilding"


def remove_stale_files(store: Path, keep: str | None) -> None:
    """Delete vector files of older snapshots and temporaries left by a killed writer."""
    for entry in store.iterdir():
        name = entry.name
        stale_vectors = name.startswith(VECTORS_PREFIX) and name != keep
        if stale_vectors or (name.startswith(".") and name.endswith(".tmp")):
            entry.unlink(missing_ok=True)
