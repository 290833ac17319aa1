"""What each benchmark needs beyond PixTention itself, said in one line when it is missing.

Two kinds of needs: Python packages the installed package does not depend on (``ldm`` for the
integrator's full-size UNet), and the retrieval-bench data, which is not in the repository (the
Civitai text has no licence of its own, so it is never shipped; benchmarks read it in place).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "retrieval-bench"

# import name → how to get it (the pins are .ci/requirements-nodeps.txt's)
PACKAGES = {
    "ldm": "ldm comes from stable-diffusion-sdkit: pip install einops && "
    "pip install --no-deps stable-diffusion-sdkit==2.1.5",
    "einops": "pip install einops",
}
DATA_FILES = {
    "civitai_lora_library.jsonl": "curator, selector",
    "civitai_dev_prompts.jsonl": "selector",
    "carlos_sdxl_library.jsonl": "selector",
}
DATA_ORIGIN = (
    "the retrieval-bench data: the project's shared/ folder beside the clone "
    "(../shared/retrieval-bench), reduced from the public repositories dfanr/CivitaiModelList "
    "@ 294f1a35 (models/LORA/normal/json) and shahar-sarfaty/CARLoS @ c2840947; it is never in "
    "the repository"
)


def missing_package(bench: str, names: tuple[str, ...]) -> str | None:
    """One line naming the first of ``names`` that cannot be imported, or None."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            return package_line(bench, name)
    return None


def package_line(bench: str, name: str) -> str:
    how = PACKAGES.get(name, f"pip install {name}")
    return f"bench {bench} needs the Python package {name!r} ({how})"


def missing_data(bench: str, data: Path, files: tuple[str, ...], escape: str = "") -> str | None:
    """One line when a data file is not in ``data``: where the data comes from, what to pass."""
    absent = [name for name in files if not (data / name).is_file()]
    if not absent:
        return None
    tail = f"; {escape}" if escape else ""
    return f"bench {bench} needs {absent[0]} in {data} (pass --data DIR): {DATA_ORIGIN}{tail}"
