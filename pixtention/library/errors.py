"""The one error type the library layer raises for a file it cannot use."""

from __future__ import annotations

import os

from pixtention.library.display import terminal_safe


class LibraryError(Exception):
    """A file that cannot be read as an adapter; ``str()`` is the one line shown to the user.

    ``path`` is exact (it may hold any bytes the file system allows); ``str()`` and ``reason``
    are terminal-safe, because file names and header text come from downloads.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        safe_reason = terminal_safe(reason)
        super().__init__(f"{terminal_safe(os.fspath(path))}: {safe_reason}")
        self.path = os.fspath(path)
        self.reason = safe_reason
