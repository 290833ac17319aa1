"""What is on disk: adapter headers, metadata, hashes, base models (and weights → factors).

The public surface is small: ``read_header`` (cheap, header only), ``read_adapter`` (everything
``show`` prints), ``file_hashes`` (full-file hashes, on request), ``LibraryError`` and the info
dataclasses. Every unusable file raises ``LibraryError`` whose ``str()`` is one line.
"""

from __future__ import annotations

from pixtention.library.errors import LibraryError
from pixtention.library.hashes import file_hashes
from pixtention.library.info import (
    AdapterFile,
    AdapterInfo,
    AdapterMetadata,
    BaseModel,
    Hashes,
    Layout,
    TensorInfo,
)
from pixtention.library.read import read_adapter
from pixtention.library.safetensors_file import read_header

__all__ = [
    "AdapterFile",
    "AdapterInfo",
    "AdapterMetadata",
    "BaseModel",
    "Hashes",
    "Layout",
    "LibraryError",
    "TensorInfo",
    "file_hashes",
    "read_adapter",
    "read_header",
]
