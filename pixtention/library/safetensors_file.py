"""Read a safetensors file's header — metadata, tensor names, shapes and dtypes — never its data.

Validation is the ``safetensors`` library's job (offsets, overlaps, dtypes); this module only adds
what it lacks for a folder of untrusted downloads: a size cap checked *before* anything is
allocated, the raw header bytes for the fingerprint, pickle files refused without unpickling,
and one line per failure (``LibraryError(path, reason)``) whatever went wrong underneath.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetensors import safe_open

from pixtention.library.errors import LibraryError
from pixtention.library.info import AdapterFile, TensorInfo

HEADER_CAP = 100 * 1000 * 1000  # bytes; the same bound the safetensors library enforces
PICKLE_SUFFIXES = (".pt", ".ckpt", ".bin", ".pth")
PICKLE_REASON = "unsupported format (pickle) — convert it to .safetensors"

_LENGTH = struct.Struct("<Q")
# Leading bytes of formats people rename to .safetensors: zip (torch.save) and raw pickle.
_FOREIGN_MAGIC = ((b"PK\x03\x04", "a zip archive (torch.save)"), (b"\x80", "a pickle"))
_PASSTHROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)
_HEADER_STARTS = (b"{", b" ", b"")  # a header's JSON starts the 9th byte ("": cut off there)


def _looks_like(prefix: bytes) -> str:
    """What the first bytes of a non-safetensors file suggest, for the one-line reason."""
    if all(32 <= b < 127 or b in (9, 10, 13) for b in prefix):
        return "it starts with text"
    return "no safetensors header at its start"


def fingerprint(size: int, header: bytes) -> str:
    """``size:digest`` — cheap identity that survives moves and renames (design §3)."""
    return f"{size}:{hashlib.sha256(header).hexdigest()[:32]}"


def is_pickle_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


def _regular_file_stat(path: str) -> os.stat_result:
    """Stat ``path`` and insist on a regular file (a FIFO or device would block or never end)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        kind = "broken symlink" if os.path.islink(path) else "file not found"
        raise LibraryError(path, kind) from None
    except OSError as exc:
        raise LibraryError(path, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise LibraryError(path, "is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise LibraryError(path, "not a regular file")
    return info


def read_header_bytes(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """The JSON header bytes (without the 8-byte length), checked against the cap and file size."""
    path = os.fspath(path)
    info = _regular_file_stat(path)
    if info.st_size == 0:
        raise LibraryError(path, "empty file")
    if info.st_size < _LENGTH.size:
        raise LibraryError(path, f"truncated: {info.st_size} bytes, too short for a header")
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(_LENGTH.size)
            (length,) = _LENGTH.unpack(prefix)
            for magic, what in _FOREIGN_MAGIC:
                if prefix.startswith(magic) and length > info.st_size:
                    raise LibraryError(path, f"not a safetensors file (it is {what})")
            if length > info.st_size and handle.read(1) not in _HEADER_STARTS:
                # the "length" is really the first bytes of some other format (text, an image…)
                raise LibraryError(path, f"not a safetensors file ({_looks_like(prefix)})")
            handle.seek(_LENGTH.size)
            if length > HEADER_CAP:
                raise LibraryError(
                    path, f"header of {length} bytes exceeds the {HEADER_CAP // 10**6} MB cap"
                )
            if length + _LENGTH.size > info.st_size:
                raise LibraryError(
                    path, f"truncated: header claims {length} bytes, file has {info.st_size}"
                )
            header = handle.read(length)
    except OSError as exc:
        raise LibraryError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(header) != length:
        raise LibraryError(path, "truncated while reading the header (file changed?)")
    if not header.lstrip(b" ").startswith(b"{"):
        raise LibraryError(path, "not a safetensors file (header is not a JSON object)")
    return header, info


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _reason(exc: BaseException) -> str:
    """A user-facing reason for a safetensors failure; its own message is kept as the detail."""
    detail = _first_line(exc)
    # safetensors < 0.5 names the error type; later releases say "file not fully covered".
    if "MetadataIncompleteBuffer" in detail or "not fully covered" in detail:
        return f"truncated: tensor data is incomplete (interrupted download?) [{detail}]"
    return f"corrupt safetensors file: {detail}"


@contextlib.contextmanager
def open_safetensors(path: str, framework: str = "pt") -> Iterator[Any]:
    """``safe_open`` for any name the OS accepts. safetensors only takes UTF-8 paths, but Linux
    names may be any bytes (they reach Python surrogate-escaped): those go through the
    process's descriptor link instead."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        links = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
        descriptor = os.open(path, os.O_RDONLY)
        try:
            with safe_open(f"{links}/{descriptor}", framework=framework) as handle:
                yield handle
        finally:
            os.close(descriptor)
        return
    with safe_open(path, framework=framework) as handle:
        yield handle


def _tensor_infos(handle, header: bytes) -> dict[str, TensorInfo]:
    """Every tensor's dtype and shape; safetensors < 0.4 slices have no ``get_dtype``, so the
    (already validated) header's dtypes stand in for it there."""
    infos: dict[str, TensorInfo] = {}
    header_dtypes: dict[str, str] | None = None
    for name in list(handle.keys()):  # safe_open is not iterable
        view = handle.get_slice(name)
        shape = tuple(int(n) for n in view.get_shape())
        if hasattr(view, "get_dtype"):
            dtype = str(view.get_dtype())
        else:
            if header_dtypes is None:
                entries = json.loads(header)
                header_dtypes = {k: v["dtype"] for k, v in entries.items() if k != "__metadata__"}
            dtype = str(header_dtypes[name])
        infos[name] = TensorInfo(dtype=dtype, shape=shape)
    return infos


def read_header(path: str | os.PathLike[str]) -> AdapterFile:
    """Read and validate one safetensors header; raise ``LibraryError`` for anything unusable."""
    path = os.fspath(path)
    if is_pickle_path(path):
        raise LibraryError(path, PICKLE_REASON)
    header, info = read_header_bytes(path)
    try:
        with open_safetensors(path) as handle:
            metadata = dict(handle.metadata() or {})
            tensors = _tensor_infos(handle, header)
    except BaseException as exc:  # safetensors raises its own types and pyo3 panics
        if isinstance(exc, _PASSTHROUGH):
            raise
        raise LibraryError(path, _reason(exc)) from None
    return AdapterFile(
        path=path,
        size=info.st_size,
        mtime=info.st_mtime,
        fingerprint=fingerprint(info.st_size, header),
        metadata={str(k): str(v) for k, v in metadata.items()},
        tensors=tensors,
    )
