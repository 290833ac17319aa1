"""A pinned adapter that the prompt also tags with ``<lora:…>``: PixTention takes the tag over.

Reported from the real WebUI: "<lora:knight_armor:0.7>" in the prompt plus a pin of
``knight_armor`` gave no pick, and the job said the pinned adapter was not in the library.
"""

from __future__ import annotations

import pytest

from pixtention.selector.select import select
from pixtention.selector.triggers import apply_picks
from tests.test_selector_select import embedder, library  # noqa: F401  (module fixtures)

PROMPT = "a knight in shining armor <lora:knight_armor:0.7>, in an autumn forest"


@pytest.mark.parametrize("mode", ["auto", "suggest", "regionalise", "both"])
def test_a_pinned_adapter_that_is_also_tagged_is_picked_with_the_tags_weight(library, mode):  # noqa: F811
    picks = select(PROMPT, library, k=2, pins=("knight_armor",), mode=mode, threshold=0.99)
    knights = [p for p in picks if p.name == "knight_armor"]
    assert len(knights) == 1, [p.name for p in picks]
    assert knights[0].weight == pytest.approx(0.7)  # the tag's weight, not the default
    assert knights[0].phrase and knights[0].phrase in PROMPT  # the phrase the tag follows
    assert "armor" in knights[0].phrase


def test_the_tag_of_a_taken_over_pin_leaves_the_prompt(library):  # noqa: F811
    picks = select(PROMPT, library, k=1, pins=("knight_armor",), mode="auto", threshold=0.99)
    rewritten = apply_picks(PROMPT, picks, strip_user_tags=True)
    assert "<lora:knight_armor" not in rewritten  # or the built-in Lora applies it globally too
    assert "a knight in shining armor" in rewritten and "autumn forest" in rewritten


def test_an_unpinned_tag_stays_for_the_builtin_lora_in_auto_mode(library):  # noqa: F811
    picks = select(PROMPT, library, k=1, mode="auto", threshold=0.0)
    assert all(p.name != "knight_armor" for p in picks)
    assert "<lora:knight_armor:0.7>" in apply_picks(PROMPT, picks, strip_user_tags=True)
