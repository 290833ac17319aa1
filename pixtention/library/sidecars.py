"""The files other tools write beside an adapter, read safely.

Sidecars come from the internet (civitai) or from other extensions, so every read is bounded:
only regular files (a FIFO would block), never a symbolic link leading out of the library folder
(:mod:`.confine`), at most ``SIDECAR_CAP`` bytes, text decoded leniently, JSON that fails to
parse or is not an object skipped. Every skip is a warning, never an exception — a bad sidecar
must not hide a good adapter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixtention.library.confine import Skipped, library_roots, open_beside
from pixtention.library.display import terminal_safe

SIDECAR_CAP = 2 * 1024 * 1024  # bytes
TEXT_CAP = 64 * 1024  # characters kept of name.txt / name.description.txt

# suffix appended to the file stem → field of ``Sidecars``; order is only for listing.
JSON_SIDECARS = (
    (".json", "user"),  # WebUI user metadata (and civitai-browser-plus writes it too)
    (".civitai.info", "civitai_info"),  # Civitai-Helper: raw civitai model-version JSON
    (".api_info.json", "api_info"),  # civitai-browser-plus: civitai model JSON
    (".metadata.json", "lora_manager"),  # ComfyUI LoRA-Manager
)
TEXT_SIDECARS = ((".description.txt", "description_txt"), (".txt", "text"))


@dataclass(frozen=True)
class Sidecars:
    """What was found beside one adapter file; absent or unusable sidecars stay empty."""

    user: dict[str, Any] = field(default_factory=dict)
    civitai_info: dict[str, Any] = field(default_factory=dict)
    api_info: dict[str, Any] = field(default_factory=dict)
    lora_manager: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    description_txt: str = ""
    found: tuple[str, ...] = ()  # file names read successfully
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # names of links out of the library folder, not followed


def sidecar_path(path: str | os.PathLike[str], suffix: str) -> Path:
    """``folder/name.safetensors`` + ``.civitai.info`` → ``folder/name.civitai.info``."""
    path = Path(path)
    return path.with_name(path.stem + suffix)


def read_bounded(
    path: Path, cap: int = SIDECAR_CAP, roots: Sequence[str] | None = None
) -> tuple[bytes | None, str | None]:
    """(bytes, None) for a regular file within ``cap``; (None, warning) when skipped; (None,
    None) when there is no such file. A symbolic link is followed only into ``roots`` (default:
    the file's own folder), see :mod:`.confine`."""
    data, warning, _ = _read_bounded(path, cap, roots)
    return data, warning


def _read_bounded(
    path: Path, cap: int, roots: Sequence[str] | None
) -> tuple[bytes | None, str | None, bool]:
    """:func:`read_bounded`, plus whether the file was a link left unfollowed."""
    try:
        opened = open_beside(path, roots if roots is not None else library_roots(path))
    except Skipped as skipped:
        return None, str(skipped), skipped.link
    if opened is None:
        return None, None, False
    fd, size = opened
    name = terminal_safe(path.name)
    with os.fdopen(fd, "rb") as handle:
        if size > cap:
            return None, f"{name}: {size} bytes exceeds the {cap} byte cap, skipped", False
        try:
            data = handle.read(cap + 1)
        except OSError as exc:
            return None, f"{name}: cannot read ({exc.strerror or exc}), skipped", False
    if len(data) > cap:
        return None, f"{name}: grew past the {cap} byte cap while reading, skipped", False
    return data, None, False


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM tolerated) with undecodable bytes replaced, NULs dropped."""
    return data.decode("utf-8-sig", errors="replace").replace("\x00", "")


def parse_json_object(data: bytes, name: str) -> tuple[dict[str, Any], str | None]:
    """A JSON object from sidecar bytes, or ({}, warning) for anything else."""
    try:
        value = json.loads(decode_text(data))
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return {}, f"{name}: malformed JSON ({reason}), skipped"
    if not isinstance(value, dict):
        return {}, f"{name}: expected a JSON object, found {type(value).__name__}, skipped"
    return value, None


def read_sidecars(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Sidecars:
    """Read every known sidecar of the adapter at ``path`` (``root``: the library folder, where
    symbolic links may point; links leading elsewhere are skipped and listed in ``skipped``)."""
    roots = library_roots(path, root)
    values: dict[str, Any] = {}
    found: list[str] = []
    warnings: list[str] = []
    skipped: list[str] = []
    for suffix, key in JSON_SIDECARS:
        side = sidecar_path(path, suffix)
        data, warning, link = _read_bounded(side, SIDECAR_CAP, roots)
        if link:
            skipped.append(side.name)
        if data is not None:
            values[key], warning = parse_json_object(data, terminal_safe(side.name))
            if warning is None:
                found.append(side.name)
        if warning:
            warnings.append(warning)
    for suffix, key in TEXT_SIDECARS:
        side = sidecar_path(path, suffix)
        data, warning, link = _read_bounded(side, SIDECAR_CAP, roots)
        if link:
            skipped.append(side.name)
        if data is not None:
            text = decode_text(data).strip()
            if len(text) > TEXT_CAP:
                warnings.append(
                    f"{terminal_safe(side.name)}: longer than {TEXT_CAP} characters, truncated"
                )
                text = text[:TEXT_CAP]
            values[key] = text
            found.append(side.name)
        if warning:
            warnings.append(warning)
    return Sidecars(**values, found=tuple(found), warnings=tuple(warnings), skipped=tuple(skipped))
