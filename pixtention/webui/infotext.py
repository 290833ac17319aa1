"""One ``PixTention`` infotext value: compact JSON with the picks and the settings.

Pasting it back (PNG Info → txt2img, or the API's ``infotext`` field) restores the settings and
pins exactly the picks that were used, with their hashes, weights and phrases, so the image
reproduces even when the library has changed since.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pixtention.webui.args import ARG_NAMES, ArgsError, Pin, WebuiArgs, parse_args

KEY = "PixTention"
VERSION = 1
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
    """Settings and pins from an infotext value; raises ``ArgsError`` with the reason."""
    if isinstance(value, Mapping):
        data = dict(value)
    else:
        try:
            data = json.loads(value)
        except (TypeError, ValueError) as error:
            raise ArgsError(f"PixTention infotext is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ArgsError("PixTention infotext is not a JSON object")
    version = data.get("v")
    if version != VERSION:
        raise ArgsError(f"PixTention infotext version {version!r} is not supported")
    picks = data.get("picks") or []
    if not isinstance(picks, list):
        raise ArgsError("PixTention infotext: 'picks' is not a list")
    pins = tuple(
        Pin(
            name=str(item["name"]),
            short_hash=item.get("hash") or None,
            weight=float(item["w"]) if item.get("w") is not None else None,
            phrase=item.get("phrase") or None,
        )
        for item in picks
        if isinstance(item, dict) and item.get("name")
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
        except ArgsError:
            return None
        return restored.to_values()[ARG_NAMES.index(name)]

    read.__name__ = f"pixtention_paste_{name}"
    return read
