"""A BERT encoder run over one call's texts laid end to end (:class:`FlatBert`), for the
query-sized calls of :mod:`pixtention.curator.embedder`."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("pixtention.curator")

# Attention runs over runs of consecutive texts of at most this many tokens, the other texts'
# tokens masked: one product per run and no gathering, while the masked products grow with the
# square of a run. On the phrases of 300 real prompts (bf16, one thread) 48 took 11.9 ms a call
# on average and 21.9 at p95, 64 12.1/22.3, 96 12.3/23.3; one block per call up to 160 tokens
# and padded groups of similar-length texts beyond took 12.0/24.3.
CHUNK_TOKENS = 48
# The dense layers run on a multiple of this many rows (the surplus rows are zeros, dropped):
# oneDNN builds a kernel per row count, about 2 ms for a call's four weight shapes, and a
# prompt rarely repeats its token count, so most calls paid it. 8 bounds the shapes at 64 up
# to the flat limit (the calls of 300 never-seen dev prompts at 10k adapters, up to 252 tokens,
# need 32 at most) for ~4 rows of extra work on average. On those calls of 50 tokens or more,
# 8 took 13.6-13.9 ms a call against 14.0-14.5 for 16 (interleaved, kernels built); the
# vectors are the same to the bit.
PAD_ROWS = 8


def _dense_weights(layer, dtype) -> list:
    """A BERT layer's four dense layers as (weight, bias) in ``dtype``: query, key and value
    fused, attention output, intermediate, output."""
    import torch

    s, out = layer.attention.self, layer.attention.output
    dense = [
        (torch.cat([s.query.weight, s.key.weight, s.value.weight]),
         torch.cat([s.query.bias, s.key.bias, s.value.bias])),
        (out.dense.weight, out.dense.bias),
        (layer.intermediate.dense.weight, layer.intermediate.dense.bias),
        (layer.output.dense.weight, layer.output.dense.bias),
    ]  # fmt: skip
    return [(w.detach().to(dtype), b.detach().to(dtype)) for w, b in dense]


def _pack(dense: list, dtype, gelu: bool):
    """``dense`` (weight, bias) pairs as oneDNN's pre-packed bf16 weights, or None when this
    torch build cannot (checked on one product against ``torch.nn.functional.linear``)."""
    import torch

    if dtype != torch.bfloat16 or not torch.backends.mkldnn.is_available():
        return None
    try:
        packed = [(torch.ops.mkldnn._reorder_linear_weight(w, None), b) for w, b in dense]
        x = torch.randn(PAD_ROWS, dense[2][0].shape[1]).to(dtype)
        want = torch.nn.functional.linear(x, *dense[2]).float()
        want = torch.nn.functional.gelu(want) if gelu else want
        got = _linear_packed(x, packed[2], gelu).float()
        ok = bool(((got - want).abs().max() <= 0.02 * want.abs().max()).item())
    except Exception as exc:  # an op missing or refusing: plain products
        log.info("FlatBert: bf16 weights not pre-packed (%s: %s)", type(exc).__name__, exc)
        return None
    if not ok:
        log.info("FlatBert: bf16 weights not pre-packed (packed products differ)")
    return packed if ok else None


def _linear_packed(x, weight, gelu: bool = False):
    import torch

    if gelu:  # the exact (erf) GELU fused into the product, as BERT's "gelu"
        return torch.ops.mkldnn._linear_pointwise(x, weight[0], weight[1], "gelu", [], "none")
    return torch.ops.mkldnn._linear_pointwise(x, weight[0], weight[1], "none", [], "")


class FlatBert:
    """A BERT encoder run over one call's texts laid end to end, for query-sized calls.

    A prompt's phrases are a few tokens each: in packed rows the dense layers still ran over
    the padding of the last row and a second batch, and the attention over whole 128-token rows
    (torch's masked attention kernel, about a sixth of the call). Here every dense layer is one
    matrix product over the real tokens only (query, key and value fused; rounded up to
    :data:`PAD_ROWS` rows), attention runs within each text (block-diagonal products over runs
    of consecutive texts, :data:`CHUNK_TOKENS`), and the dense layers' weights are in ``dtype``
    (bfloat16 on CPUs that compute it natively, pre-packed for oneDNN with the GELU fused into
    its product) while everything else stays float32.

    Over 300 real prompts (54/131 tokens p50/p95) embedding a prompt's phrases in bf16 took
    18.1/35.5 ms CPU p50/p95 against 17.9/40.7 in rows before the packing, the attention in runs
    and the fixed row counts. Those cut the calls a never-seen prompt makes at 10k adapters (the
    phrases the library's vocabulary does not hold, 21/82 tokens p50/p95) from 9.4/23.4 to
    6.4/14.8 ms on first use of each call size, from 8.0/17.4 to 6.4/14.4 after; the vectors are
    unchanged (cosine ≥ 0.9999 to float32). Documents (about 110 tokens each) are faster in
    rows, where torch's fused attention pays off: 1,024 took 21 s CPU in rows, 33 flat.
    """

    def __init__(self, model, dtype) -> None:
        self.dtype = dtype
        self.heads = int(model.config.num_attention_heads)
        gelu = getattr(model.config, "hidden_act", None) == "gelu"
        self.embeddings = model.embeddings
        layers = model.encoder.layer
        plain = [_dense_weights(layer, dtype) for layer in layers]
        packed = [_pack(weights, dtype, gelu) for weights in plain[:1]]
        if packed[0] is not None:
            packed += [_pack(weights, dtype, gelu) for weights in plain[1:]]
        self.packed = all(p is not None for p in packed)
        self.layers = [
            (packed[i] if self.packed else plain[i], layer.attention.output.LayerNorm,
             layer.intermediate.intermediate_act_fn, layer.output.LayerNorm)
            for i, layer in enumerate(layers)
        ]  # fmt: skip
        self.fused_gelu = self.packed and gelu
        self.pad = PAD_ROWS if self.packed else 1

    def _dense(self, x, weight):
        """``x`` (rows, in) in ``dtype`` through one dense layer, output in ``dtype``."""
        import torch

        if self.packed:
            return _linear_packed(x, weight)
        return torch.nn.functional.linear(x, *weight)

    def _expand(self, x, weight, act):
        """The intermediate layer and its activation, output in ``dtype`` (rows × 4·width)."""
        if self.fused_gelu:
            return _linear_packed(x, weight, gelu=True)
        return act(self._dense(x, weight).float()).to(self.dtype)

    @staticmethod
    def _chunks(lengths: list[int]) -> list[tuple[int, int, object]]:
        """Consecutive texts in runs of at most :data:`CHUNK_TOKENS` tokens (a longer text is a
        run of its own): (first token, end, mask of the other texts' tokens) per run."""
        import torch

        bounds: list[tuple[int, int]] = []
        start = end = 0
        for n in lengths:
            if end > start and end + n - start > CHUNK_TOKENS:
                bounds.append((start, end))
                start = end
            end += n
        bounds.append((start, end))
        owner = np.repeat(np.arange(len(lengths)), lengths)
        chunks = []
        for a, b in bounds:
            run = owner[a:b]
            blocked = torch.zeros(b - a, b - a).masked_fill_(
                torch.from_numpy(run[:, None] != run[None, :]), -np.inf
            )
            chunks.append((a, b, blocked))
        return chunks

    def _attend(self, qkv, chunks: list):
        """Each token's attention over the tokens of its own text → (tokens, width): one
        product per run of consecutive texts, the other texts' tokens masked out."""
        import torch

        total, width = qkv.shape[0], qkv.shape[1] // 3
        head = width // self.heads
        context = torch.empty(total, width)
        for a, b, blocked in chunks:
            n = b - a
            q, k, v = qkv[a:b].view(n, 3, self.heads, head).permute(1, 2, 0, 3)
            scores = torch.matmul(q, k.transpose(-1, -2)) / head**0.5 + blocked
            context[a:b] = torch.matmul(scores.softmax(-1), v).transpose(0, 1).reshape(n, width)
        return context

    def __call__(self, ids: list[list[int]], types: list[list[int]] | None) -> np.ndarray:
        """Unit-length mean-pooled vectors of the tokenised texts ``ids``, one row each."""
        import torch

        lengths = [len(x) for x in ids]
        total = sum(lengths)
        tokens = torch.tensor([t for x in ids for t in x], dtype=torch.long)
        kinds = (torch.tensor([t for x in types for t in x], dtype=torch.long)
                 if types is not None else torch.zeros_like(tokens))  # fmt: skip
        positions = torch.from_numpy(np.concatenate([np.arange(n) for n in lengths]))
        owner = np.repeat(np.arange(len(ids)), lengths)
        chunks = self._chunks(lengths)
        e = self.embeddings
        with torch.inference_mode(), torch.autocast("cpu", enabled=False):
            x = e.word_embeddings(tokens) + e.token_type_embeddings(kinds)
            x = e.LayerNorm(x + e.position_embeddings(positions))
            width = x.shape[1]
            rows = -(-total // self.pad) * self.pad
            dense_in = torch.zeros(rows, width, dtype=self.dtype)  # surplus rows stay zero
            for weights, norm1, act, norm2 in self.layers:
                dense_in[:total] = x
                qkv = self._dense(dense_in, weights[0])[:total].float()
                dense_in[:total] = self._attend(qkv, chunks)
                x = norm1(self._dense(dense_in, weights[1])[:total].float() + x)
                dense_in[:total] = x
                hidden = self._expand(dense_in, weights[2], act)
                x = norm2(self._dense(hidden, weights[3])[:total].float() + x)
            pooled = torch.zeros(len(ids), width).index_add_(0, torch.from_numpy(owner), x)
            pooled /= torch.tensor(lengths, dtype=torch.float32)[:, None]
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()
