"""The accordion in txt2img/img2img: builds Gradio components, nothing else.

Imports no torch and touches no library, so the WebUI may call it as often as it likes (once
per tab, and twice more from the API to read defaults). Works on Gradio 3.41.2 (A1111) and
4.40.0 (Forge): only plain components, ``gr.update`` and keyword arguments both accept. The
returned component list is the API arg order of ``args.ARG_SPECS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pixtention.webui.args import (
    ARG_NAMES,
    ARG_SPECS,
    COMPETITIONS,
    MASK_LAYERS,
    MODE_LABELS,
    MODES,
    WebuiArgs,
)
from pixtention.webui.infotext import KEY, field_reader


@dataclass(frozen=True)
class UiActions:
    """What the buttons do; supplied by the script so the builder stays free of state.

    ``suggest(tab, query, *values)`` gets every arg component's value in ``ARG_NAMES`` order
    and returns the suggestion table's HTML; ``status()`` and ``rebuild()`` return the status
    line's HTML.
    """

    suggest: Callable[..., str]
    status: Callable[[], str]
    rebuild: Callable[[], str]


@dataclass(frozen=True)
class BuiltUi:
    components: list[Any]  # in ARG_NAMES order
    infotext_fields: list[tuple[Any, Any]]
    paste_field_names: list[str]


# What a score means (retrieval.Scoring's calibration), shown under the threshold slider.
SCORE_LEGEND = (
    "0.45+: the description plainly names the phrase · 0.35+: names it · 0.3-0.35: shares a "
    "word · below 0.3: about something else"
)


def _spec(name: str):
    return ARG_SPECS[ARG_NAMES.index(name)]


def _slider(
    name: str, label: str, value: float, step: float, elem_id: str, info: str | None = None
) -> Any:
    spec = _spec(name)
    return gr.Slider(
        minimum=spec.minimum,
        maximum=spec.maximum,
        step=step,
        value=value,
        label=label,
        elem_id=elem_id,
        info=info,
    )


def build(
    tab: str,
    defaults: WebuiArgs,
    actions: UiActions,
    *,
    input_accordion: Callable[..., Any] | None = None,
) -> BuiltUi:
    """Build the accordion for ``tab`` ("txt2img" or "img2img") inside the current Blocks."""

    def eid(part: str) -> str:
        return f"pixtention_{tab}_{part}"

    if input_accordion is not None:
        enabled = input_accordion(defaults.enabled, label="PixTention", elem_id=eid("accordion"))
        container = enabled
    else:
        container = gr.Accordion("PixTention", open=False, elem_id=eid("accordion"))
        enabled = None
    with container:
        if enabled is None:
            enabled = gr.Checkbox(
                value=defaults.enabled, label="Enable PixTention", elem_id=eid("enabled")
            )
        with gr.Row():
            mode = gr.Radio(
                choices=[MODE_LABELS[m] for m in MODES],
                value=MODE_LABELS[defaults.mode],
                label="Mode",
                elem_id=eid("mode"),
            )
        with gr.Row():
            k = _slider("k", "Adapters per image (K)", defaults.k, 1, eid("k"))
            clusters = _slider(
                "clusters", "Themes to search", defaults.clusters, 1, eid("clusters")
            )
            threshold = _slider(
                "threshold",
                "Similarity threshold",
                defaults.threshold,
                0.01,
                eid("threshold"),
                info=SCORE_LEGEND,
            )
            per_phrase = _slider(
                "per_phrase", "Adapters per phrase", defaults.per_phrase, 1, eid("per_phrase")
            )
        with gr.Accordion("Masks", open=False, elem_id=eid("masks")):
            with gr.Row():
                mask_layers = gr.Radio(
                    choices=list(MASK_LAYERS),
                    value=defaults.mask_layers,
                    label="Attention layers",
                    elem_id=eid("mask_layers"),
                )
                competition = gr.Radio(
                    choices=list(COMPETITIONS),
                    value=defaults.competition,
                    label="Competition",
                    elem_id=eid("competition"),
                )
            with gr.Row():
                softness = _slider("softness", "Softness", defaults.softness, 0.01, eid("softness"))
                warmup = _slider(
                    "warmup_steps", "Warm-up steps", defaults.warmup_steps, 1, eid("warmup")
                )
                freeze_at = _slider(
                    "freeze_at", "Freeze masks at", defaults.freeze_at, 0.05, eid("freeze_at")
                )
            show_masks = gr.Checkbox(
                value=defaults.show_masks, label="Show masks in the gallery", elem_id=eid("show")
            )
        suggestions = gr.HTML(
            value=f'<div class="pixtention-suggestions" data-pixtention-tab="{tab}">'
            '<p class="pixtention-empty">Type a prompt to see suggestions.</p></div>',
            elem_id=eid("suggestions"),
        )
        with gr.Row():
            pins = gr.Textbox(
                value="",
                label="Pinned (name[#hash][:weight][@phrase], …)",
                lines=1,
                elem_id=eid("pins"),
            )
            exclude = gr.Textbox(value="", label="Excluded", lines=1, elem_id=eid("exclude"))
        with gr.Row():
            status = gr.HTML(value="", elem_id=eid("status"))
            rebuild = gr.Button("Rebuild index", elem_id=eid("rebuild"))
        # Driven by javascript/pixtention.js (debounced prompt typing, status polling); hidden
        # by style.css, not by visible=False, because Gradio 3 does not render hidden inputs.
        query = gr.Textbox(
            value="", label="query", elem_id=eid("query"), elem_classes=["pixtention-hidden"]
        )
        suggest = gr.Button("suggest", elem_id=eid("suggest"), elem_classes=["pixtention-hidden"])
        refresh = gr.Button("refresh", elem_id=eid("refresh"), elem_classes=["pixtention-hidden"])

    components = [
        enabled,
        mode,
        k,
        clusters,
        threshold,
        per_phrase,
        mask_layers,
        softness,
        competition,
        warmup,
        freeze_at,
        show_masks,
        pins,
        exclude,
    ]
    assert len(components) == len(ARG_NAMES)

    def on_suggest(query_text: str, *values: Any) -> tuple[str, str]:
        return actions.suggest(tab, query_text, *values), actions.status()

    suggest.click(fn=on_suggest, inputs=[query, *components], outputs=[suggestions, status])
    refresh.click(fn=actions.status, inputs=[], outputs=[status])
    rebuild.click(fn=actions.rebuild, inputs=[], outputs=[status])

    infotext_fields = [
        (component, field_reader(name)) for component, name in zip(components, ARG_NAMES)
    ]
    for index, (component, name) in enumerate(zip(components, ARG_NAMES)):
        if name == "mode":
            infotext_fields[index] = (component, _mode_label_reader())
    return BuiltUi(components, infotext_fields, [KEY])


def _mode_label_reader():
    """Pasted mode → the Radio's label (the Radio holds labels, the infotext keys)."""
    read_key = field_reader("mode")

    def read(params: dict[str, Any]) -> Any:
        key = read_key(params)
        return MODE_LABELS.get(key) if key is not None else None

    read.__name__ = "pixtention_paste_mode"
    return read
