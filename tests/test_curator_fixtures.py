"""Helpers for the curator tests: tiny real kohya LoRA files with sidecars, a cheap embedder.

(No tests here; the name only keeps the file inside the curator's part of ``tests/``.)
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

SD1_TARGETS = (
    ("down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 768, 320),
    ("down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v", 768, 320),
    ("up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q", 640, 640),
)


def write_lora(
    path: Path,
    *,
    rank: int = 4,
    metadata: dict[str, str] | None = None,
    seed: int = 0,
    civitai: dict | None = None,
    user: dict | None = None,
    preview: bool = False,
) -> Path:
    """A real (tiny) SD1 kohya LoRA; ``seed`` changes tensors and header (a distinct file)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for stem, fan_in, fan_out in SD1_TARGETS:
        tensors[f"lora_unet_{stem}.lora_down.weight"] = torch.randn(rank, fan_in, generator=gen)
        tensors[f"lora_unet_{stem}.lora_up.weight"] = torch.randn(fan_out, rank, generator=gen)
        tensors[f"lora_unet_{stem}.alpha"] = torch.tensor(float(rank))
    meta = {"ss_network_dim": str(rank), "ss_network_alpha": str(rank), "ss_seed": str(seed)}
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    stem = path.name[: -len(".safetensors")]
    if civitai is not None:
        (path.parent / f"{stem}.civitai.info").write_text(json.dumps(civitai))
    if user is not None:
        (path.parent / f"{stem}.json").write_text(json.dumps(user))
    if preview:
        from PIL import Image

        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path.parent / f"{stem}.preview.png")
    return path


def civitai_info(name: str, words: list[str], tags: list[str], description: str = "") -> dict:
    """A Civitai-Helper style ``.civitai.info`` (a model version with its parent model)."""
    return {
        "id": abs(hash(name)) % 10**6,
        "modelId": abs(hash(name + "m")) % 10**6,
        "name": "v1.0",
        "baseModel": "SD 1.5",
        "trainedWords": words,
        "description": "",
        "model": {"name": name, "type": "LORA", "tags": tags, "description": description},
    }


THEMES = {
    "watercolor": (
        ["Soft Watercolor Painting", "Watercolour Landscape Wash", "Ink and Watercolor Sketch"],
        ["watercolor", "painting", "style", "art style"],
        "A painterly watercolor style with soft washes of colour on paper.",
    ),
    "cyberpunk": (
        ["Neon Cyberpunk City", "Cyberpunk Streets at Night", "Futuristic Neon Metropolis"],
        ["cyberpunk", "city", "neon", "background"],
        "Futuristic city streets full of neon signs, rain and skyscrapers.",
    ),
    "armor": (
        ["Medieval Knight Armor", "Plate Armour Outfit", "Fantasy Knight Armor Set"],
        ["armor", "knight", "clothing", "medieval"],
        "Full plate armor for knights and warriors, shiny steel.",
    ),
    "cats": (
        ["Fluffy Cat Concept", "Kitten Pose Pack", "Cute Cat Companion"],
        ["cat", "animal", "kitten", "cute"],
        "Cute fluffy cats and kittens, furry animal companions.",
    ),
}


def write_themed_library(folder: Path, per_theme: int = 3) -> dict[str, list[Path]]:
    """Four themes in sub-folders, each adapter with a civitai sidecar; returns theme → files."""
    out: dict[str, list[Path]] = {}
    seed = 0
    for theme, (titles, tags, description) in THEMES.items():
        for i in range(per_theme):
            title = titles[i % len(titles)] + ("" if i < len(titles) else f" {i}")
            name = re.sub(r"\W+", "_", title.lower())
            seed += 1
            words = [f"{theme}{i}" if i % 2 else tags[0]]
            info = civitai_info(title, words, tags, description)
            path = folder / theme / f"{name}.safetensors"
            out.setdefault(theme, []).append(write_lora(path, seed=seed, civitai=info))
    return out


class HashEmbedder:
    """A deterministic bag-of-words embedder: cheap for fault tests, still meaningful."""

    def __init__(self, dim: int = 64, tag: str = "hash") -> None:
        self.id = f"test-{tag}-{dim}"
        self.dim = dim
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            out[i, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)
