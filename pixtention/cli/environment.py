"""Which Python runs the CLI, and one line when it lacks a package PixTention needs.

README's set-up installs into ``.venv/`` without activating it, so a bare ``python -m
pixtention`` inside the checkout finds the package but not its dependencies. That is said in one
line naming the interpreter to use, instead of a traceback from deep inside a command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# import name → the package that provides it (only PixTention's own dependencies)
DEPENDENCIES = {
    "safetensors": "safetensors",
    "torch": "torch",
    "numpy": "numpy",
    "transformers": "transformers",
    "huggingface_hub": "huggingface-hub",
    "faiss": "faiss-cpu",
    "PIL": "pillow",
    "tqdm": "tqdm",
}


def checkout_venv_python() -> Path | None:
    """``.venv/bin/python`` of the checkout this package runs from, if README's set-up made it."""
    candidate = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else None


def missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """The one line for a missing dependency, or ``None`` when ``exc`` is about something else."""
    top = (exc.name or "").split(".")[0]
    if top not in DEPENDENCIES:
        return None
    where = f"{top} is not installed in this Python ({sys.executable})"
    venv = checkout_venv_python()
    if venv is not None and Path(sys.prefix).resolve() != venv.parents[1].resolve():
        shown = os.path.relpath(venv) if not os.path.relpath(venv).startswith("..") else venv
        return f"{where}; use the set-up's environment: {shown} -m pixtention … (or activate it)"
    return (
        f"{where}; install PixTention into it ({sys.executable} -m pip install -e PATH/TO/CLONE) "
        f"or run the Python that has it (pip install {DEPENDENCIES[top]})"
    )
