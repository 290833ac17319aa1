"""The toy tokenizer keeps the WebUI's 77-token layout, so the product's token code runs as is."""

from __future__ import annotations

import torch

from bench.toyworld.scenes import scene_batch
from bench.toyworld.text import ToyTextEncoder, ToyTokenizer
from bench.toyworld.train_base import token_select
from pixtention.integrator import token_positions


def test_a_prompt_is_bos_words_eos_and_eos_padding_to_77() -> None:
    tok = ToyTokenizer()
    (chunk,) = tok.tokenize_line("a red circle and a blue square")
    assert len(chunk) == 77
    assert chunk[0] == tok.bos_token_id and chunk[-1] == tok.eos_token_id
    words = [tok.vocab[w] for w in ["a", "red", "circle", "and", "a", "blue", "square"]]
    assert chunk[1:8] == words
    assert set(chunk[8:]) == {tok.eos_token_id}
    assert 0 not in chunk  # id 0 is what the product skips as a textual-inversion placeholder
    assert tok.tokenize_line("")[0] == [tok.bos_token_id] + [tok.eos_token_id] * 76
    assert tok("a cat")["input_ids"][1] == tok.unk_token_id


def test_token_positions_find_each_objects_words() -> None:
    tok = ToyTokenizer()
    prompt = "a red circle and a blue square"
    assert token_positions(tok.tokenize_line, prompt, "red circle") == (2, 3)
    assert token_positions(tok.tokenize_line, prompt, "blue square") == (6, 7)
    assert token_positions(tok.tokenize_line, prompt, "(blue:1.2) square") == (6, 7)
    assert token_positions(tok.tokenize_line, prompt, "green triangle") == ()
    striped = "a striped red circle on a checkered background"
    assert token_positions(tok.tokenize_line, striped, "checkered background") == (7, 8)


def test_the_grounding_targets_are_the_products_token_positions() -> None:
    tok = ToyTokenizer()
    scenes = scene_batch(21, 16)
    select = token_select(scenes, [s.caption for s in scenes])
    for scene, rows in zip(scenes, select):
        for o, thing in enumerate(scene.things):
            want = token_positions(
                tok.tokenize_line, scene.caption, f"{thing.colour} {thing.shape}"
            )
            assert tuple(rows[o].nonzero().flatten().tolist()) == want
        assert not rows[len(scene.things) :].any()


def test_the_encoder_is_causal_and_shaped_like_clip() -> None:
    tok = ToyTokenizer()
    torch.manual_seed(0)
    encoder = ToyTextEncoder(len(tok)).eval()
    with torch.no_grad():
        a, b = encoder(tok.encode(["a red circle", "a red square"]))
    assert a.shape == (77, 64)
    assert torch.allclose(a[:3], b[:3], atol=1e-6)  # BOS, "a", "red" cannot see the shape word
    assert not torch.allclose(a[3:], b[3:])
