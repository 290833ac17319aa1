"""One adapter file → ``AdapterInfo``: header, layout, base model, merged metadata, hashes.

This is what the curator indexes and what ``show`` prints. Only the header and sidecars are
read (plus the tiny ``.alpha`` scalars); full hashes only on request.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter

from pixtention.library.base_model import detect_base_model
from pixtention.library.display import terminal_safe
from pixtention.library.errors import LibraryError
from pixtention.library.hashes import file_hashes
from pixtention.library.info import AdapterFile, AdapterInfo, Layout
from pixtention.library.layout import classify, group_by_stem
from pixtention.library.metadata import read_metadata
from pixtention.library.safetensors_file import open_safetensors, read_header

_PASSTHROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)
WARNING_CHARS = 500  # a warning quoting tensor names or file names is cut here


def display_line(text: str, limit: int = WARNING_CHARS) -> str:
    """One terminal-safe line of at most ``limit`` characters (header text may be anything)."""
    safe = terminal_safe(text[: limit * 2])
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def read_alpha(file: AdapterFile) -> tuple[float | None, str | None]:
    """The most common ``alpha`` of the file's modules, read from its 0-dim tensors; returns
    (alpha, warning)."""
    stems, _ = group_by_stem(file.tensors)
    names = [roles["alpha"] for roles in stems.values() if "alpha" in roles]
    names = [n for n in names if file.tensors[n].shape in ((), (1,))]
    if not names:
        return None, None
    values: Counter[float] = Counter()
    try:
        with open_safetensors(file.path) as handle:
            for name in names:
                value = float(handle.get_tensor(name).float().reshape(-1)[0])
                if math.isfinite(value):
                    values[value] += 1
    except BaseException as exc:  # safetensors errors and pyo3 panics alike
        if isinstance(exc, _PASSTHROUGH):
            raise
        return None, f"alpha tensors unreadable ({type(exc).__name__}), alpha unknown"
    if not values:
        return None, "alpha tensors are not finite, alpha unknown"
    return max(values.items(), key=lambda item: (item[1], item[0]))[0], None


def _layout_warnings(layout: Layout) -> list[str]:
    if not layout.unrecognised:
        return []
    sample = ", ".join(layout.unrecognised[:3])
    more = "…" if len(layout.unrecognised) > 3 else ""
    return [f"{len(layout.unrecognised)} tensor(s) match no known adapter layout: {sample}{more}"]


def read_adapter(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    with_hashes: bool = False,
) -> AdapterInfo:
    """Read one adapter file; ``root`` is the library folder (its sub-folders become themes).

    Raises ``LibraryError`` for unreadable files and for safetensors files that hold no adapter
    (e.g. a full checkpoint dropped into the LoRA folder).
    """
    file = read_header(path)
    layout = classify(file.tensors)
    if not layout.unet_modules and not layout.text_encoder_modules:
        raise LibraryError(
            file.path,
            f"not a LoRA/LyCORIS adapter: none of its {len(file.tensors)} tensors has a known "
            "adapter name",
        )
    warnings = _layout_warnings(layout)
    if layout.alpha is None:
        alpha, warning = read_alpha(file)
        layout = dataclasses.replace(layout, alpha=alpha)
        warnings += [warning] if warning else []
    metadata, hints = read_metadata(file.path, file.metadata, root)
    base_model, base_warnings = detect_base_model(file.tensors, hints)
    hashes = file_hashes(file.path, file.metadata) if with_hashes else None
    base_model = dataclasses.replace(base_model, evidence=display_line(base_model.evidence))
    return AdapterInfo(
        file=file,
        layout=layout,
        base_model=base_model,
        metadata=metadata,
        hashes=hashes,
        warnings=tuple(
            display_line(w) for w in list(metadata.warnings) + warnings + list(base_warnings)
        ),
    )
