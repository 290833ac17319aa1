"""What is on disk: adapter headers, metadata, hashes, base models (and weights → factors).

The public surface is small: ``read_header`` (cheap, header only), ``read_adapter`` (everything
``show`` prints), ``file_hashes`` (full-file hashes, on request), ``LibraryError`` and the info
dataclasses. Every unusable file raises ``LibraryError`` whose ``str()`` is one line.
"""

from __future__ import annotations

from pixtention.lazy import lazy_exports

# Lazy, so that importing one light module of the package (``display``, ``errors``) does not
# pull in safetensors and the readers (the CLI builds its parser without them).
_EXPORTS = {
    "LibraryError": "pixtention.library.errors",
    "file_hashes": "pixtention.library.hashes",
    "AdapterFile": "pixtention.library.info",
    "AdapterInfo": "pixtention.library.info",
    "AdapterMetadata": "pixtention.library.info",
    "BaseModel": "pixtention.library.info",
    "Hashes": "pixtention.library.info",
    "Layout": "pixtention.library.info",
    "TensorInfo": "pixtention.library.info",
    "read_adapter": "pixtention.library.read",
    "read_header": "pixtention.library.safetensors_file",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
