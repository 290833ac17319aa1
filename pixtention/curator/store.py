"""Where the index lives on disk, who may write it, and how its files are replaced safely.

The store is a folder holding the SQLite catalog, the faiss vector file of the current snapshot
and a lock file. Only the indexer takes the lock; readers rely on SQLite WAL snapshots and on the
faiss file being replaced atomically (written to a temporary name, then ``os.replace``).

The store does not trust its folder: the default one lives inside ``models/Lora``, where people
unpack downloaded archives. Files it writes are never reached through a symbolic link (the lock
is opened ``O_NOFOLLOW``, temporaries are created exclusively, the catalog and its companions are
checked with ``lstat`` first), a link or folder squatting on a store name is moved out of the
way, and every file name the catalog records must be a plain name the store itself generates.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CATALOG_NAME = "catalog.sqlite"
CATALOG_COMPANIONS = ("-wal", "-shm", "-journal")
LOCK_NAME = "indexer.lock"
CHECKED_NAME = "catalog.checked"  # the catalog's identity when a writer last left it sound
VECTORS_PREFIX = "vectors-"
VECTORS_SUFFIX = ".faiss"

_VECTORS_NAME = re.compile(r"vectors-[0-9]{8,20}\.faiss")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# Errors that mean "this store cannot be written here", whatever the file.
WRITE_ERRNOS = frozenset(
    (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
)


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


def is_vectors_name(name: str) -> bool:
    """True for a name :func:`vectors_name` makes: no folder part, nothing else."""
    return _VECTORS_NAME.fullmatch(name) is not None


def vectors_path(store: Path, name: str) -> Path:
    """The vector file the catalog names, confined to the store (``../victim`` is refused)."""
    if not is_vectors_name(name):
        raise StoreError(
            f"the catalog in {store} names the vector file {name[:80]!r}, which is not a file "
            "name the store makes; run `python -m pixtention index FOLDER` to repair it"
        )
    return store / name


def write_error(store: Path, exc: OSError) -> StoreError:
    """One line for an error writing the store: read-only, full, or not permitted."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StoreError(
            f"cannot write the store {store}: {reason} (disk full?); the index keeps its last "
            "good state — free some space and index again"
        )
    return StoreError(
        f"cannot write the store {store}: {reason} (read-only or not yours?); the index is "
        "unchanged — fix the permissions or choose another store folder"
    )


def _make_store(store: Path) -> None:
    try:
        store.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(f"the store {store} is a file, not a folder; choose another") from None
    except OSError as exc:
        raise write_error(store, exc) from None


def clear_away(path: Path, what: str) -> str:
    """Remove a symbolic link, or move anything else, squatting on a store file's name; returns
    the message saying so. The link's target is never touched."""
    if os.path.islink(path):
        os.unlink(path)
        return f"{what} {path} was a symbolic link; removed the link (its target is untouched)"
    return set_aside(path, f"{what} is not a regular file")


def _open_lock(store: Path, notes: list[str]) -> int:
    """The lock file's descriptor: a regular file in the store, opened without following links."""
    path = store / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
    for attempt in (1, 2):
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            in_the_way = exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK)
            if attempt == 1 and in_the_way:
                notes.append(clear_away(path, "store lock"))
                continue
            raise write_error(store, exc) from None
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)
        if attempt == 1:
            notes.append(clear_away(path, "store lock"))
    raise StoreError(f"the store lock {path} keeps being replaced; check who writes {store}")


@contextmanager
def writer_lock(
    store: Path,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    notes: list[str] | None = None,
) -> Iterator[None]:
    """Hold the store's exclusive writer lock (``fcntl.flock``); released even on SIGKILL.

    With ``wait=False`` a busy store raises :class:`StoreBusy` naming the holder's pid. A link or
    folder found at the lock's name is cleared away and said in ``notes``.
    """
    _make_store(store)
    fd = _open_lock(store, notes if notes is not None else [])
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            holder = holder if holder.isdigit() else "?"
            if not wait:
                raise StoreBusy(
                    f"another indexer (pid {holder}) is writing the store {store}; "
                    "wait for it to finish or run again later"
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for another indexer (pid {holder}) on {store}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        except OSError:
            pass  # the pid is a courtesy for the busy message; a full disk must not stop here
        yield
    finally:
        os.close(fd)  # closing drops the flock


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then fsync and ``os.replace`` onto ``path``: all or nothing.

    The temporary is created exclusively (never through a planted link); a link or folder
    squatting on ``path`` is moved aside first (``os.replace`` would not replace a folder).
    """
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        clear_away(path, "store file")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
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
    """Move a corrupt store file (and its SQLite companions) out of the way; return a message.

    Renaming moves a symbolic link itself, never its target, and stays inside the store folder.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    os.replace(path, target)
    for extra in CATALOG_COMPANIONS:
        companion = path.with_name(path.name + extra)
        if os.path.lexists(companion):
            os.replace(companion, target.with_name(target.name + extra))
    return f"store file {path} is corrupt ({reason}); moved it to {target.name} and rebuilding"


def remove_stale_files(store: Path, keep: str | None) -> None:
    """Delete vector files of older snapshots and temporaries left by a killed writer.

    Best effort: an entry that cannot be removed (a folder planted under such a name, a file
    another user owns) is left where it is.
    """
    for entry in store.iterdir():
        name = entry.name
        stale_vectors = name.startswith(VECTORS_PREFIX) and name != keep
        if stale_vectors or (name.startswith(".") and name.endswith(".tmp")):
            try:
                entry.unlink(missing_ok=True)
            except OSError:
                continue


def file_identity(path: Path) -> str:
    """``inode:size:mtime_ns`` of a file (not following links), or "" when it is absent."""
    try:
        info = os.lstat(path)
    except OSError:
        return ""
    return f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def read_checked(store: Path) -> str:
    """The catalog identity recorded when a writer last left it sound ("" when none)."""
    try:
        fd = os.open(store / CHECKED_NAME, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 256).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def write_checked(store: Path) -> None:
    """Record the catalog's identity now that a writer leaves it sound (best effort; nothing
    is written when it is already recorded, so a no-change refresh stays cheap)."""
    identity = file_identity(store / CATALOG_NAME)
    if not identity or identity == read_checked(store):
        return

    def write(tmp: str) -> None:
        Path(tmp).write_text(identity, encoding="ascii")

    with contextlib.suppress(OSError):  # then the next run checks once more: slower, not wrong
        atomic_write(store / CHECKED_NAME, write)
