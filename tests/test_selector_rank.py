"""Suggestions (issue 14): ``rank`` lists what is relevant to a prompt, ``select`` applies only
what its kind allows. A character the prompt describes without naming it is suggested, never
applied; an adult adapter is not suggested for a plain prompt; the CLI, the UI table and the
REST answer show the relevant adapters that were not picked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pixtention.curator import index_folder, open_library
from pixtention.curator.embedder import make_embedder
from pixtention.selector import select
from pixtention.selector.select import RELEVANT_SCORE, rank
from pixtention.webui.views import suggestions_html
from tests.test_selector_kinds import _select, _write

KNIGHT = "a knight in shining armor standing on a hill"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("rank")
    _write(root / "Lora")
    index_folder(root / "Lora", root / "store", captions=False, embedder=make_embedder())
    return root / "store"


@pytest.fixture(scope="module")
def library(store):
    return open_library(store, embedder=make_embedder())


def test_a_character_is_suggested_where_it_is_not_applied(library) -> None:
    ranked = rank(KNIGHT, library, k=10, base_model="sd1")
    names = [s.name for s in ranked]
    assert "artoria" in names  # relevant: the knight king in shining armor
    assert "artoria" not in {p.name for p in _select(KNIGHT, library, k=5)}
    artoria = ranked[names.index("artoria")]
    assert artoria.concept_kind == "character" and artoria.phrase
    assert names.index("knight_armor") < names.index("artoria")


def test_suggestions_are_the_scores_of_select_best_first(library) -> None:
    ranked = rank(KNIGHT, library, k=10, base_model="sd1")
    scores = [s.score for s in ranked]
    assert scores == sorted(scores, reverse=True) and min(scores) >= RELEVANT_SCORE
    # the same scores as a plain ranking (threshold 0: no kind rules, no abstention)
    plain = {p.name: p.score for p in select(KNIGHT, library, k=10, per_phrase=10, threshold=0.0)}
    for s in ranked:
        assert s.score == pytest.approx(plain[s.name], abs=1e-6)


def test_hard_filters_hold_in_suggestions(library) -> None:
    ranked = rank(KNIGHT, library, k=10, base_model="sd1", exclude=["knight_armor"])
    assert "knight_armor" not in {s.name for s in ranked}
    assert rank(KNIGHT, library, k=10, base_model="sdxl") == []  # every adapter is SD 1.5
    tagged = rank(KNIGHT + " <lora:plate_knight:0.8>", library, k=10, base_model="sd1")
    assert "plate_knight" not in {s.name for s in tagged}  # the user applies it already
    assert rank("masterpiece, best quality", library) == []
    assert rank("a bowl of soup on a kitchen table", library) == []  # nothing relevant


def test_an_adult_adapter_is_suggested_only_for_an_adult_prompt(library) -> None:
    plain = "an astronaut in a space suit floating above the earth"
    assert "astro_suit" not in {s.name for s in rank(plain, library, k=10)}
    assert "astro_suit" in {s.name for s in rank("sexy " + plain, library, k=10)}


def test_the_ui_lists_relevant_adapters_with_a_pin(library) -> None:
    ranked = rank(KNIGHT, library, k=10, base_model="sd1")
    picks = _select(KNIGHT, library, k=1)
    more = [s for s in ranked if s.name not in {p.name for p in picks}]
    html = suggestions_html("txt2img", KNIGHT, picks, more=more)
    assert "Also relevant, not applied" in html
    assert 'data-pixtention-action="pin" data-pixtention-name="artoria"' in html
    assert "Also relevant" not in suggestions_html("txt2img", KNIGHT, picks)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixtention", "suggest", *args],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip


def test_cli_ranked_json_and_the_table_line(store) -> None:
    out = _cli(KNIGHT, "--store", str(store), "--ranked", "4", "--json")
    data = json.loads(out.stdout)
    assert 1 <= len(data) <= 4 and set(data[0]) == {"name", "score", "concept_kind", "phrase"}
    assert data[0]["name"] == "knight_armor"
    table = _cli(KNIGHT, "--store", str(store), "--k", "1").stdout
    assert "also relevant, not applied" in table and "artoria" in table.split("also relevant")[1]


def test_rank_is_public_beside_select(library) -> None:
    import pixtention

    assert pixtention.rank is rank and pixtention.select is select
    assert isinstance(pixtention.rank(KNIGHT, library)[0], pixtention.Suggestion)
