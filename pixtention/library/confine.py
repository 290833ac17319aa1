"""Files beside an adapter (sidecars, previews) are read only when they stay in the library.

The Lora folder is where people unpack downloaded archives, and an archive can carry symbolic
links: ``name.txt → /proc/self/environ`` would put the process environment (tokens, keys) into
the catalog and the embedded document. So a regular file placed in the folder is read; a symbolic
link only when its target resolves inside the library folder or the adapter's own folder;
anything else is skipped, and the caller reports the skip. Opening never follows a link the
check did not see (``O_NOFOLLOW``) and never blocks on a FIFO (``O_NONBLOCK``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from pixtention.library.display import terminal_safe

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_OPEN_FLAGS |= getattr(os, "O_CLOEXEC", 0)


class Skipped(Exception):
    """A file beside an adapter that is not read; ``str()`` says why, in one display-safe line.

    ``link`` is True when the file is a symbolic link that was not followed (reported apart:
    it is what a hostile archive plants).
    """

    def __init__(self, message: str, *, link: bool = False) -> None:
        super().__init__(message)
        self.link = link


def library_roots(
    adapter: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> tuple[str, ...]:
    """The folders a link beside ``adapter`` may point into: its own folder and ``root``."""
    roots = [os.path.realpath(os.path.dirname(os.path.abspath(adapter)))]
    if root is not None:
        roots.append(os.path.realpath(root))
    return tuple(dict.fromkeys(roots))


def _within(target: str, folder: str) -> bool:
    return target == folder or target.startswith(folder.rstrip(os.sep) + os.sep)


def resolve_beside(path: str | os.PathLike[str], roots: Sequence[str]) -> str | None:
    """The path to open for a file beside an adapter, or None when there is no such file.

    Raises :class:`Skipped` for a symbolic link whose target leaves ``roots`` (or loops).
    """
    path = os.fspath(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Skipped(f"{_name(path)}: cannot read ({exc.strerror or exc}), skipped") from None
    if not stat.S_ISLNK(info.st_mode):
        return path
    target = os.path.realpath(path)
    if not any(_within(target, root) for root in roots):
        raise Skipped(
            f"{_name(path)}: symbolic link to {terminal_safe(target)}, outside the library "
            "folder, not followed",
            link=True,
        )
    return target


def open_beside(path: str | os.PathLike[str], roots: Sequence[str]) -> tuple[int, int] | None:
    """(file descriptor, size) of a regular file beside an adapter, or None when there is none.

    Raises :class:`Skipped` for links out of ``roots`` and for anything not a regular file.
    The caller closes the descriptor.
    """
    target = resolve_beside(path, roots)
    if target is None:
        return None
    try:
        fd = os.open(target, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link after the check
            raise Skipped(f"{_name(path)}: symbolic link, not followed", link=True) from None
        raise Skipped(f"{_name(path)}: cannot read ({exc.strerror or exc}), skipped") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Skipped(f"{_name(path)}: not a regular file, skipped")
    return fd, info.st_size


def _name(path: str) -> str:
    return terminal_safe(Path(path).name)
