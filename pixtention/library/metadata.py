"""Merge every metadata source of one adapter into ``AdapterMetadata`` (design §3).

Precedence, highest first (user edits win): WebUI ``name.json``; civitai sidecars
(``.civitai.info``, ``.api_info.json``, LoRA-Manager ``.metadata.json``); ``modelspec.*``;
kohya ``ss_*``; ``name.txt`` / ``name.description.txt``, the file name and its folders.
Each field takes the first source that has it; tags are the exception: training tags by
frequency first, then civitai and ModelSpec tags.

Every text field is bounded and cleaned of control characters here, where it is read: a header
may hold 100 MB in one value and ESC sequences in a title, and whatever is kept is stored,
embedded and shown (:mod:`.display`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pixtention.library.civitai import CivitaiView, civitai_ids, from_sidecar, weight_in_prompts
from pixtention.library.display import clean_text, terminal_safe
from pixtention.library.html_text import html_to_text, truncate
from pixtention.library.info import AdapterMetadata
from pixtention.library.previews import find_previews_checked, has_embedded_preview
from pixtention.library.sidecars import Sidecars, read_sidecars

DESCRIPTION_CHARS = 2000
TOP_TAGS = 32
MAX_TAGS = 64
MAX_TRIGGERS = 32
TAG_FREQUENCY_CAP = 8 * 1024 * 1024  # characters of ss_tag_frequency parsed at most
# Bounds on what one adapter may put into the catalog (lengths in characters).
TITLE_CHARS = 200
TAG_CHARS = 100
TRIGGER_CHARS = 200
NOTE_CHARS = 2000  # notes, negative text
HINT_CHARS = 200  # base-model statements, version names, folder names
LIST_INPUT_CHARS = 64 * 1024  # of a comma-separated header value split into tags or triggers
PREVIEW_LINK_SKIPPED = "preview is a symbolic link out of the library folder, not followed"
CAPTION_TAG_LENGTH = 16  # mean tag length from which "tags" are captions (split into words)

_CATEGORY_WORDS = {
    "character": "character characters celebrity celebrities person people oc",
    "style": "style styles artstyle artist artists aesthetic",
    "clothing": "clothing clothes outfit outfits costume costumes fashion",
    "background": "background backgrounds scenery landscape environment buildings building "
    "architecture location",
    "object": "object objects item items vehicle vehicles weapon weapons food tool tools assets",
    "concept": "concept concepts pose poses action actions effect effects",
}
_CATEGORY_OF = {w: c for c, words in _CATEGORY_WORDS.items() for w in words.split()}
_WEIGHT_HINT = re.compile(r"(?:weight|strength|multiplier)\D{0,12}?(\d*\.?\d+)", re.IGNORECASE)
_WORD = re.compile(r"[a-z][a-z'-]{2,}")


def decode_tag_frequency(raw: str) -> tuple[Counter[str], str | None]:
    """kohya's ``ss_tag_frequency`` ({dataset: {tag: count}} as a JSON string), summed over
    datasets; returns (counts, warning)."""
    if len(raw) > TAG_FREQUENCY_CAP:
        return Counter(), f"ss_tag_frequency: {len(raw)} characters, too large, skipped"
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return Counter(), "ss_tag_frequency: malformed JSON, skipped"
    if not isinstance(value, dict):
        return Counter(), "ss_tag_frequency: not a JSON object, skipped"
    total: Counter[str] = Counter()
    for tags in value.values():
        if not isinstance(tags, dict):
            continue
        for tag, count in tags.items():
            number = _number(count)
            if isinstance(tag, str) and tag.strip() and number and number > 0:
                total[tag.strip()] += number
    return total, None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def top_training_tags(counts: Counter[str], limit: int = TOP_TAGS) -> list[str]:
    """Most frequent training tags; when the "tags" are really captions (long on average),
    their frequent words instead (as the WebUI's metadata editor does)."""
    if not counts:
        return []
    if sum(len(tag) for tag in counts) / len(counts) >= CAPTION_TAG_LENGTH:
        words: Counter[str] = Counter()
        for caption, count in counts.items():
            for word in _WORD.findall(caption.lower()):
                words[word] += count
        counts = words
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [tag for tag, _ in ranked[:limit]]


def infer_category(*tag_lists: Iterable[str]) -> str | None:
    """style / character / concept / clothing / background / object from category-like tags
    (civitai puts the category among a model's tags) or folder names, first list first."""
    for tags in tag_lists:
        for tag in tags:
            word = tag.strip().lower()
            if word in _CATEGORY_OF:
                return _CATEGORY_OF[word]
            if word.endswith((" style", " artstyle")):
                return "style"
    return None


def folders_between(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None
) -> tuple[str, ...]:
    """Folder names from ``root`` down to the file (themes in a user's library); () outside."""
    if root is None:
        return ()
    try:
        relative = Path(os.path.abspath(path)).parent.relative_to(os.path.abspath(root))
    except ValueError:
        return ()
    return tuple(part for part in relative.parts if part not in ("", "."))


def split_triggers(texts: Iterable[str]) -> tuple[str, ...]:
    """Comma-separated trigger phrases, stripped, deduplicated (case-insensitively), bounded."""
    seen: dict[str, str] = {}
    for text in texts:
        for part in clean_text(text[:LIST_INPUT_CHARS]).split(","):
            phrase = " ".join(part.split())[:TRIGGER_CHARS]
            if phrase and phrase.lower() not in seen:
                seen[phrase.lower()] = phrase
                if len(seen) >= MAX_TRIGGERS:
                    return tuple(seen.values())
    return tuple(seen.values())


def bounded_text(text: str, limit: int, *, keep_newlines: bool = False) -> str:
    """``text`` cleaned of control characters (:func:`.display.clean_text`) and cut to
    ``limit`` characters, reading no more of it than needed."""
    return truncate(clean_text(text[: limit + 1], keep_newlines=keep_newlines).strip(), limit)


def _header_text(header: Mapping[str, str], key: str, limit: int = LIST_INPUT_CHARS) -> str:
    """A header value's first ``limit`` characters, stripped (values may be 100 MB long)."""
    return header.get(key, "")[:limit].strip()


def displayable(text: str) -> str:
    """File names may hold bytes that are not UTF-8 (surrogate-escaped by Python); text meant
    for people, documents and tokenizers gets U+FFFD for them instead."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _first(*values: str) -> str:
    return next((value for value in values if value), "")


def _user_text(user: Mapping[str, Any], key: str) -> str:
    value = user.get(key)
    return value[:LIST_INPUT_CHARS].strip() if isinstance(value, str) else ""


def _merged_view(sidecars: Sidecars, path: str) -> CivitaiView:
    """One view over the three civitai-style sidecars, first non-empty field wins."""
    views = [
        from_sidecar(data, path)
        for data in (sidecars.civitai_info, sidecars.api_info, sidecars.lora_manager)
        if data
    ]
    if not views:
        return CivitaiView()
    names = [field.name for field in dataclasses.fields(CivitaiView)]
    merged = {
        name: next((getattr(v, name) for v in views if getattr(v, name)), None) for name in names
    }
    return CivitaiView(**{k: v for k, v in merged.items() if v is not None})


def _preferred_weight(
    user: Mapping[str, Any], view: CivitaiView, header: Mapping[str, str], names: set[str]
) -> tuple[float | None, str | None]:
    weight = _number(user.get("preferred weight"))
    if weight and math.isfinite(weight):  # the WebUI stores 0 for "use the default"
        return weight, "user"
    if view.strength:
        return view.strength, "lora-manager"
    weight = weight_in_prompts(view.prompts, names)
    if weight:
        return weight, "civitai"
    match = _WEIGHT_HINT.search(_header_text(header, "modelspec.usage_hint"))
    if match and 0 < float(match.group(1)) <= 5:
        return float(match.group(1)), "modelspec"
    return None, None


def base_model_hints(
    header: Mapping[str, str], user: Mapping[str, Any], view: CivitaiView
) -> tuple[tuple[str, str], ...]:
    """(source, text) statements about the base model, highest precedence first."""
    hints = [
        ("name.json sd version", _user_text(user, "sd version")),
        ("civitai baseModel", view.base_model),
        ("modelspec.architecture", _header_text(header, "modelspec.architecture")),
        ("ss_base_model_version", _header_text(header, "ss_base_model_version")),
        ("ss_v2", "SD2" if _header_text(header, "ss_v2").lower() == "true" else ""),
        ("ss_sd_model_name", _header_text(header, "ss_sd_model_name")),
    ]
    return tuple(
        (s, bounded_text(t, HINT_CHARS))
        for s, t in hints
        if t and t.lower() not in ("unknown", "other", "none")
    )


def read_metadata(
    path: str | os.PathLike[str],
    header: Mapping[str, str],
    root: str | os.PathLike[str] | None = None,
) -> tuple[AdapterMetadata, tuple[tuple[str, str], ...]]:
    """Merge every source for the adapter at ``path`` whose header metadata is ``header``;
    returns the metadata and the base-model hints (for ``detect_base_model``)."""
    path = os.fspath(path)
    sidecars = read_sidecars(path, root)
    user, view = sidecars.user, _merged_view(sidecars, path)
    warnings = list(sidecars.warnings)
    stem = Path(path).stem
    folders = tuple(
        bounded_text(displayable(folder), HINT_CHARS) for folder in folders_between(path, root)
    )

    counts, warning = decode_tag_frequency(header.get("ss_tag_frequency", "") or "{}")
    warnings += [warning] if warning else []
    modelspec_tags = [t for t in _header_text(header, "modelspec.tags").split(",") if t.strip()]
    tags = _bounded_tags(top_training_tags(counts) + list(view.tags) + modelspec_tags)

    raw_description = _first(
        _user_text(user, "description"),
        "\n\n".join(view.descriptions),
        _header_text(header, "modelspec.description"),
        _header_text(header, "ss_training_comment"),
        sidecars.description_txt,
        sidecars.text,
    )
    description = clean_text(html_to_text(raw_description), keep_newlines=True)
    if len(description) > DESCRIPTION_CHARS:
        warnings.append(f"description of {len(description)} characters truncated")
        description = truncate(description, DESCRIPTION_CHARS)

    triggers = split_triggers([_user_text(user, "activation text")])
    if not triggers:
        triggers = split_triggers(view.trained_words)
    if not triggers:
        triggers = split_triggers([_header_text(header, "modelspec.trigger_phrase")])

    output_name = _header_text(header, "ss_output_name", TITLE_CHARS * 4)
    names = {n.lower() for n in (stem, output_name, view.model_name) if n}
    weight, weight_source = _preferred_weight(user, view, header, names)
    hints = base_model_hints(header, user, view)
    previews, skipped_previews = find_previews_checked(path, root)
    skipped = tuple(sidecars.skipped) + skipped_previews
    warnings += [f"{terminal_safe(name)}: {PREVIEW_LINK_SKIPPED}" for name in skipped_previews]

    sources = list(sidecars.found)
    sources += ["modelspec.*"] if any(k.startswith("modelspec.") for k in header) else []
    sources += ["ss_*"] if any(k.startswith("ss_") for k in header) else []
    sources += ["folders"] if folders else []
    title = _first(
        view.model_name[: TITLE_CHARS * 4],
        _header_text(header, "modelspec.title", TITLE_CHARS * 4),
        output_name,
        displayable(stem),
    )
    return (
        AdapterMetadata(
            name=stem,
            title=bounded_text(title, TITLE_CHARS) or bounded_text(displayable(stem), TITLE_CHARS),
            description=description,
            triggers=triggers,
            tags=tags,
            category=infer_category(view.tags, modelspec_tags, reversed(folders)),
            preferred_weight=weight,
            weight_source=weight_source,
            negative_text=bounded_text(_user_text(user, "negative text"), NOTE_CHARS),
            notes=bounded_text(
                _first(_user_text(user, "notes"), view.notes), NOTE_CHARS, keep_newlines=True
            ),
            folders=folders,
            base_model_hint=hints[0][1] if hints else None,
            civitai=_bounded_ids(civitai_ids(view)),
            example_prompts=tuple(clean_text(prompt) for prompt in view.prompts),
            previews=previews,
            has_embedded_preview=has_embedded_preview(header),
            sources=tuple(terminal_safe(source) for source in sources),
            warnings=tuple(terminal_safe(w) for w in warnings),
            skipped=skipped,
        ),
        hints,
    )


def _bounded_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """At most :data:`MAX_TAGS` distinct tags of at most :data:`TAG_CHARS` characters each."""
    out: dict[str, None] = {}
    for tag in tags:
        text = " ".join(clean_text(tag[: TAG_CHARS * 2]).split())[:TAG_CHARS]
        if text:
            out.setdefault(text)
            if len(out) >= MAX_TAGS:
                break
    return tuple(out)


def _bounded_ids(ids: dict[str, Any]) -> dict[str, Any]:
    """civitai ids as read, with their text values cleaned and bounded."""
    return {k: bounded_text(v, HINT_CHARS) if isinstance(v, str) else v for k, v in ids.items()}
