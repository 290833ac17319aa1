"""``modules.ui_components``: ``InputAccordion`` — an accordion that is also a checkbox input.

As in the WebUI: a hidden ``gr.Checkbox`` whose value is the accordion's open state, with the
accordion created beside it; the WebUI's own JavaScript draws the checkbox in the header.
"""

from __future__ import annotations

import gradio as gr

try:
    from gradio import component_meta
except ImportError:  # Gradio 3 writes no stubs
    component_meta = None


def _skip_marked_stubs(original):
    """Gradio 4 writes a ``.pyi`` beside every component subclass's source; the WebUIs mark
    theirs ``webui_do_not_create_gradio_pyi_thank_you``, and this stand-in honours the mark."""

    def create_or_modify_pyi(component_class, class_name, events):
        if getattr(component_class, "webui_do_not_create_gradio_pyi_thank_you", False):
            return None
        return original(component_class, class_name, events)

    create_or_modify_pyi.skips_marked = True
    return create_or_modify_pyi


if component_meta is not None and not getattr(
    component_meta.create_or_modify_pyi, "skips_marked", False
):
    component_meta.create_or_modify_pyi = _skip_marked_stubs(component_meta.create_or_modify_pyi)


class InputAccordionImpl(gr.Checkbox):
    webui_do_not_create_gradio_pyi_thank_you = True  # Gradio 4 would write a .pyi beside us
    global_index = 0

    def __init__(self, value=None, setup=False, **kwargs):
        if not setup:
            super().__init__(value=value, **kwargs)
            return
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordionImpl.global_index}"
            InputAccordionImpl.global_index += 1
        checkbox_kwargs = {**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False}
        super().__init__(value=value, **checkbox_kwargs)
        accordion_kwargs = {
            **kwargs,
            "elem_id": self.accordion_id,
            "label": kwargs.get("label", "Accordion"),
            "elem_classes": ["input-accordion"],
            "open": value,
        }
        self.accordion = gr.Accordion(**accordion_kwargs)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self):
        return "checkbox"


def InputAccordion(value=None, **kwargs):  # noqa: N802 (the WebUI's name)
    return InputAccordionImpl(value=value, setup=True, **kwargs)
