"""``modules.script_callbacks``: global callback lists, called by the WebUI at fixed moments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modules import errors

_callbacks: dict[str, list[Callable[..., Any]]] = {
    "cfg_denoiser": [],
    "app_started": [],
    "ui_settings": [],
    "script_unloaded": [],
    "model_loaded": [],
    "infotext_pasted": [],
}


class CFGDenoiserParams:
    """What ``on_cfg_denoiser`` callbacks get; fields are writable (the WebUI reads them back)."""

    def __init__(
        self,
        x,
        image_cond,
        sigma,
        sampling_step,
        total_sampling_steps,
        text_cond,
        text_uncond,
        denoiser=None,
    ):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


def _add(kind: str, callback: Callable[..., Any], name: str | None = None) -> None:
    _callbacks[kind].append(callback)


def on_cfg_denoiser(callback, *, name=None):
    _add("cfg_denoiser", callback, name)


def on_app_started(callback, *, name=None):
    _add("app_started", callback, name)


def on_ui_settings(callback, *, name=None):
    _add("ui_settings", callback, name)


def on_script_unloaded(callback, *, name=None):
    _add("script_unloaded", callback, name)


def on_model_loaded(callback, *, name=None):
    _add("model_loaded", callback, name)


def on_infotext_pasted(callback, *, name=None):
    _add("infotext_pasted", callback, name)


def _call(kind: str, *args: Any) -> None:
    for callback in list(_callbacks[kind]):
        try:
            callback(*args)
        except Exception:
            errors.report(f"Error executing callback {kind}_callback", exc_info=True)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    _call("cfg_denoiser", params)


def app_started_callback(demo, app) -> None:
    _call("app_started", demo, app)


def ui_settings_callback() -> None:
    _call("ui_settings")


def script_unloaded_callback() -> None:
    _call("script_unloaded")


def clear_callbacks() -> None:
    for callbacks in _callbacks.values():
        callbacks.clear()
