"""Which index a command uses when ``--store`` is not given, and why (said in one line).

The WebUI keeps its index beside the LoRAs (``models/Lora/.pixtention``, or the
``pixtention_index_dir`` setting of its ``config.json``); the CLI's own default is the per-user
store. So ``index`` on a WebUI folder refreshes the WebUI's index, and ``suggest`` run inside a
WebUI folder reads it; elsewhere ``suggest`` reads the index that ``index`` built last (a
pointer file beside the per-user store), else the per-user store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pixtention.curator.store import CATALOG_NAME, default_store_dir

WEBUI_INDEX_NAME = ".pixtention"  # the WebUI's default: <lora dir>/.pixtention
_WEBUI_MARKERS = ("webui.py", "launch.py", "modules")
_LAST_INDEX = "last-index"


@dataclass(frozen=True)
class StoreChoice:
    """A store folder and the reason it was chosen (empty when the user named it)."""

    path: Path
    reason: str = ""

    def line(self) -> str:
        """The one stderr line naming the store."""
        return f"store {self.path}" + (f" ({self.reason})" if self.reason else "")


def has_index(store: Path) -> bool:
    return (store / CATALOG_NAME).is_file()


def is_webui_root(folder: Path) -> bool:
    """A WebUI install (A1111 or Forge): ``models/Lora`` beside its launcher or ``modules``."""
    return (folder / "models" / "Lora").is_dir() and any(
        (folder / marker).exists() for marker in _WEBUI_MARKERS
    )


def _webui_root_of_lora_dir(folder: Path) -> Path | None:
    if folder.name == "Lora" and folder.parent.name == "models":
        root = folder.parent.parent
        if is_webui_root(root):
            return root
    return None


def _configured_index_dir(root: Path) -> Path | None:
    """The ``pixtention_index_dir`` setting in the WebUI's ``config.json``, if set."""
    try:
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("pixtention_index_dir") if isinstance(config, dict) else None
    return Path(os.path.expanduser(value)) if isinstance(value, str) and value.strip() else None


def webui_index(folder: Path) -> tuple[Path, Path] | None:
    """(LoRA folder, index folder) the WebUI uses when ``folder`` is a WebUI root, a WebUI's
    ``models/Lora``, or a LoRA folder the WebUI already indexed; ``None`` otherwise."""
    folder = folder.expanduser().resolve()
    root = folder if is_webui_root(folder) else _webui_root_of_lora_dir(folder)
    if root is not None:
        lora = root / "models" / "Lora"
        return lora, _configured_index_dir(root) or lora / WEBUI_INDEX_NAME
    if has_index(folder / WEBUI_INDEX_NAME):
        return folder, folder / WEBUI_INDEX_NAME
    return None


def last_index_file() -> Path:
    return default_store_dir().parent / _LAST_INDEX


def remember(store: Path) -> None:
    """Note ``store`` as the last index built, for later commands without ``--store``."""
    try:
        path = last_index_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(store.resolve()) + "\n", encoding="utf-8")
    except OSError:
        pass  # only a convenience: a read-only home must not fail the index


def _last_index() -> Path | None:
    try:
        text = last_index_file().read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Path(text) if text and has_index(Path(text)) else None


def for_folder(folder: str, store: str | None) -> tuple[Path, StoreChoice]:
    """(folder to index, store) for ``index FOLDER``: a WebUI folder gets the WebUI's index."""
    found = webui_index(Path(folder)) if Path(folder).is_dir() else None
    lora = found[0] if found else Path(folder)  # a WebUI root: its LoRAs, not its checkpoints
    if store is not None:
        return lora, StoreChoice(Path(store).expanduser())
    if found is not None:
        return lora, StoreChoice(found[1], "the WebUI's index of this folder")
    return lora, StoreChoice(default_store_dir(), "the per-user store")


def for_reading(store: str | None, lora_dir: str | None = None) -> StoreChoice:
    """The store ``suggest``/``clusters`` read: ``--store``, ``--lora-dir``'s WebUI index, the
    WebUI folder we run in, the last index built, else the per-user store."""
    if store is not None:
        return StoreChoice(Path(store).expanduser())
    if lora_dir is not None:
        found = webui_index(Path(lora_dir))
        index = found[1] if found else Path(lora_dir).expanduser() / WEBUI_INDEX_NAME
        return StoreChoice(index, f"the index of {lora_dir}")
    here = webui_index(Path.cwd())
    if here is not None and has_index(here[1]):
        return StoreChoice(here[1], "the WebUI's index of this folder")
    last = _last_index()
    if last is not None:
        return StoreChoice(last, "the index built last")
    return StoreChoice(default_store_dir(), "the per-user store")
