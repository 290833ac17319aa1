"""Bulk embedding precision: bf16 autocast on capable CPUs keeps MiniLM's vector space."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pixtention.curator.embedder import make_embedder
from pixtention.curator.precision import (
    cpu_has_native_bf16,
    embed_bulk,
    native_dtype,
)
from tests.test_curator_fixtures import THEMES, HashEmbedder

STYLES = ("oil painting", "pixel art", "pencil sketch", "anime screencap", "photograph")


def documents() -> list[str]:
    """Varied document-like texts, more than one bulk batch threshold."""
    out = []
    for (titles, tags, description), style, n in itertools.product(
        THEMES.values(), STYLES, range(4)
    ):
        title = titles[n % len(titles)]
        out.append(
            f"{title} {n}. Kind: {tags[-1]}. Tags: {', '.join(tags)}, {style}. {description}"
        )
    return out


@pytest.fixture(scope="module")
def minilm():
    return make_embedder()


def test_bulk_vectors_agree_with_float32(minilm):
    texts = documents()
    reference = minilm.embed(texts)  # float32, checked against mean pooling elsewhere
    bulk = embed_bulk(minilm, texts)
    assert bulk.dtype == np.float32 and bulk.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(bulk, axis=1), 1.0, atol=1e-5)
    cosine = (bulk * reference).sum(axis=1)
    assert cosine.min() >= 0.999
    # each text's nearest other text is the same in both spaces (retrieval is unchanged)
    ref_sim, bulk_sim = reference @ reference.T, bulk @ reference.T
    np.fill_diagonal(ref_sim, -1), np.fill_diagonal(bulk_sim, -1)
    agree = np.mean(ref_sim.argmax(1) == bulk_sim.argmax(1))
    assert agree >= 0.95
    if native_dtype(minilm) == "bfloat16":
        assert not np.array_equal(bulk, reference)  # autocast really ran
    else:
        np.testing.assert_array_equal(bulk, reference)


def test_precision_choice(minilm):
    expected = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert native_dtype(minilm) == expected
    assert native_dtype(HashEmbedder()) == "float32"  # not a torch CPU embedder

    class OnGpu:
        id, device = "x", "cuda"

    assert native_dtype(OnGpu()) == "float32"


def test_custom_embedders_pass_through_unchanged():
    emb = HashEmbedder()
    texts = documents()
    np.testing.assert_array_equal(embed_bulk(emb, texts), emb.embed(texts))


def test_queries_use_the_native_precision_and_keep_the_space(minilm):
    from pixtention.curator.library import Library

    expected = native_dtype(minilm)
    phrases = ["a red dragon", "watercolor painting", "1girl", "cyberpunk neon city at night"]
    library = Library.from_records([], np.zeros((0, 384), np.float32), minilm)
    queried = library.embed(phrases)
    reference = minilm.embed(phrases)  # float32
    assert float((queried * reference).sum(axis=1).min()) >= 0.999
    assert (expected == "float32") == np.array_equal(queried, reference)  # autocast really ran


def test_autocast_runs_a_twin_with_bf16_linear_weights(minilm):
    import torch

    from pixtention.curator.embedder import TransformersEmbedder

    fresh = TransformersEmbedder()
    fresh._model, fresh._tokenizer = minilm._load()  # same weights, no twin yet
    phrases = ["a red dragon", "watercolor painting", "1girl", "cyberpunk neon city at night"]
    reference = fresh.embed(phrases)  # float32: no twin
    assert fresh._model_bf16 is None
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        twin_vectors = fresh._run(
            fresh._tokenizer(phrases, truncation=True, max_length=128), [[i] for i in range(4)]
        )  # the twin is built here
    twin, model = fresh._model_bf16, fresh._model
    assert twin is not None and twin is not model
    assert twin.embeddings.word_embeddings.weight is model.embeddings.word_embeddings.weight
    linears = [m for m in twin.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert all(m.weight.dtype == torch.float32 for m in model.modules()
               if isinstance(m, torch.nn.Linear))  # fmt: skip
    assert float((twin_vectors * reference).sum(axis=1).min()) >= 0.999
    np.testing.assert_array_equal(fresh.embed(phrases), reference)  # float32 path untouched


def test_flat_queries_run_bf16_dense_layers_and_keep_the_space(minilm):
    import torch

    phrases = ["a red dragon", "watercolor painting", "1girl", "cyberpunk neon city at night"]
    reference = minilm.embed(phrases)  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = minilm.embed(phrases)
    flat = minilm._flat[torch.bfloat16]
    assert all(w.dtype == torch.bfloat16 for weights, *_ in flat.layers for w, _ in weights)
    assert float((bf16 * reference).sum(axis=1).min()) >= 0.999
    assert not np.array_equal(bf16, reference)  # the bf16 weights really ran
    np.testing.assert_array_equal(minilm.embed(phrases), reference)  # float32 unchanged
