"""The loaded model of the stand-in: a real tiny ldm UNet, a CLIP-tokenised text encoder with a
random embedding table, and a trivial VAE. The text side imitates the WebUI's
``tokenize_line``: emphasis brackets carry no tokens, ``BREAK`` pads the chunk, each chunk is
BOS + 75 + EOS/padding (77 ids), and the context is the chunks' encodings stacked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from tests.rig.tokenizer import clip_tokenizer
from tests.rig.unet import tiny_unet

BOS, EOS = 49406, 49407
_WEIGHT = re.compile(r":\s*[-+]?\d*\.?\d+\s*(?=\))")


@dataclass
class PromptChunk:
    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    fixes: list = field(default_factory=list)


class TextProcessing(torch.nn.Module):
    """``cond_stage_model`` (A1111) / ``text_processing_engine`` (Forge) for SD1 prompts."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.tokenizer = clip_tokenizer()
        self.embedding = torch.nn.Parameter(torch.randn(49408, dim, generator=generator))
        self.position = torch.nn.Parameter(torch.randn(77, dim, generator=generator) * 0.1)

    def _words(self, text: str) -> list[int]:
        plain = re.sub(r"[()\[\]]", "", _WEIGHT.sub("", text))
        return self.tokenizer(plain, add_special_tokens=False).input_ids if plain.strip() else []

    def tokenize_line(self, line: str):
        chunks: list[PromptChunk] = []
        count = 0
        for part in re.split(r"\s*\bBREAK\b\s*", line):
            ids = self._words(part)
            count += len(ids)
            while True:
                body, ids = ids[:75], ids[75:]
                pad = [EOS] * (75 - len(body))
                chunks.append(PromptChunk([BOS, *body, EOS, *pad], [1.0] * 77))
                if not ids:
                    break
        return chunks, count

    def forward(self, prompts: list[str]) -> torch.Tensor:
        """Conditioning ``[B, 77·chunks, dim]``; shorter prompts get empty chunks appended."""
        batch = [self.tokenize_line(p)[0] for p in prompts]
        longest = max(len(chunks) for chunks in batch)
        rows = []
        for chunks in batch:
            while len(chunks) < longest:
                chunks.append(PromptChunk([BOS] + [EOS] * 76, [1.0] * 77))
            ids = torch.tensor([chunk.tokens for chunk in chunks])
            rows.append((self.embedding[ids] + self.position).reshape(-1, self.position.shape[1]))
        return torch.stack(rows)


class LatentDiffusion(torch.nn.Module):
    """``p.sd_model`` on A1111: ``.model.diffusion_model`` and ``.cond_stage_model``."""

    is_sd1 = True  # A1111 sets these on the loaded model
    is_sd2 = False
    is_sdxl = False
    is_sd3 = False

    def __init__(self, unet: torch.nn.Module, text: TextProcessing) -> None:
        super().__init__()
        self.model = torch.nn.Module()
        self.model.diffusion_model = unet
        self.cond_stage_model = text

    def get_learned_conditioning(self, prompts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.cond_stage_model(prompts)

    def decode_first_stage(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent → image in [0, 1], 8× larger (a fixed projection, enough for tests)."""
        rgb = torch.sigmoid(latent[:, :3])
        return torch.nn.functional.interpolate(rgb, scale_factor=8, mode="nearest")


def build_a1111_model(seed: int = 0) -> LatentDiffusion:
    return LatentDiffusion(tiny_unet(seed=seed), TextProcessing(32, seed))
