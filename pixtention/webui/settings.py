"""The "PixTention" section of the WebUI's Settings tab, and reading it back.

The options are plain data here; ``register`` turns them into the WebUI's ``OptionInfo`` objects
inside an ``on_ui_settings`` callback, so this module imports neither gradio nor ``modules``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECTION = ("pixtention", "PixTention")


@dataclass(frozen=True)
class Option:
    key: str
    default: Any
    label: str
    component: str  # textbox | checkbox | slider | radio
    component_args: tuple[tuple[str, Any], ...] = ()
    comment: str = ""


OPTIONS: tuple[Option, ...] = (
    Option(
        "pixtention_index_dir",
        "",
        "Index location (empty: models/Lora/.pixtention, or --pixtention-index-dir)",
        "textbox",
    ),
    Option(
        "pixtention_embedder",
        "",
        "Text embedder model id (empty: packaged all-MiniLM-L6-v2)",
        "textbox",
        comment="changing it re-embeds the library on the next index",
    ),
    Option("pixtention_captions", True, "Caption preview images while indexing", "checkbox"),
    Option(
        "pixtention_captioner",
        "",
        "Image captioning model id (empty: the default BLIP captioner)",
        "textbox",
    ),
    Option(
        "pixtention_device",
        "cpu",
        "Device for indexing (embedder, captioner)",
        "radio",
        (("choices", ["cpu", "cuda", "mps"]),),
        comment="indexing runs in the background; cpu keeps the GPU free for generation",
    ),
    Option(
        "pixtention_autoindex",
        True,
        "Index the Lora folder in the background when the WebUI starts",
        "checkbox",
    ),
    Option(
        "pixtention_default_k",
        3,
        "Default number of adapters per image",
        "slider",
        (("minimum", 0), ("maximum", 16), ("step", 1)),
    ),
    Option(
        "pixtention_default_threshold",
        0.35,
        "Default similarity threshold (abstain below)",
        "slider",
        (("minimum", 0.0), ("maximum", 1.0), ("step", 0.01)),
    ),
)
DEFAULTS = {option.key: option.default for option in OPTIONS}


def register(shared: Any, gradio: Any) -> None:
    """Add the options to ``shared.opts`` (call from ``script_callbacks.on_ui_settings``)."""
    components = {
        "textbox": gradio.Textbox,
        "checkbox": gradio.Checkbox,
        "slider": gradio.Slider,
        "radio": gradio.Radio,
    }
    for option in OPTIONS:
        info = shared.OptionInfo(
            option.default,
            option.label,
            components[option.component],
            dict(option.component_args) or None,
            section=SECTION,
        )
        if option.comment and hasattr(info, "info"):
            info = info.info(option.comment)
        shared.opts.add_option(option.key, info)


def read(opts: Any, key: str) -> Any:
    """One option's value, or its default when the WebUI has not registered it (yet)."""
    return getattr(opts, key, DEFAULTS[key]) if opts is not None else DEFAULTS[key]


def index_dir(opts: Any, cmd_opts: Any, lora_dir: str | None) -> Path:
    """Where the index lives: the setting, else the command-line flag, else beside the LoRAs."""
    configured = read(opts, "pixtention_index_dir") or getattr(
        cmd_opts, "pixtention_index_dir", None
    )
    if configured:
        return Path(os.path.expanduser(str(configured)))
    if lora_dir:
        return Path(lora_dir) / ".pixtention"
    return Path.home() / ".cache" / "pixtention"
