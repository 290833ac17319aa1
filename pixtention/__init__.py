"""PixTention: pick the right LoRAs for a prompt and apply each only where its concept is.

The public surface is small and imported lazily so that ``import pixtention`` stays cheap (no
torch, faiss or transformers until a function that needs them is called).
"""

from __future__ import annotations

from pixtention.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "LibraryError": "pixtention.library.errors",
    "select": "pixtention.selector.select",
    "rank": "pixtention.selector.select",
    "open_library": "pixtention.curator.library",
    "Pick": "pixtention.selector.picks",
    "Suggestion": "pixtention.selector.picks",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
