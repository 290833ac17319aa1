"""One ``PixTention`` infotext value: compact JSON with the picks and the settings.

Pasting it back (PNG Info → txt2img, or the API's ``infotext`` field) restores the settings and
pins exactly the picks that were used, with their hashes, weights and phrases, so the image
reproduces even when the library has changed since.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pixtention.webui.args import ARG_NAMES, ArgsError, WebuiArgs, parse_args, parse_pins

KEY = "PixTention"
VERSION = 1
MAX_TEXT = 64_000  # 16 picks with long phrases and notes fit many times over
_SETTINGS = (
    "mode",
    "k",
    "clusters",
    "threshold",
    "per_phrase",
    "mask_layers",
    "softness",
    "competition",
    "warmup_steps",
    "freeze_at",
)


class PickLike(Protocol):
    name: str
    short_hash: str | None
    weight: float
    phrase: str


def encode(args: WebuiArgs, picks: Iterable[PickLike], notes: Iterable[str] = ()) -> str:
    """The infotext value for one image (no spaces, so it stays short in the PNG text)."""
    data: dict[str, Any] = {"v": VERSION}
    data.update({name: getattr(args, name) for name in _SETTINGS})
    data["picks"] = [
        {
            "name": pick.name,
            "hash": pick.short_hash,
            "w": round(float(pick.weight), 4),
            "phrase": pick.phrase,
        }
        for pick in picks
    ]
    notes = list(notes)
    if notes:
        data["notes"] = notes
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def decode(value: str | Mapping[str, Any]) -> WebuiArgs:
    """Settings and pins from an infotext value; raises ``ArgsError`` with the reason.

    Whatever is pasted (it is user text), the only exception is ``ArgsError``.
    """
    if isinstance(value, str):
        return _decode_text(value)
    return _decode_data(value)


@functools.lru_cache(maxsize=8)
def _decode_text(value: str) -> WebuiArgs:
    """Cached: the WebUI calls one paste reader per component with the same text."""
    if len(value) > MAX_TEXT:
        raise ArgsError(f"PixTention infotext is {len(value)} characters; at most {MAX_TEXT}")
    try:
        data = json.loads(value)
    except (TypeError, ValueError, RecursionError) as error:
        raise ArgsError(f"PixTention infotext is not JSON: {type(error).__name__}") from None
    return _decode_data(data)


def _decode_data(data: Any) -> WebuiArgs:
    if not isinstance(data, Mapping):
        raise ArgsError("PixTention infotext is not a JSON object")
    data = dict(data)
    version = data.get("v")
    if version != VERSION or isinstance(version, bool):
        raise ArgsError(f"PixTention infotext version {repr(version)[:20]} is not supported")
    picks = data.get("picks") or []
    if not isinstance(picks, list):
        raise ArgsError("PixTention infotext: 'picks' is not a list")
    items = [item for item in picks if isinstance(item, Mapping) and item.get("name")]
    pins = parse_pins(
        [
            {key: item.get(key) for key in ("name", "hash", "w", "phrase") if key in item}
            for item in items
        ]
    )
    settings = {name: data[name] for name in _SETTINGS if name in data}
    restored = parse_args(settings)
    # Exactly the pinned picks: a grown library must not add one more adapter on replay.
    k = len(pins) if restored.mode in ("auto", "both") else restored.k
    return parse_args({"enabled": True, "k": k, "pins": list(pins)}, defaults=restored)


def field_reader(name: str):
    """A paste target for ``infotext_fields``: param dict → value for one UI component.

    Returns ``None`` (the WebUI then leaves the component unchanged) when the infotext has no
    PixTention entry or it cannot be read.
    """

    def read(params: Mapping[str, Any]) -> Any:
        raw = params.get(KEY)
        if not raw:
            return None
        try:
            restored = decode(raw)
        except ArgsError:  # the only exception decode raises: a bad paste changes nothing
            return None
        return restored.to_values()[ARG_NAMES.index(name)]

    read.__name__ = f"pixtention_paste_{name}"
    return read
