"""Walk a LoRA folder cheaply: stat() only, so an unchanged library is recognised in milliseconds.

Each adapter file is identified by (path, size, mtime_ns) plus a signature of its sidecars
(``name.json``, ``name.civitai.info``, previews …) so that editing metadata is noticed too.
Symbolic links to folders are followed once (loops are cut by device/inode), names that are not
valid UTF-8 are kept as surrogate-escaped ``str`` paths.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass

ADAPTER_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".ckpt", ".pth", ".bin")
MODEL_SUFFIXES = ADAPTER_SUFFIXES + PICKLE_SUFFIXES


@dataclass(frozen=True)
class ScannedFile:
    path: str
    size: int
    mtime_ns: int
    sidecars: str  # digest of the sidecars' names, sizes and mtimes; "" when there are none
    problem: str | None = None  # set when the file cannot even be stat()ed


def _sidecar_signature(stem: str, names: list[str], entries: dict[str, os.DirEntry]) -> str:
    prefix = stem + "."
    parts = []
    for i in range(bisect.bisect_left(names, prefix), len(names)):  # no slicing: O(siblings)
        name = names[i]
        if not name.startswith(prefix):
            break
        if name.lower().endswith(MODEL_SUFFIXES):
            continue
        try:
            st = entries[name].stat()
        except OSError:
            continue
        parts.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}")
    if not parts:
        return ""
    joined = "\n".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.blake2b(joined, digest_size=8).hexdigest()


def scan_folder(root: str) -> list[ScannedFile]:
    """Every model file under ``root`` (sorted by path), following folder links without loops."""
    found: list[ScannedFile] = []
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                continue
            seen_dirs.add(key)
            with os.scandir(folder) as it:
                entries = {e.name: e for e in it}
        except OSError:
            continue  # vanished or unreadable folder: nothing in it can be indexed
        names = sorted(entries)
        for name in names:
            entry = entries[name]
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(entry.path)
                continue
            if not name.lower().endswith(MODEL_SUFFIXES):
                continue
            stem = name[: name.rfind(".")]
            try:
                st = entry.stat()
            except OSError as exc:
                reason = "broken symbolic link" if entry.is_symlink() else exc.strerror
                found.append(ScannedFile(entry.path, -1, 0, "", f"cannot read file: {reason}"))
                continue
            signature = _sidecar_signature(stem, names, entries)
            found.append(ScannedFile(entry.path, st.st_size, st.st_mtime_ns, signature))
    found.sort(key=lambda f: f.path)
    return found
