"""Which base-model family the loaded WebUI model is, for the selector's filter: A1111's and
Forge's ``is_*`` flags, and Forge's detected model config for Flux and Chroma (no flags)."""

from __future__ import annotations

import types

import pytest

from pixtention.webui.a1111 import _unused_pin, base_family
from pixtention.webui.args import Pin


class SD15: ...


class SDXL: ...


class SSD1B(SDXL): ...  # Forge's configs subclass the family they belong to


class Flux: ...


class Chroma: ...


@pytest.mark.parametrize(
    ("model", "family"),
    [
        (types.SimpleNamespace(is_sd1=True, is_sdxl=False), "sd1"),
        (types.SimpleNamespace(is_sdxl=True, model_config=SD15()), "sdxl"),
        (types.SimpleNamespace(is_sd1=False, is_sdxl=False, model_config=Flux()), "flux"),
        (types.SimpleNamespace(model_config=Chroma()), "flux"),
        (types.SimpleNamespace(model_config=SSD1B()), "sdxl"),
        (types.SimpleNamespace(model_config=object()), None),
        (types.SimpleNamespace(), None),
    ],
)
def test_base_family(model, family):
    assert base_family(model) == family


def test_an_unused_pin_says_why():
    records = {
        "knight": types.SimpleNamespace(base_family="sdxl"),
        "cat": types.SimpleNamespace(base_family="sd1"),
    }
    library = types.SimpleNamespace(find=lambda name: records.get(name))
    assert "not in the library" in _unused_pin(Pin("gone"), library, "sd1")
    assert "is a sdxl adapter; the loaded model is sd1" in _unused_pin(
        Pin("knight"), library, "sd1"
    )
    assert "no phrase" in _unused_pin(Pin("cat"), library, "sd1")


def test_the_webui_and_the_library_share_one_default_threshold():
    from pixtention.selector.select import DEFAULT_THRESHOLD
    from pixtention.webui.args import WebuiArgs

    assert WebuiArgs().threshold == DEFAULT_THRESHOLD
