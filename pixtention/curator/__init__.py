"""Curator: a persistent, incremental index of a LoRA folder (design §4).

``index_folder`` writes a store (SQLite catalog + faiss file); ``open_library`` reads its last
published snapshot without any lock. Heavy modules load only when these are first used.
"""

from __future__ import annotations

from pixtention.lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
