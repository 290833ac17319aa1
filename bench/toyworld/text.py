"""A tiny word-level tokenizer and text encoder with the WebUI's 77-token CLIP layout.

``ToyTokenizer`` answers the few calls ``pixtention.integrator.clip_chunks`` makes on a Hugging
Face ``CLIPTokenizer`` (``__call__``, ``bos/eos/pad_token_id``, ``convert_tokens_to_ids``), so
the product's own chunking and ``token_positions`` run unchanged on toy prompts: BOS, the
words, EOS, and EOS as padding up to 77, as SD1 conditions. Id 0 is reserved (the product skips
it as a textual-inversion placeholder). The encoder is CLIP-shaped: token + position
embeddings, causal self-attention (so a shape word also carries its colour), final LayerNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from pixtention.integrator.tokens import CHUNK, clip_chunks

# fmt: off
WORDS = (
    "a", "and", "on", "background",
    "circle", "square", "triangle",
    "red", "green", "blue", "yellow",
    "purple", "striped", "checkered",  # LoRA concepts: in the vocabulary, never in base data
    ",",
)
# fmt: on
SPECIAL = ("<unused>", "<|startoftext|>", "<|endoftext|>", "<unk>")


class ToyTokenizer:
    """Whitespace word tokenizer over ``WORDS``; unknown words map to ``<unk>``."""

    def __init__(self) -> None:
        self.vocab = {word: i for i, word in enumerate((*SPECIAL, *WORDS))}
        self.bos_token_id = self.vocab["<|startoftext|>"]
        self.eos_token_id = self.vocab["<|endoftext|>"]
        self.pad_token_id = self.eos_token_id
        self.unk_token_id = self.vocab["<unk>"]

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, text: str, **_: object) -> dict[str, list[int]]:
        """Ids of ``text`` without special tokens (``clip_chunks`` adds BOS/EOS/padding)."""
        words = text.lower().replace(",", " , ").split()
        return {"input_ids": [self.vocab.get(w, self.unk_token_id) for w in words]}

    def convert_tokens_to_ids(self, token: str) -> int:
        """CLIP spells a word-final comma ``,</w>``; the toy vocabulary has a plain ``,``."""
        return self.vocab.get(token.removesuffix("</w>"), self.unk_token_id)

    def tokenize_line(self, text: str) -> list[list[int]]:
        """The WebUI's ``tokenize_line``: 77-id chunks, via the product's own ``clip_chunks``."""
        return clip_chunks(self)(text)

    def encode(self, captions: list[str]) -> torch.Tensor:
        """First chunk of each caption as ``[B, 77]`` ids (toy captions fit in one chunk)."""
        return torch.tensor([self.tokenize_line(c)[0] for c in captions], dtype=torch.long)


class ToyTextEncoder(nn.Module):
    """CLIP-shaped: embeddings, ``layers`` causal pre-LN transformer layers, final LayerNorm."""

    def __init__(self, vocab_size: int, dim: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.randn(CHUNK, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim * 4, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.register_buffer(
            "causal", torch.triu(torch.full((CHUNK, CHUNK), float("-inf")), 1), persistent=False
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, 77]`` ids → ``[B, 77, dim]`` context for the UNet's cross-attention."""
        x = self.token_embedding(ids) + self.position_embedding
        return self.final_layer_norm(self.layers(x, mask=self.causal, is_causal=True))
