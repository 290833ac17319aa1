"""Script args (positional and dict, as the API sends them), the infotext value, and the HTML
views: defaults kept for short lists, clear one-line errors for bad values, round trips."""

from __future__ import annotations

import json
import types

import pytest

from pixtention.webui import infotext
from pixtention.webui.args import (
    ARG_NAMES,
    ARG_SPECS,
    ArgsError,
    Pin,
    WebuiArgs,
    args_doc,
    parse_args,
    parse_pins,
)
from pixtention.webui.service import IndexStatus
from pixtention.webui.views import status_html, suggestions_html


def test_arg_order_is_frozen():
    # Append-only public contract (API clients send positional lists in this order).
    assert ARG_NAMES[:14] == (
        "enabled", "mode", "k", "clusters", "threshold", "per_phrase", "mask_layers",
        "softness", "competition", "warmup_steps", "freeze_at", "show_masks", "pins", "exclude",
    )  # fmt: skip
    lines = args_doc().splitlines()
    assert len(lines) == len(ARG_SPECS) and lines[2].split()[:2] == ["2", "k"]


def test_positional_short_list_keeps_defaults():
    args = parse_args([True, "regionalise", 5])
    assert (args.enabled, args.mode, args.k) == (True, "regionalise", 5)
    assert args.threshold == WebuiArgs().threshold and args.pins == ()
    assert parse_args([]) == WebuiArgs()
    assert parse_args([True, None, None, 3]).clusters == 3  # None = default


def test_ui_values_parse_like_api_values():
    ui = [True, "Regionalise my LoRAs", 4.0, 8, 0.5, 1, "all", 0.2, "hard", 2, 0.5, True,
          "inkwash#ABCDEF0123:0.7@ink wash painting, redcar", "castlebg"]  # fmt: skip
    args = parse_args(ui)
    assert args.mode == "regionalise" and args.k == 4 and isinstance(args.k, int)
    assert args.pins == (
        Pin("inkwash", "ABCDEF0123", 0.7, "ink wash painting"),
        Pin("redcar"),
    )
    assert args.exclude == ("castlebg",)
    assert parse_args(args.to_values()) == args


def test_dict_args():
    args = parse_args({"k": 2, "Mode": "both", "pins": [{"name": "a", "weight": 0.5}]})
    assert args.enabled is True and args.k == 2 and args.mode == "both"
    assert args.pins == (Pin("a", None, 0.5, None),)
    assert parse_args({"enabled": False}).enabled is False
    # As the API delivers it: the dict first, the UI's defaults in the other positions.
    assert parse_args([{"k": 1}, "Auto-pick", 3, 8]).k == 1
    assert parse_args({"top_k": 4, "excludes": "x, y,, x"}).exclude == ("x", "y")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([True, "sideways"], "mode='sideways' is not one of auto, regionalise, both, suggest"),
        ([True, "auto", 17], "k=17 is outside 0..16"),
        ([True, "auto", 2.5], "k=2.5: expected a whole number"),
        ([True, "auto", "three"], "k='three': could not convert string to float"),
        ([True, "auto", float("nan")], "expected a finite number"),
        (["maybe"], "enabled='maybe': expected true or false"),
        ([True, "auto", True], "k=True: expected a number, got bool"),
        ({"colour": "red"}, "unknown setting 'colour'"),
        (list(range(15)), "got 15 values, expected at most 14"),
        ({"pins": "a#xyz"}, "pin 'a#xyz' is not name[#hash][:weight][@phrase]"),
        ({"pins": [{"weight": 1}]}, "has no name"),
        ({"pins": [{"name": "a", "weight": "heavy"}]}, "weight 'heavy' is not a number"),
        ({"exclude": [1, 2]}, "expected comma-separated names or a list of names"),
    ],
)
def test_bad_values_get_one_clear_line(values, message):
    with pytest.raises(ArgsError) as error:
        parse_args(values)
    text = str(error.value)
    assert message in text and "\n" not in text and text.startswith("PixTention args: ")


def test_pin_text_round_trip():
    pins = parse_pins(" a ,b#0123456789:1.25, c:-0.5@a red car ")
    assert pins == (Pin("a"), Pin("b", "0123456789", 1.25), Pin("c", None, -0.5, "a red car"))
    assert parse_pins(", ".join(pin.to_text() for pin in pins)) == pins


class _Pick:
    def __init__(self, name, short_hash, weight, phrase):
        self.name, self.short_hash, self.weight, self.phrase = name, short_hash, weight, phrase


def test_infotext_encodes_picks_and_settings_and_restores_pins():
    args = parse_args([True, "both", 3, 4, 0.5, 1, "all", 0.2, "hard", 2, 0.6])
    picks = [_Pick("inkwash", "AB12CD34EF", 0.7, "ink wash"), _Pick("cat", None, 1.0, "a cat")]
    value = infotext.encode(args, picks, ["a note"])
    assert " " not in value.replace("ink wash", "").replace("a cat", "").replace("a note", "")
    data = json.loads(value)
    assert data["v"] == 1 and data["mode"] == "both" and data["notes"] == ["a note"]
    assert data["picks"][0] == {
        "name": "inkwash",
        "hash": "AB12CD34EF",
        "w": 0.7,
        "phrase": "ink wash",
    }
    restored = infotext.decode(value)
    assert restored.enabled and restored.mode == "both" and restored.k == 2  # exactly the picks
    assert (restored.clusters, restored.mask_layers, restored.competition) == (4, "all", "hard")
    assert restored.pins == (
        Pin("inkwash", "AB12CD34EF", 0.7, "ink wash"),
        Pin("cat", None, 1.0, "a cat"),
    )


def test_infotext_paste_readers():
    args = parse_args([True, "regionalise", 3])
    value = infotext.encode(args, [_Pick("cat", None, 0.9, "a cat")])
    params = {"PixTention": value, "Steps": "20"}
    assert infotext.field_reader("enabled")(params) is True
    assert infotext.field_reader("mode")(params) == "regionalise"
    assert infotext.field_reader("pins")(params) == "cat:0.9@a cat"
    assert infotext.field_reader("k")({"Steps": "20"}) is None  # no entry: leave the UI alone
    assert infotext.field_reader("k")({"PixTention": "{broken"}) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [("{", "not JSON"), ("[]", "not a JSON object"), ('{"v": 9}', "version 9"),
     ('{"v": 1, "picks": 3}', "'picks' is not a list"), ('{"v": 1, "k": 99}', "k=99")],
)  # fmt: skip
def test_infotext_bad_values(value, message):
    with pytest.raises(ArgsError, match=message):
        infotext.decode(value)


def test_views_escape_and_carry_actions():
    pick = _Pick('<b>"x"</b>', "FF00", 0.5, "a <i>cat</i>")
    pick.path, pick.score, pick.triggers, pick.cluster_label = "/l/x.safetensors", 0.5, ("t1",), "c"
    html = suggestions_html("txt2img", "a <i>cat</i>", [pick])
    assert "<b>" not in html and "<i>" not in html and "&lt;b&gt;" in html
    assert html.count('data-pixtention-action="') == 3
    assert 'data-pixtention-tab="txt2img"' in html and 'data-pixtention-hash="FF00"' in html
    empty = suggestions_html("img2img", "something", [], note="The library is not indexed yet.")
    assert "not indexed" in empty
    busy = IndexStatus("indexing", "/l", "/s", stage="embed", done=5, total=20, eta=3.0)
    html = status_html(busy)
    assert 'data-pixtention-busy="1"' in html and "width:25%" in html and "5/20" in html
    ready = status_html(IndexStatus("ready", "/l", "/s", adapters=7))
    assert 'data-pixtention-busy="0"' in ready and "7 adapters indexed" in ready


def test_pins_resolve_names_as_names_and_hashes_only_for_renamed_files():
    from pixtention.webui.service import pin_keys

    class Library:
        records = {
            "ab12cd34ef": types.SimpleNamespace(path="/l/renamed.safetensors"),
            "cat": types.SimpleNamespace(path="/l/cat.safetensors"),
            "cat_copy": types.SimpleNamespace(path="/l/cat_copy.safetensors"),  # same bytes
        }

        def find(self, key):
            return self.records.get(key.lower())

    pins = (
        Pin("old_name", "AB12CD34EF"),  # renamed since: the hash finds it
        Pin("cat_copy", "AB12CD34EF"),  # the name is there: the name wins over the hash
        Pin("cat"),
        Pin("gone"),
    )
    assert pin_keys(Library(), pins) == (
        "/l/renamed.safetensors",
        "/l/cat_copy.safetensors",
        "/l/cat.safetensors",
        "gone",
    )
