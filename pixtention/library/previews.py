"""Preview images of an adapter: files beside it first, then images embedded in its header.

File names follow the WebUI's extra-networks page (``name.preview.png`` written by the civitai
helpers, then ``name.png`` …). Embedded previews are kohya's ``ssmd_cover_images`` (a JSON list
of base64 images) and SAI ModelSpec's ``modelspec.thumbnail`` (a data URI).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
EMBEDDED_CAP = 8 * 1024 * 1024  # bytes of base64 text decoded at most


def preview_candidates(path: str | os.PathLike[str]) -> list[Path]:
    """Every file name a preview may have, best first."""
    path = Path(path)
    names = [f"{path.stem}.preview.{ext}" for ext in IMAGE_EXTENSIONS]
    names += [f"{path.stem}.{ext}" for ext in IMAGE_EXTENSIONS]
    return [path.with_name(name) for name in names]


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _lower_case_listing(folder: str) -> dict[str, str]:
    """{lower-case name: name} of a folder, cached while the folder is unchanged (a library
    folder holds hundreds of adapters; listing it once per adapter would be quadratic)."""
    try:
        return _listing(folder, os.stat(folder).st_mtime_ns)
    except OSError:
        return {}


@functools.lru_cache(maxsize=32)
def _listing(folder: str, mtime_ns: int) -> dict[str, str]:
    return {entry.lower(): entry for entry in os.listdir(folder)}


def find_previews(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Preview image files that exist beside the adapter, best first.

    Candidates are matched case-insensitively against the folder listing when the exact name is
    missing (``Name.PNG`` on a case-sensitive disk is still the preview).
    """
    candidates = preview_candidates(path)
    folder = Path(path).parent
    listing = _lower_case_listing(str(folder))
    found: list[str] = []
    for candidate in candidates:
        listed = listing.get(candidate.name.lower())
        if listed is None:
            continue
        actual = candidate if _is_regular(candidate) else folder / listed
        if _is_regular(actual) and str(actual) not in found:
            found.append(str(actual))
    return tuple(found)


def _cover_images(metadata: Mapping[str, str]) -> list[str]:
    raw = metadata.get("ssmd_cover_images", "")
    if not raw or len(raw) > EMBEDDED_CAP:
        return []
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return []
    return (
        [item for item in value if isinstance(item, str) and item]
        if isinstance(value, list)
        else []
    )


def _thumbnail(metadata: Mapping[str, str]) -> str | None:
    raw = metadata.get("modelspec.thumbnail", "")
    if not raw.startswith("data:") or "," not in raw or len(raw) > EMBEDDED_CAP:
        return None
    return raw.split(",", 1)[1]


def has_embedded_preview(metadata: Mapping[str, str]) -> bool:
    """True when the header carries a preview image (no decoding beyond the JSON list)."""
    return bool(_cover_images(metadata)) or _thumbnail(metadata) is not None


def embedded_previews(metadata: Mapping[str, str]) -> list[bytes]:
    """The embedded preview images' bytes (cover images, then the thumbnail); invalid base64
    entries are left out."""
    encoded = _cover_images(metadata)
    thumbnail = _thumbnail(metadata)
    if thumbnail is not None:
        encoded.append(thumbnail)
    images = []
    for text in encoded:
        try:
            images.append(base64.b64decode(text, validate=False))
        except (binascii.Error, ValueError):
            continue
    return [image for image in images if image]
