"""Shared set-up of the webui tests: the WebUI stand-in on ``sys.path`` (for these tests only),
the script loaded by file as the WebUI loads it, and a small indexed LoRA library whose files fit
the tiny test UNet."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = ROOT / "tests" / "stand_in"
_STAND_IN_MODULES = ("modules", "stand_in_models", "forge_backend", "extra_networks_lora", "launch")

# name, folder, description, activation text, tags, target modules (diffusers names)
THEMES = (
    (
        "inkwash",
        "styles",
        "ink wash painting style, black ink brush strokes on paper",
        "inkwash",
        {"ink wash painting": 30, "monochrome": 12, "brush strokes": 8},
        "down_blocks.1.attentions.0",
    ),
    (
        "redcar",
        "objects",
        "a red sports car, shiny vehicle, automobile",
        "redcar",
        {"red sports car": 25, "vehicle": 10, "car": 9},
        "up_blocks.1.attentions.1",
    ),
    (
        "tabbycat",
        "animals",
        "a tabby cat, orange striped kitten, feline pet",
        "tabbycat",
        {"tabby cat": 28, "cat": 20, "kitten": 5},
        "mid_block.attentions.0",
    ),
    (
        "castlebg",
        "backgrounds",
        "a medieval castle on a hill, stone castle, fortress background scenery",
        "castlebg",
        {"medieval castle": 22, "castle": 12, "fortress": 9, "scenery": 6},
        "down_blocks.2.attentions.1",
    ),
)


def add_stand_in() -> None:
    if str(STAND_IN) not in sys.path:
        sys.path.insert(0, str(STAND_IN))


def remove_stand_in() -> None:
    while str(STAND_IN) in sys.path:
        sys.path.remove(str(STAND_IN))
    for name in list(sys.modules):
        if name.split(".")[0] in _STAND_IN_MODULES or name == "pixtention_script":
            del sys.modules[name]


def load_script():
    """Execute scripts/pixtention.py by path, as the WebUI's script loader does."""
    spec = importlib.util.spec_from_file_location(
        "pixtention_script", ROOT / "scripts" / "pixtention.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["pixtention_script"] = module
    spec.loader.exec_module(module)
    return module


def write_tiny_library(
    folder: Path,
    seed: int = 0,
    *,
    model_channels: int = 32,
    context_dim: int = 32,
    themes: tuple[tuple[Any, ...], ...] = THEMES,
) -> list[Path]:
    """Kohya LoRA files (with ``.json`` sidecars) of ``themes``, shaped for an SD1-layout UNet
    of ``model_channels``/``context_dim`` (default: ``tests.rig.unet.tiny_unet()``)."""
    from safetensors.torch import save_file

    from pixtention.library.sample import kohya_stem, make_tensors, sd15_unet_modules

    modules = sd15_unet_modules(model_channels=model_channels, context_dim=context_dim)
    generator = torch.Generator().manual_seed(seed)
    paths = []
    for name, sub, description, trigger, tags, block in themes:
        targets = {
            kohya_stem(m): shape
            for m, shape in modules.items()
            if m.startswith(block) and (".attn" in m or m.endswith(("proj_in", "proj_out")))
        }
        tensors = make_tensors(
            "lora", targets, rank=2, alpha=2.0, generator=generator, dtype=torch.float32
        )
        tensors = {k: v * 4 if "lora_up" in k else v for k, v in tensors.items()}
        directory = folder / sub
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.safetensors"
        metadata = {
            "ss_output_name": name,
            "ss_network_module": "networks.lora",
            "ss_network_dim": "2",
            "ss_network_alpha": "2.0",
            "ss_base_model_version": "sd_v1",
            "ss_tag_frequency": json.dumps({f"10_{name}": tags}),
        }
        save_file(tensors, str(path), metadata=metadata)
        user = {
            "description": description,
            "activation text": trigger,
            "preferred weight": 0.8,
            "sd version": "SD1",
        }
        path.with_suffix(".json").write_text(json.dumps(user), encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def tiny_library(tmp_path_factory):
    """(lora folder, store folder) of the indexed tiny library (real curator, no captions)."""
    from pixtention.curator.indexer import index_folder

    root = tmp_path_factory.mktemp("webui-lib")
    loras = root / "Lora"
    store = root / "store"
    write_tiny_library(loras)
    report = index_folder(loras, store, captions=False)
    assert report.adapters == len(THEMES), report
    return loras, store


@pytest.fixture
def stand_in():
    """The WebUI stand-in importable as ``modules`` for one test, with the built-in Lora
    extension registered as the WebUIs' own script does; removed afterwards."""
    add_stand_in()
    try:
        import extra_networks_lora
        import modules.script_callbacks as callbacks
        from modules import extra_networks

        callbacks.clear_callbacks()
        extra_networks.initialize()
        extra_networks_lora.register()
        yield
    finally:
        remove_stand_in()
