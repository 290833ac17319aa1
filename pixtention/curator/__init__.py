"""Curator: a persistent, incremental index of a LoRA folder (design §4).

``index_folder`` writes a store (SQLite catalog + faiss file); ``open_library`` reads its last
published snapshot without any lock. Heavy modules load only when these are first used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "index_folder": "pixtention.curator.indexer",
    "IndexReport": "pixtention.curator.indexer",
    "open_library": "pixtention.curator.library",
    "Library": "pixtention.curator.library",
    "AdapterRecord": "pixtention.curator.records",
    "Document": "pixtention.curator.documents",
    "build_document": "pixtention.curator.documents",
    "Progress": "pixtention.curator.progress",
    "default_store_dir": "pixtention.curator.store",
    "StoreError": "pixtention.curator.store",
    "StoreBusy": "pixtention.curator.store",
    "make_embedder": "pixtention.curator.embedder",
    "make_captioner": "pixtention.curator.captioner",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pixtention.curator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
