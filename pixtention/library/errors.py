"""The one error type the library layer raises for a file it cannot use."""

from __future__ import annotations

import os


class LibraryError(Exception):
    """A file that cannot be read as an adapter; ``str()`` is the one line shown to the user."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason
