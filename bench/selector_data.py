"""The selector benchmark's data: the Civitai library written as a user's disk holds it, and
the real prompts with their label's trained words stripped."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from bench.civitai_sidecar import civitai_info

TAG = re.compile(r"<(\w+):([^>]+)>")


def _tiny_file(path: Path, width: int, stem: str) -> None:
    """A one-module LoRA whose cross-attention input width names its base model."""
    import numpy as np
    from safetensors.numpy import save_file

    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    if width == 2048:  # SDXL files use compvis names
        key = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
    tensors = {
        f"{key}.lora_down.weight": np.zeros((1, width), np.float16),
        f"{key}.lora_up.weight": np.zeros((640, 1), np.float16),
        f"{key}.alpha": np.ones((), np.float16),
    }
    save_file(tensors, str(path), metadata={"ss_output_name": stem, "ss_network_dim": "1"})


def _width(base_model: str) -> int:
    lowered = base_model.lower()
    if "xl" in lowered or "pony" in lowered:
        return 2048
    return 1024 if lowered.startswith("sd 2") else 768


def _stem(name: str, fallback: str, used: set[str]) -> str:
    stem = re.sub(r"[^\w.\-]+", "_", name).strip("._") or fallback
    if stem.lower() in used:
        stem = f"{stem}_{fallback}"
    used.add(stem.lower())
    return stem


def _write_model(folder: Path, stem: str, width: int, info: dict) -> None:
    """The model's file and sidecar; files already as they should be are left untouched, so a
    kept ``--work`` library is refreshed, not indexed again from scratch."""
    model = folder / f"{stem}.safetensors"
    if not model.exists():
        _tiny_file(model, width, stem)
    sidecar, text = folder / f"{stem}.civitai.info", json.dumps(info)
    if not sidecar.exists() or sidecar.read_text(encoding="utf-8") != text:
        sidecar.write_text(text, encoding="utf-8")


def write_library(data: Path, folder: Path, keep: set[int] | None, carlos: int | None) -> dict:
    """Write the Civitai models (all, or those in ``keep``) and SDXL distractors.

    Returns {file stem: {"model_id", "trained", "family"}}; distractors have model_id None.
    """
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    labels: dict[str, dict] = {}
    with open(data / "civitai_lora_library.jsonl", encoding="utf-8") as fh:
        for line in fh:
            model = json.loads(line)
            if keep is not None and model["model_id"] not in keep:
                continue
            version = (model.get("versions") or [{}])[0]
            files = [
                f["name"] for f in version.get("files", []) if f["name"].endswith(".safetensors")
            ]
            name = files[0][: -len(".safetensors")] if files else model["name"]
            stem = _stem(name, str(model["model_id"]), used)
            width = _width(version.get("base_model", ""))
            _write_model(folder, stem, width, civitai_info(model, version))
            trained = [w for v in model.get("versions", []) for w in v.get("trained_words") or []]
            family = {768: "sd1", 1024: "sd2", 2048: "sdxl"}[width]
            labels[stem] = {"model_id": model["model_id"], "trained": trained, "family": family}
    with open(data / "carlos_sdxl_library.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if carlos is not None and i >= carlos:
                break
            entry = json.loads(line)
            stem = _stem(entry["folder_name"], str(entry["version_id"]), used)
            info = {
                "id": entry["version_id"],
                "modelId": entry.get("model_id"),
                "baseModel": "SDXL 1.0",
                "trainedWords": [],
                "model": {
                    "name": entry.get("model_name") or entry["folder_name"],
                    "type": "LORA",
                    "description": entry.get("model_description_html") or "",
                },
            }
            _write_model(folder, stem, 2048, info)
            labels[stem] = {"model_id": None, "trained": [], "family": "sdxl"}
    return labels


def strip_prompt(prompt: str, trained: list[str]) -> str:
    """The prompt without extra-network tags and without the label's trained words."""
    text = TAG.sub(" ", prompt)
    items = {part.strip() for word in trained for part in [word, *word.split(",")] if part.strip()}
    for item in sorted(items, key=len, reverse=True):
        text = re.sub(r"(?<!\w)" + re.escape(item) + r"(?!\w)", " ", text, flags=re.IGNORECASE)
    return text


def load_prompts(data: Path, n: int | None, seed: int) -> list[dict]:
    with open(data / "civitai_dev_prompts.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    random.Random(seed).shuffle(rows)
    return rows if n is None else rows[:n]
