"""PixTention: pick the right LoRAs for a prompt and apply each only where its concept is.

The public surface is small and imported lazily so that ``import pixtention`` stays cheap (no
torch, faiss or transformers until a function that needs them is called).
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "LibraryError": "pixtention.library.errors",
    "select": "pixtention.selector.select",
    "open_library": "pixtention.curator.library",
    "Pick": "pixtention.selector.picks",
}


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pixtention' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)


__all__ = sorted(_EXPORTS)
