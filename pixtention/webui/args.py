"""The script's arguments: one frozen, documented order shared by the UI and the API.

The WebUI hands every hook the values of the components ``ui()`` returned, in list order, and
the API (``alwayson_scripts: {"PixTention": {"args": [...]}}``) sends the same list as raw JSON
with no Gradio preprocessing. So the order below is a public contract: append only, never
reorder. The API may also send a single dict of named settings instead of the list.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

MODES = ("auto", "regionalise", "both", "suggest")
MODE_LABELS = {
    "auto": "Auto-pick",
    "regionalise": "Regionalise my LoRAs",
    "both": "Both",
    "suggest": "Suggest only",
}
MASK_LAYERS = ("mid", "all")
COMPETITIONS = ("soft", "hard")


class ArgsError(ValueError):
    """A script argument the API or a pasted infotext got wrong; ``str()`` names it and why."""


@dataclass(frozen=True)
class Pin:
    """An adapter the user pinned: always picked, optionally with its weight and phrase fixed.

    Written ``name[#shorthash][:weight][@phrase]`` in the UI's text box, e.g.
    ``inkstyle#A1B2C3D4E5:0.8@ink drawing``; the hash lets a pasted infotext find the same file
    even after it was renamed.
    """

    name: str
    short_hash: str | None = None
    weight: float | None = None
    phrase: str | None = None

    def to_text(self) -> str:
        text = self.name
        if self.short_hash:
            text += f"#{self.short_hash}"
        if self.weight is not None:
            text += f":{self.weight:g}"
        if self.phrase:
            text += f"@{self.phrase}"
        return text


@dataclass(frozen=True)
class ArgSpec:
    name: str
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


# The frozen API order. Index = position in ``alwayson_scripts.PixTention.args``.
ARG_SPECS: tuple[ArgSpec, ...] = (
    ArgSpec("enabled", False, "turn PixTention on for this generation"),
    ArgSpec("mode", "auto", "auto | regionalise | both | suggest", choices=MODES),
    ArgSpec("k", 3, "at most this many adapters per image", 0, 16),
    ArgSpec("clusters", 8, "themes (clusters) to search", 1, 64),
    ArgSpec(
        "threshold",
        0.35,
        "abstain below this score (a description that plainly names the phrase scores "
        "about 0.45-0.65, an unrelated one 0.05-0.3)",
        0.0,
        1.0,
    ),
    ArgSpec("per_phrase", 1, "at most this many adapters per phrase", 1, 8),
    ArgSpec(
        "mask_layers", "mid", "attention layers the masks come from: mid | all", choices=MASK_LAYERS
    ),
    ArgSpec("softness", 0.1, "mask temperature (higher = softer edges)", 0.01, 2.0),
    ArgSpec("competition", "soft", "soft | hard (argmax) masks", choices=COMPETITIONS),
    ArgSpec("warmup_steps", 1, "steps before adapters switch on", 1, 50),
    ArgSpec("freeze_at", 0.4, "fraction of steps after which masks stop changing", 0.05, 1.0),
    ArgSpec("show_masks", False, "add mask overlays to the output gallery"),
    ArgSpec("pins", "", "pinned adapters: name[#hash][:weight][@phrase], comma separated"),
    ArgSpec("exclude", "", "adapter names never to pick, comma separated"),
)
ARG_NAMES = tuple(spec.name for spec in ARG_SPECS)
_SPECS = {spec.name: spec for spec in ARG_SPECS}
_ALIASES = {"enable": "enabled", "top_k": "k", "nprobe": "clusters", "excludes": "exclude"}


@dataclass(frozen=True)
class WebuiArgs:
    """The parsed, validated script arguments of one generation."""

    enabled: bool = False
    mode: str = "auto"
    k: int = 3
    clusters: int = 8
    threshold: float = 0.35
    per_phrase: int = 1
    mask_layers: str = "mid"
    softness: float = 0.1
    competition: str = "soft"
    warmup_steps: int = 1
    freeze_at: float = 0.4
    show_masks: bool = False
    pins: tuple[Pin, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def applies_adapters(self) -> bool:
        return self.enabled and self.mode != "suggest"

    def select_options(self) -> dict[str, Any]:
        """The ``select()`` keywords these settings fix (the same for UI, API and benchmarks)."""
        return {
            "k": self.k,
            "clusters": self.clusters,
            "threshold": self.threshold,
            "per_phrase": self.per_phrase,
        }

    def to_values(self) -> list[Any]:
        """The positional list in API order, with pins/exclude as the UI's text."""
        values = []
        for name in ARG_NAMES:
            value = getattr(self, name)
            if name == "pins":
                value = ", ".join(pin.to_text() for pin in value)
            elif name == "exclude":
                value = ", ".join(value)
            values.append(value)
        return values


assert tuple(f.name for f in fields(WebuiArgs)) == ARG_NAMES, "ARG_SPECS and WebuiArgs disagree"


def parse_args(values: Sequence[Any] | Mapping[str, Any], defaults: WebuiArgs | None = None):
    """Validate script args given positionally (UI/API order) or as one dict of named settings.

    Short lists keep the defaults for the rest (as the WebUI's API does); ``None`` means "use the
    default". A dict (alone, or in the first position, where the API puts it and fills the other
    positions with the UI defaults) names settings and turns PixTention on unless it says
    ``"enabled": false``.
    """
    base = defaults or WebuiArgs()
    if isinstance(values, Mapping):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ArgsError(
            f"PixTention args: expected a list of values or one dict of settings, "
            f"got {_short(values)}"
        )
    if values and isinstance(values[0], Mapping):
        base = parse_args([None, *values[1:]], base)
        named = {"enabled": True, **dict(values[0])}
    else:
        if len(values) > len(ARG_NAMES):
            raise ArgsError(
                f"PixTention args: got {len(values)} values, expected at most {len(ARG_NAMES)} "
                f"({', '.join(ARG_NAMES)})"
            )
        named = {ARG_NAMES[i]: v for i, v in enumerate(values)}
    changes: dict[str, Any] = {}
    for raw_key, value in named.items():
        key = _ALIASES.get(str(raw_key).lower(), str(raw_key).lower())
        if key not in _SPECS:
            raise ArgsError(
                f"PixTention args: unknown setting {raw_key!r} (known: {', '.join(ARG_NAMES)})"
            )
        if value is None:
            continue
        changes[key] = _coerce(_SPECS[key], value)
    return replace(base, **changes)


def _coerce(spec: ArgSpec, value: Any) -> Any:
    kind = type(spec.default)
    try:
        if kind is bool:
            return _to_bool(value)
        if spec.choices:
            return _to_choice(spec, value)
        if kind is int or kind is float:
            return _to_number(spec, value, kind)
        if spec.name == "pins":
            return parse_pins(value)
        if spec.name == "exclude":
            return _to_names(value)
    except ArgsError:
        raise
    except (TypeError, ValueError, ArithmeticError) as error:
        raise ArgsError(f"PixTention args: {spec.name}={_short(value)}: {error}") from None
    raise AssertionError(f"no coercion for {spec.name}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError("expected true or false")


def _to_choice(spec: ArgSpec, value: Any) -> str:
    if isinstance(value, str):
        text = value.strip().lower()
        for key in spec.choices:
            label = MODE_LABELS.get(key, key).lower() if spec.name == "mode" else key
            if text in (key, label):
                return key
    raise ArgsError(
        f"PixTention args: {spec.name}={value!r} is not one of {', '.join(spec.choices)}"
    )


def _to_number(spec: ArgSpec, value: Any, kind: type) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > 64:
        raise ValueError("expected a number")
    number = float(value)  # OverflowError for huge ints: reported like any bad value
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    if kind is int:
        if number != int(number):
            raise ValueError("expected a whole number")
        number = int(number)
    if (spec.minimum is not None and number < spec.minimum) or (
        spec.maximum is not None and number > spec.maximum
    ):
        raise ArgsError(
            f"PixTention args: {spec.name}={_short(value)} is outside "
            f"{spec.minimum:g}..{spec.maximum:g}"
        )
    return number


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to one short line (a bad value may be megabytes long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


MAX_PINS = 16  # = the largest K
MAX_WEIGHT = 20.0  # beyond this a LoRA only burns the image; the WebUI's sliders stop at 2


def check_weight(name: str, weight: float) -> float:
    """A user-given adapter weight: finite and within ±``MAX_WEIGHT``, else a clear error."""
    if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
        raise ArgsError(
            f"PixTention args: weight {weight:g} for {name!r} is not a usable weight "
            f"(use a finite number within ±{MAX_WEIGHT:g})"
        )
    return weight


def _to_names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ValueError("expected comma-separated names or a list of names")
    return tuple(dict.fromkeys(i.strip() for i in items if i.strip()))


_PIN_TEXT = re.compile(
    r"^(?P<name>[^#:@]+?)\s*(?:#(?P<hash>[0-9A-Fa-f]{6,64}))?\s*"
    r"(?::\s*(?P<weight>[-+]?\d+(?:\.\d*)?|[-+]?\.\d+))?\s*(?:@(?P<phrase>.+))?$"
)


def parse_pins(value: Any) -> tuple[Pin, ...]:
    """Pins from the UI text (``a#hash:0.8@phrase, b``), a list of such strings, or dicts."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ArgsError(f"PixTention args: pins={_short(value)}: expected text, a list or dicts")
    if len(value) > MAX_PINS:
        raise ArgsError(
            f"PixTention args: {len(value)} pins; at most {MAX_PINS} (the most K allows)"
        )
    pins: list[Pin] = []
    for item in value:
        if isinstance(item, Pin):
            pins.append(item)
        elif isinstance(item, str):
            pins.append(_pin_from_text(item))
        elif isinstance(item, Mapping):
            pins.append(_pin_from_dict(item))
        else:
            raise ArgsError(f"PixTention args: pin {item!r} is neither text nor a dict")
    return tuple(pins)


def _pin_from_text(text: str) -> Pin:
    match = _PIN_TEXT.match(text.strip())
    if not match:
        raise ArgsError(
            f"PixTention args: pin {text.strip()!r} is not name[#hash][:weight][@phrase]"
        )
    weight = match["weight"]
    name = match["name"].strip()
    return Pin(
        name=name,
        short_hash=match["hash"],
        weight=check_weight(name, float(weight)) if weight is not None else None,
        phrase=(match["phrase"] or "").strip() or None,
    )


def _pin_from_dict(item: Mapping[str, Any]) -> Pin:
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ArgsError(f"PixTention args: pin {dict(item)!r} has no name")
    weight = item.get("weight", item.get("w"))
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
        raise ArgsError(f"PixTention args: pin {name!r} weight {_short(weight)} is not a number")
    try:
        weight = float(weight) if weight is not None else None
    except OverflowError:
        weight = math.inf
    short_hash = item.get("short_hash") or item.get("hash")
    if short_hash is not None and not (
        isinstance(short_hash, str) and re.fullmatch(r"[0-9A-Fa-f]{6,64}", short_hash)
    ):
        raise ArgsError(f"PixTention args: pin {name!r} hash {_short(short_hash)} is not hex")
    phrase = item.get("phrase")
    return Pin(
        name=name.strip(),
        short_hash=short_hash or None,
        weight=check_weight(name, weight) if weight is not None else None,
        phrase=str(phrase).strip() if phrase else None,
    )


def args_doc() -> str:
    """The documented arg order, for README/API help: one line per position."""
    lines = []
    for index, spec in enumerate(ARG_SPECS):
        default = json.dumps(spec.default)
        lines.append(f"{index:2d}  {spec.name:<13} default {default:<7} {spec.doc}")
    return "\n".join(lines)
