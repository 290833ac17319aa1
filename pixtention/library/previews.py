"""Preview images of an adapter: files beside it first, then images embedded in its header.

File names follow the WebUI's extra-networks page (``name.preview.png`` written by the civitai
helpers, then ``name.png`` …). Embedded previews are kohya's ``ssmd_cover_images`` (a JSON list
of base64 images) and SAI ModelSpec's ``modelspec.thumbnail`` (a data URI).

Previews are downloads too: a symbolic link leading out of the library folder is not followed
(:mod:`.confine`), and :func:`open_preview` bounds what decoding one may cost — a 17 KB PNG can
claim 12000×12000 pixels (600 MB decoded), and PIL's own guard raises an error type no caller
expects. One bad preview costs its caption, nothing else.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pixtention.library.confine import Skipped, library_roots, open_beside, resolve_beside
from pixtention.library.display import terminal_safe

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
EMBEDDED_CAP = 8 * 1024 * 1024  # bytes of base64 text decoded at most
PREVIEW_SIDE = 512  # longest side handed to a captioner (BLIP looks at 384)
PREVIEW_MAX_PIXELS = 36_000_000  # 6000×6000: larger previews are refused before decoding
PREVIEW_FILE_CAP = 64 * 1024 * 1024  # bytes


class PreviewError(ValueError):
    """A preview that is not decoded (too large, not an image, a link out of the library);
    ``str()`` is one display-safe line."""


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


def find_previews(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> tuple[str, ...]:
    """Preview image files that exist beside the adapter, best first (see
    :func:`find_previews_checked`)."""
    return find_previews_checked(path, root)[0]


def find_previews_checked(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(previews, skipped): preview image files beside the adapter, best first, and the names of
    symbolic links among the candidates that lead out of the library folder ``root``.

    Candidates are matched case-insensitively against the folder listing when the exact name is
    missing (``Name.PNG`` on a case-sensitive disk is still the preview).
    """
    candidates = preview_candidates(path)
    folder = Path(path).parent
    roots = library_roots(path, root)
    listing = _lower_case_listing(str(folder))
    found: list[str] = []
    skipped: list[str] = []
    for candidate in candidates:
        listed = listing.get(candidate.name.lower())
        if listed is None:
            continue
        actual = candidate if os.path.lexists(candidate) else folder / listed
        try:
            target = resolve_beside(actual, roots)
        except Skipped:
            if actual.name not in skipped:
                skipped.append(actual.name)
            continue
        if target is not None and _is_regular(Path(target)) and str(actual) not in found:
            found.append(str(actual))
    return tuple(found), tuple(skipped)


def open_preview(
    path: str | os.PathLike[str],
    side: int = PREVIEW_SIDE,
    *,
    root: str | os.PathLike[str] | None = None,
    max_pixels: int = PREVIEW_MAX_PIXELS,
) -> Any:
    """The preview at ``path`` as an RGB ``PIL.Image`` at most ``side`` pixels on its longest
    side; raises :class:`PreviewError` (a ``ValueError``) for anything that cannot be used.

    The size is read from the header before any pixel is decoded; JPEGs are decoded reduced
    (``draft``), other formats one at a time and shrunk at once, so a preview costs at most
    ``max_pixels`` × 4 bytes, briefly.
    """
    from PIL import Image

    name = terminal_safe(Path(path).name)
    try:
        opened = open_beside(path, library_roots(path, root))
    except Skipped as skipped:
        raise PreviewError(str(skipped)) from None
    if opened is None:
        raise PreviewError(f"{name}: no such file")
    fd, size = opened
    with os.fdopen(fd, "rb") as handle:
        if size > PREVIEW_FILE_CAP:
            raise PreviewError(f"{name}: {size} bytes exceeds the {PREVIEW_FILE_CAP} byte cap")
        try:
            with warnings.catch_warnings():  # the pixel cap below is stricter than PIL's warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(handle)  # lazy: reads the header only
            with img:
                width, height = img.size
                if width <= 0 or height <= 0 or width * height > max_pixels:
                    raise PreviewError(
                        f"{name}: {width}×{height} pixels exceeds the {max_pixels} pixel cap"
                    )
                img.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
                img.thumbnail((side, side))
                return img.convert("RGB")
        except PreviewError:
            raise
        except Exception as exc:  # PIL raises many types for hostile files (bombs, SyntaxError)
            detail = terminal_safe(str(exc).strip().splitlines()[0][:200] if str(exc) else "")
            raise PreviewError(
                f"{name}: not a usable image ({type(exc).__name__}: {detail})"
            ) from None


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
