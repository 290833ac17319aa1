"""Token positions (77·chunk + index) against the plain CLIP tokenizer, with WebUI syntax."""

from __future__ import annotations

import pytest

from pixtention.integrator.tokens import (
    clip_chunks,
    resolve_schedule,
    strip_emphasis,
    subprompt_positions,
    token_positions,
)
from tests.rig.tokenizer import clip_tokenizer


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


@pytest.fixture(scope="module")
def line(tok):
    return clip_chunks(tok)


def _plain_index(tok, prompt: str, word: str) -> list[int]:
    """Reference: where ``word``'s ids sit in the tokenizer's own BOS-prefixed encoding."""
    ids = tok(prompt)["input_ids"]
    needle = tok(word, add_special_tokens=False)["input_ids"]
    return [
        i + j
        for i in range(len(ids))
        if ids[i : i + len(needle)] == needle
        for j in range(len(needle))
    ]


def test_chunks_are_77_ids_with_bos_and_eos(tok, line) -> None:
    chunks = line("a photo of a cat")
    assert len(chunks) == 1 and len(chunks[0]) == 77
    assert chunks[0][0] == tok.bos_token_id and chunks[0][-1] == tok.eos_token_id
    assert chunks[0][1:6] == tok("a photo of a cat", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "prompt, phrase",
    [
        ("a photo of a cat", "cat"),
        ("a watercolor painting of a red fox in snow", "red fox"),
        ("cyberpunk city, neon lights", "neon lights"),
    ],
)
def test_positions_match_the_plain_tokenizer(tok, line, prompt, phrase) -> None:
    assert list(token_positions(line, prompt, phrase)) == _plain_index(tok, prompt, phrase)


def test_emphasis_is_transparent(tok, line) -> None:
    plain = token_positions(line, "a photo of a red cat", "red cat")
    assert token_positions(line, "a photo of a (red cat:1.3)", "red cat") == plain
    assert token_positions(line, "a photo of a ((red)) [cat]", "(red cat:1.3)") == plain
    assert strip_emphasis(r"a \(literal\) (word:0.8) [x]") == "a (literal) word x"


def test_break_moves_to_the_next_chunk(tok, line) -> None:
    prompt = "a castle on a hill BREAK a dragon in the sky"
    chunks = line(prompt)
    assert len(chunks) == 2
    dragon = token_positions(line, prompt, "dragon")
    assert dragon == tuple(77 + i for i in _plain_index(tok, "a dragon in the sky", "dragon"))
    assert token_positions(line, prompt, "castle") == tuple(_plain_index(tok, prompt, "castle"))


def test_long_prompts_backtrack_to_the_last_comma(line) -> None:
    words = ", ".join(f"tag{i}" for i in range(40))  # more than 75 tokens
    chunks = line(words)
    assert len(chunks) >= 2
    comma = chunks[0][1:-1]
    body = [t for t in comma if t != chunks[0][-1]]
    assert body[-1] == line(",")[0][1]  # the first chunk ends at a comma
    last = token_positions(line, words, "tag39")
    assert last and all(p >= 77 for p in last)


def test_and_subprompts_are_searched_in_order(tok, line) -> None:
    assert subprompt_positions(line, "a cat AND a dog", "dog") == ((), (2,))
    assert token_positions(line, "a cat AND a dog", "dog") == (2,)


def test_prompt_editing_is_resolved_for_the_step(line) -> None:
    prompt = "a [cat:dog:0.5] on grass"
    assert resolve_schedule(prompt, 0, 10) == "a cat on grass"
    assert resolve_schedule(prompt, 6, 10) == "a dog on grass"
    assert resolve_schedule("a [cat|dog] x", 1) == "a dog x"
    assert resolve_schedule("a [hat:3] x", 2, 10) == "a  x"
    assert token_positions(line, prompt, "dog") == ()
    assert token_positions(line, prompt, "dog", step=6, steps=10) == (2,)


def test_trigger_words_and_placeholders(tok, line) -> None:
    prompt = "ohwx woman, portrait"
    positions = token_positions(line, prompt, "woman", extra_words=("ohwx",))
    assert set(_plain_index(tok, prompt, "ohwx")) < set(positions)
    ohwx_ids = tok("ohwx", add_special_tokens=False)["input_ids"]
    without = token_positions(
        line, prompt, "woman", extra_words=("ohwx",), placeholder_ids=(0, *ohwx_ids)
    )
    assert without == tuple(_plain_index(tok, prompt, "woman"))


def test_words_of_a_phrase_found_apart(line) -> None:
    assert token_positions(line, "a cat, red and fluffy", "red cat") == (2, 4)


def test_external_tokenize_line_with_textual_inversion_placeholders() -> None:
    """A WebUI-style ``tokenize_line``: TI vectors appear as id 0 and are never returned."""

    def tokenize_line(text: str) -> list[list[int]]:
        vocab = {"a": 320, "photo": 1125, "of": 539, "<emb>": 0, "cat": 2368}
        ids = [vocab[w] for w in text.split()]
        return [[49406, *ids, *[49407] * (75 - len(ids)), 49407]]

    assert token_positions(tokenize_line, "a photo of <emb> cat", "cat") == (5,)
    assert token_positions(tokenize_line, "a photo of <emb> cat", "<emb>") == ()
