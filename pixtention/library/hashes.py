"""Full-file hashes, computed only when asked for and streamed in chunks.

civitai identifies a file by AutoV2 (first 10 hex of the whole file's SHA-256) and AutoV3 (SHA-256
of the tensor region, i.e. everything after the header, so editing metadata keeps it). kohya's
trainer stores that tensor-region digest as ``sshs_model_hash`` and SAI ModelSpec as
``modelspec.hash_sha256``; when a file carries one, it is reused instead of hashed again.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Callable, Mapping

from pixtention.library.errors import LibraryError
from pixtention.library.info import Hashes

CHUNK = 1 << 20
_HEX64 = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
EMBEDDED_HASH_KEYS = ("sshs_model_hash", "modelspec.hash_sha256")


def embedded_tensor_hash(metadata: Mapping[str, str]) -> str | None:
    """The tensor-region SHA-256 a trainer stored in the header, lower-case, or None."""
    for key in EMBEDDED_HASH_KEYS:
        match = _HEX64.fullmatch(str(metadata.get(key, "")).strip())
        if match:
            return match.group(1).lower()
    return None


def autov2(sha256: str) -> str:
    return sha256[:10].upper()


def autov3(tensor_sha256: str) -> str:
    return tensor_sha256[:12].upper()


def file_hashes(
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
    *,
    chunk_size: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> Hashes:
    """SHA-256 / AutoV2 / AutoV3 of one safetensors file in one streamed pass.

    ``metadata`` (the header's) lets a stored tensor-region hash stand in for AutoV3;
    ``progress(done, total)`` is called after each chunk.
    """
    path = os.fspath(path)
    known = embedded_tensor_hash(metadata or {})
    whole = hashlib.sha256()
    tensors = None if known else hashlib.sha256()
    try:
        total = os.path.getsize(path)
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            whole.update(prefix)
            data_start = 8 + struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else total
            done = len(prefix)
            while chunk := handle.read(chunk_size):
                whole.update(chunk)
                if tensors is not None and done + len(chunk) > data_start:
                    tensors.update(chunk[max(0, data_start - done) :])
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except OSError as exc:
        raise LibraryError(path, f"cannot read: {exc.strerror or exc}") from None
    sha = whole.hexdigest()
    tensor_sha = known or tensors.hexdigest()  # type: ignore[union-attr]
    return Hashes(sha256=sha, autov2=autov2(sha), autov3=autov3(tensor_sha))
