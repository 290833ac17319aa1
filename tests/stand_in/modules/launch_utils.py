"""``modules.launch_utils``: how the launchers run commands, pip and extension installers.

Behaviour as in both WebUIs (stdlib only, so a bare interpreter can import it):

- ``run`` hands one command **string** to the shell (``shell=True``), captures its output unless
  ``WEBUI_LAUNCH_LIVE_OUTPUT=1``, and raises ``RuntimeError`` (command, code, output) on failure;
- ``run_pip(command, desc)`` runs ``"<python>" -m pip <command> --prefer-binary`` through ``run``
  (plus ``--index-url $INDEX_URL`` when set): ``command`` is pasted in unquoted, so ``<``, ``>``,
  ``|`` or ``&`` in it are shell syntax;
- ``run_extension_installer(extension_dir)`` runs the extension's ``install.py`` with this
  interpreter, the WebUI root first on ``PYTHONPATH`` (so ``import launch`` works), prints its
  output, and reports (never raises) a failure through ``errors.report``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from modules import errors

script_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
extensions_dir = os.path.join(script_path, "extensions")
python = sys.executable
index_url = os.environ.get("INDEX_URL", "")
default_command_live = os.environ.get("WEBUI_LAUNCH_LIVE_OUTPUT") == "1"
args = argparse.Namespace(skip_install=False)


def run(command, desc=None, errdesc=None, custom_env=None, live: bool = default_command_live):
    if desc is not None:
        print(desc)
    kwargs = {
        "args": command,
        "shell": True,
        "env": os.environ if custom_env is None else custom_env,
        "encoding": "utf8",
        "errors": "ignore",
    }
    if not live:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    result = subprocess.run(**kwargs)
    if result.returncode != 0:
        bits = [
            f"{errdesc or 'Error running command'}.",
            f"Command: {command}",
            f"Error code: {result.returncode}",
        ]
        if result.stdout:
            bits.append(f"stdout: {result.stdout}")
        if result.stderr:
            bits.append(f"stderr: {result.stderr}")
        raise RuntimeError("\n".join(bits))
    return result.stdout or ""


def run_pip(command, desc=None, live=default_command_live):
    if args.skip_install:
        return None
    index = f" --index-url {index_url}" if index_url != "" else ""
    return run(
        f'"{python}" -m pip {command} --prefer-binary{index}',
        desc=f"Installing {desc}",
        errdesc=f"Couldn't install {desc}",
        live=live,
    )


def is_installed(package: str) -> bool:
    import importlib.metadata
    import importlib.util

    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        try:
            return importlib.util.find_spec(package) is not None
        except ModuleNotFoundError:
            return False
    return True


def run_extension_installer(extension_dir) -> None:
    installer = os.path.join(extension_dir, "install.py")
    if not os.path.isfile(installer):
        return
    try:
        env = os.environ.copy()
        env["PYTHONPATH"] = f"{script_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
        stdout = run(
            f'"{python}" "{installer}"',
            errdesc=f"Error running install.py for extension {extension_dir}",
            custom_env=env,
        ).strip()
        if stdout:
            print(stdout)
    except Exception as error:
        errors.report(str(error))
