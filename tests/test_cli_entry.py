"""Issue 15 items 3 and 6: the command line starts from anywhere, cheaply, and says in one line
what is missing instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "transformers", "faiss", "safetensors", "pixtention.selector")


def _run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, **kw)


def test_building_the_parser_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from pixtention.cli import build_parser\n"
        "build_parser().format_help()\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
    )
    done = _run([sys.executable, "-c", code], REPO, check=True)
    assert done.stdout.strip() == "[]"


def test_run_from_the_folder_that_holds_the_clone(tmp_path: Path) -> None:
    """There ``pixtention`` names the clone folder (a namespace package): still the CLI runs,
    even for a Python that only finds the package through that folder (``-S``: no site)."""
    (tmp_path / "pixtention").symlink_to(REPO, target_is_directory=True)
    for flags in ([], ["-S"]):
        done = _run([sys.executable, *flags, "-m", "pixtention", "--help"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert "suggest" in done.stdout and done.stderr == ""


def test_a_python_without_the_dependencies_gets_one_line(tmp_path: Path) -> None:
    """README's set-up does not activate ``.venv``: a bare python finds the package in the
    checkout but not safetensors. ``-S`` stands in for such a Python (no site-packages)."""
    done = _run([sys.executable, "-S", "-m", "pixtention", "doctor", str(tmp_path)], REPO)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "safetensors is not installed in this Python" in lines[0]
    assert sys.executable in lines[0] or ".venv/bin/python" in lines[0]


def test_help_works_without_the_dependencies() -> None:
    done = _run([sys.executable, "-S", "-m", "pixtention", "suggest", "--help"], REPO)
    assert done.returncode == 0, done.stderr
    assert "--threshold" in done.stdout
