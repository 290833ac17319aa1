"""The ``.civitai.info`` sidecar a Civitai helper would write for one model version of the
retrieval-bench data (the reduced Civitai JSON), shared by the curator and selector benchmarks."""

from __future__ import annotations

import html


def civitai_info(model: dict, version: dict) -> dict:
    """Civitai API shape: version fields at the top, the model under ``model``."""
    return {
        "id": version.get("version_id"),
        "modelId": model["model_id"],
        "name": version.get("name", ""),
        "baseModel": version.get("base_model", ""),
        "trainedWords": version.get("trained_words") or [],
        "description": version.get("description_html") or "",
        "model": {
            "name": html.unescape(model["name"]),
            "type": model.get("type", "LORA"),
            "tags": model.get("tags") or [],
            "description": model.get("description_html") or "",
        },
    }
