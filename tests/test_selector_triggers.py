"""Trigger choice, weights, and rewriting the prompt next to each bound phrase."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixtention.selector.picks import Evidence, Pick
from pixtention.selector.prompt import parse_prompt
from pixtention.selector.triggers import (
    apply_picks,
    choose_triggers,
    choose_weight,
    rewrite_prompt,
    trigger_items,
)

LUX = "Luxanna Crownguard from League Of Legends"


def test_trigger_items_split_clean_and_dedupe() -> None:
    assert trigger_items(["lux, (luxanna crownguard:1.2)", "Lux", "", " , "]) == [
        "lux",
        "luxanna crownguard",
    ]


def test_one_naming_item_is_chosen() -> None:
    triggers = ["lux, luxanna crownguard, league of legends, 1girl, blonde hair"]
    assert choose_triggers(triggers, "1girl, beach", "beach", LUX) == ("luxanna crownguard",)
    # the concept is already named: nothing to add
    assert choose_triggers(triggers, "league of legends, beach", "beach", LUX) == ()
    # no item shares a title word: the first (primary) item
    assert choose_triggers(["vhs footage of", "vhs"], "a cat", "a cat", "Bad Tape") == (
        "vhs footage of",
    )
    # an activation token is what training gave meaning to
    assert choose_triggers(["sks dog", "brown dog"], "a dog", "a dog", "Brown Dog") == ("sks dog",)
    assert choose_triggers([], "anything", "anything", "Title") == ()


def test_an_item_is_inserted_whole_or_not_at_all() -> None:
    knight = "Plate Knight"
    # the prompt has "knight" but not the item: the whole item, never just "plate"
    assert choose_triggers(["plate knight"], "a knight in armor", "a knight", knight) == (
        "plate knight",
    )
    assert choose_triggers(["red dragon"], "a dragon", "a dragon", "Red Dragon") == ("red dragon",)
    # contained as a phrase, whatever the case, emphasis, weights or tags around it
    for prompt in (
        "castle, PLATE KNIGHT",
        "castle, (plate knight:1.3)",
        "((Plate)) [knight], castle",
        "a plate knight<lora:x:0.5> on a horse",
    ):
        assert choose_triggers(["plate knight"], prompt, "x", knight) == (), prompt
    # the words are there but not together in one tag: the item is not said yet
    for prompt in ("knight, plate", "plate armor, knight", "knight plate"):
        assert choose_triggers(["plate knight"], prompt, "x", knight) == ("plate knight",), prompt
    # words a phrase split drops ("of") still count: the prompt as written is read
    got = choose_triggers(["dragon of fire"], "a dragon of fire, castle", "a dragon", "Fire")
    assert got == ()


def test_the_variant_the_phrase_names_wins() -> None:
    triggers = ["ahri star guardian", "ahri arcade", "ahri spirit blossom"]
    title = "Ahri (League of Legends) all skins"
    got = choose_triggers(triggers, "in a neon arcade", "a neon arcade", title)
    assert got == ("ahri arcade",)
    assert choose_triggers(triggers, "ahri arcade, cabinet", "cabinet", title) == ()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["red", "dragon", "of", "sks", "fire", "wing", "a", ","]), max_size=8),
    st.lists(st.sampled_from(["red dragon", "sks", "fire wing", "dragon of fire"]), max_size=3),
)
def test_whole_items_only_and_rewriting_is_idempotent(prompt_words, triggers) -> None:
    prompt = " ".join(prompt_words)
    chosen = choose_triggers(triggers, prompt, prompt, "Red Dragon")
    assert len(chosen) <= 1
    assert set(chosen) <= set(trigger_items(triggers))
    # reference: the item's words as a contiguous run of one comma piece, written out plainly
    pieces = [p.split() for p in prompt.split(",")]

    def said(item: str) -> bool:
        w = item.split()
        return any(p[i : i + len(w)] == w for p in pieces for i in range(len(p)))

    for item in chosen:
        assert not said(item)
    # once inserted, the same adapter asks for nothing more
    if chosen:
        rewritten = prompt + ", " + chosen[0]
        assert choose_triggers(triggers, rewritten, prompt, "Red Dragon") == ()


def test_weight_precedence() -> None:
    assert choose_weight(0.6, "user") == (0.6, "user")
    assert choose_weight(0.8, "civitai") == (0.8, "civitai")
    assert choose_weight(None, None) == (1.0, "default")
    assert choose_weight(0.0, "user") == (1.0, "default")  # A1111: 0 means "unset"
    assert choose_weight(None, None, default=0.7) == (0.7, "default")


def _pick(name: str, prompt: str, phrase: str, triggers=(), source="auto") -> Pick:
    found = [p for p in parse_prompt(prompt).phrases if p.text == phrase]
    span = found[0].span if found else None
    evidence = Evidence(0.5, 0.5, 0.0, phrase, 0.5, "theme")
    return Pick(
        name, f"/l/{name}.safetensors", "fp", None, 0.5, phrase, span,
        found[0].stripped_span if found else None, 1.0, "default", tuple(triggers), "theme",
        evidence, source, "sd1",
    )  # fmt: skip


def test_apply_picks_inserts_after_each_phrase() -> None:
    prompt = "a dragon <lora:cat:0.5>, a castle in the mist"
    picks = [
        _pick("castle", prompt, "a castle", ["stone keep"]),
        _pick("dragon", prompt, "a dragon", ["sks"]),
        _pick("cat", prompt, "a dragon", source="user"),
    ]
    rewrite = rewrite_prompt(prompt, picks)
    assert rewrite.prompt == "a dragon, sks <lora:cat:0.5>, a castle, stone keep in the mist"
    assert apply_picks(prompt, picks) == rewrite.prompt
    spans = [rewrite.prompt[slice(*s)] for s in rewrite.spans]
    assert spans == ["a castle, stone keep", "a dragon, sks", "a dragon"]
    stripped = apply_picks(prompt, picks, strip_user_tags=True)
    assert stripped == "a dragon, sks , a castle, stone keep in the mist"  # as the WebUI strips
    # no phrase: triggers go at the end, span None
    nowhere = dataclasses.replace(picks[1], phrase_span=None, stripped_span=None)
    assert rewrite_prompt("x", [nowhere]) == type(rewrite)("x, sks", (None,))


def test_pick_to_dict_is_json_ready() -> None:
    prompt = "a dragon"
    data = json.loads(json.dumps(_pick("dragon", prompt, "a dragon", ["sks"]).to_dict()))
    assert data["name"] == "dragon" and data["triggers"] == ["sks"]
    assert data["phrase_span"] == [0, 8] and data["evidence"]["cluster_label"] == "theme"
    assert {"score", "phrase", "weight", "source", "base_family"} <= set(data)


def test_pick_source_is_validated() -> None:
    with pytest.raises(ValueError, match="source"):
        _pick("dragon", "a dragon", "a dragon", source="magic")
