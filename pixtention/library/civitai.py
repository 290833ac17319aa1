"""civitai JSON in its several shapes → one small view.

Civitai-Helper's ``name.civitai.info`` is the model-*version* object (``trainedWords``,
``baseModel``, ``images``, and a ``model`` summary); civitai-browser-plus's ``name.api_info.json``
is the *model* object (``name``, ``description``, ``tags``, ``modelVersions``); LoRA-Manager's
``name.metadata.json`` has its own top-level fields and nests the version object under
``civitai``. Fields are read defensively: any of them may be missing, null or the wrong type.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_PROMPTS = 8
MAX_PROMPT_CHARS = 1000
MAX_LIST = 64


@dataclass(frozen=True)
class CivitaiView:
    """What PixTention uses from one civitai-style sidecar (descriptions still HTML)."""

    model_name: str = ""
    version_name: str = ""
    descriptions: tuple[str, ...] = ()  # model description, then version description
    tags: tuple[str, ...] = ()
    trained_words: tuple[str, ...] = ()
    base_model: str = ""
    prompts: tuple[str, ...] = ()
    model_id: int | None = None
    version_id: int | None = None
    model_type: str = ""
    strength: float | None = None  # LoRA-Manager's usage tip
    notes: str = ""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(value: Any) -> tuple[str, ...]:
    """A list of strings or of {"name": …} objects (civitai uses both for tags)."""
    if not isinstance(value, list):
        return ()
    out = []
    for item in value[:MAX_LIST]:
        text = _text(item) or _text(_dict(item).get("name"))
        if text:
            out.append(text)
    return tuple(out)


def _prompts(images: Any) -> tuple[str, ...]:
    if not isinstance(images, list):
        return ()
    prompts: list[str] = []
    for image in images:
        prompt = _text(_dict(_dict(image).get("meta")).get("prompt"))
        if prompt and prompt not in prompts:
            prompts.append(prompt[:MAX_PROMPT_CHARS])
        if len(prompts) >= MAX_PROMPTS:
            break
    return tuple(prompts)


def _matching_version(model: Mapping[str, Any], file_name: str) -> Mapping[str, Any]:
    """The version of a model object that lists ``file_name``, else its first (newest)."""
    versions = [_dict(v) for v in model.get("modelVersions") or [] if isinstance(v, Mapping)]
    for version in versions:
        for entry in version.get("files") or []:
            if _text(_dict(entry).get("name")).lower() == file_name.lower():
                return version
    return versions[0] if versions else {}


def _strength(value: Any) -> float | None:
    """LoRA-Manager stores ``usage_tips`` as a JSON string like '{"strength": 0.8}'."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    strength = _dict(value).get("strength")
    if isinstance(strength, (int, float)) and not isinstance(strength, bool):
        return float(strength) if math.isfinite(strength) else None
    return None


def from_version(version: Mapping[str, Any], model: Mapping[str, Any] | None = None) -> CivitaiView:
    """A view of a model-version object, with its parent model object when known."""
    summary = _dict(version.get("model"))
    model = model or {}
    descriptions = tuple(
        text
        for text in (
            _text(model.get("description")) or _text(summary.get("description")),
            _text(version.get("description")),
        )
        if text
    )
    return CivitaiView(
        model_name=_text(model.get("name")) or _text(summary.get("name")),
        version_name=_text(version.get("name")),
        descriptions=descriptions,
        tags=_strings(model.get("tags"))
        or _strings(summary.get("tags"))
        or _strings(version.get("tags")),
        trained_words=_strings(version.get("trainedWords")),
        base_model=_text(version.get("baseModel")),
        prompts=_prompts(version.get("images")),
        model_id=_int(model.get("id")) or _int(version.get("modelId")),
        version_id=_int(version.get("id")),
        model_type=_text(model.get("type")) or _text(summary.get("type")),
    )


def from_sidecar(data: Mapping[str, Any], adapter_path: str) -> CivitaiView:
    """A view of any of the three sidecar shapes (see the module docstring)."""
    if "modelVersions" in data:
        version = _matching_version(data, os.path.basename(adapter_path))
        return from_version(version, data)
    if "civitai" in data or "model_name" in data or "base_model" in data:
        return _from_lora_manager(data)
    return from_version(data)


def _from_lora_manager(data: Mapping[str, Any]) -> CivitaiView:
    nested = from_version(_dict(data.get("civitai")))
    description = _text(data.get("modelDescription"))
    return CivitaiView(
        model_name=_text(data.get("model_name")) or nested.model_name,
        version_name=nested.version_name,
        descriptions=(description,) if description else nested.descriptions,
        tags=_strings(data.get("tags")) or nested.tags,
        trained_words=nested.trained_words,
        base_model=_text(data.get("base_model")) or nested.base_model,
        prompts=nested.prompts,
        model_id=nested.model_id,
        version_id=nested.version_id,
        model_type=nested.model_type,
        strength=_strength(data.get("usage_tips")),
        notes=_text(data.get("notes")),
    )


def civitai_ids(view: CivitaiView) -> dict[str, Any]:
    """model_id, version_id and the page URL, for the UI and the catalog."""
    out: dict[str, Any] = {}
    if view.model_id is not None:
        out["model_id"] = view.model_id
        url = f"https://civitai.com/models/{view.model_id}"
        if view.version_id is not None:
            url += f"?modelVersionId={view.version_id}"
        out["url"] = url
    if view.version_id is not None:
        out["version_id"] = view.version_id
    if view.model_type:
        out["type"] = view.model_type
    if view.version_name:
        out["version_name"] = view.version_name
    return out


_LORA_TAG = re.compile(r"<(?:lora|lyco):([^:>]+):([-+]?\d*\.?\d+)")


def weight_in_prompts(prompts: tuple[str, ...], names: set[str]) -> float | None:
    """The weight example prompts give a ``<lora:NAME:w>`` tag for one of ``names`` (the most
    common value; ties → the first seen)."""
    weights: list[float] = []
    for prompt in prompts:
        for name, weight in _LORA_TAG.findall(prompt):
            if name.strip().lower() in names:
                weights.append(float(weight))
    if not weights:
        return None
    return max(weights, key=weights.count)
