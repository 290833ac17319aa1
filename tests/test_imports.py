"""Every core module imports under the installed pins, and the core stays WebUI-free."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pixtention

CORE_PACKAGES = ("library", "curator", "selector", "integrator", "cli")


def _core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(pixtention.__path__, prefix="pixtention."):
        part = info.name.split(".")[1]
        if info.name == "pixtention.__main__":
            continue  # running it is what the CLI test does
        if part in CORE_PACKAGES or info.name.count(".") == 1 and part != "webui":
            names.append(info.name)
    return sorted(names)


def test_every_core_module_imports() -> None:
    modules = _core_modules()
    assert any(name.startswith("pixtention.library.") for name in modules)
    for name in modules:
        importlib.import_module(name)


def test_core_never_imports_webui_gradio_or_fastapi() -> None:
    code = (
        "import sys, importlib\n"
        f"for name in {_core_modules()!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'modules', 'gradio', 'fastapi'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_command_line_lists_its_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pixtention", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("show", "doctor", "sample", "index", "suggest", "bench"):
        assert command in out.stdout
