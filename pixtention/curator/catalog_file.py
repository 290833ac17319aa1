"""The catalog's file on disk: what SQLite's errors mean, and whether the file (and its
``-wal``/``-shm``/``-journal`` companions) may be opened, checked with ``lstat`` before SQLite
follows a link or writes through one."""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from pixtention.curator.store import CATALOG_COMPANIONS, StoreError, clear_away


def display_text(text: str | None) -> str | None:
    """Text SQLite can store (UTF-8): lone surrogates — bytes of a file name that are not UTF-8 —
    become U+FFFD. For convenience and search columns; exact values (paths, names) live in the
    JSON columns, which escape them losslessly."""
    if text is None:
        return None
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


class CatalogCorrupt(sqlite3.DatabaseError):
    """A damage PixTention found itself (a failed ``quick_check``, garbage schema metadata)."""


def is_corruption(exc: sqlite3.Error) -> bool:
    """True when SQLite says the file itself is damaged (not locked, not out of space)."""
    text = str(exc).lower()
    return isinstance(exc, CatalogCorrupt) or (
        isinstance(exc, sqlite3.DatabaseError)
        and ("malformed" in text or "not a database" in text or "corrupt" in text)
    )


def is_disk_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower()


def is_read_only(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a folder" if stat.S_ISDIR(mode) else "not a regular file"


def prepare_for_writer(path: Path) -> list[str]:
    """Clear links and folders squatting on the catalog's or its companions' names (the writer
    then opens a real file), and say what was done. An empty catalog is said, then rebuilt."""
    notes = []
    for name in (path.name, *(path.name + extra for extra in CATALOG_COMPANIONS)):
        candidate = path.with_name(name)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            notes.append(clear_away(candidate, f"catalog file ({_kind(info.st_mode)})"))
        elif name == path.name and info.st_size == 0:
            notes.append(f"catalog {path} was empty (0 bytes); rebuilding the index")
    return notes


def check_for_reader(path: Path) -> None:
    """Raise :class:`StoreError` (one line) unless the catalog can be read as it is."""
    repair = "run `python -m pixtention index FOLDER` to set it aside and rebuild"
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise StoreError(
            f"no index at {path.parent}: run `python -m pixtention index FOLDER` first"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"catalog {path} is {_kind(info.st_mode)}, not read; {repair}")
    if info.st_size == 0:
        # What a first index run killed before its first commit leaves behind: no index yet.
        raise StoreError(
            f"no index in catalog {path}: it is empty (0 bytes; a first index run stopped "
            "early?); run `python -m pixtention index FOLDER` to build it"
        )
    for extra in CATALOG_COMPANIONS:
        companion = path.with_name(path.name + extra)
        try:
            mode = os.lstat(companion).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            raise StoreError(f"catalog companion {companion} is {_kind(mode)}, not read; {repair}")


def sqlite_uri(path: Path, **params: str) -> str:
    """A ``file:`` URI for ``path`` (any bytes in its name) with SQLite's URI parameters."""
    quoted = urllib.parse.quote(os.fsencode(os.path.abspath(path)), safe="/")
    return f"file:{quoted}?" + "&".join(f"{k}={v}" for k, v in params.items())


def store_write_error(store: Path, exc: sqlite3.OperationalError) -> StoreError:
    """One line for SQLite refusing to write: disk full, read-only, or another failure."""
    if is_disk_full(exc):
        return StoreError(
            f"cannot write the store {store}: {exc} (disk full?); the index keeps its last "
            "good state — free some space and index again"
        )
    if is_read_only(exc):
        return StoreError(
            f"cannot write the store {store}: {exc} (read-only or not yours?); the index is "
            "unchanged — fix the permissions or choose another store folder"
        )
    return StoreError(f"cannot write the store {store}: {exc}; the index keeps its last state")
