"""Adapter kinds and binding by kind (issue 14): what each adapter is about, a character only
where the prompt names it, a style over the whole image, a detail hub only when asked for,
no adult adapter on a plain prompt, and the next ranked adapters kept as alternates."""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path

import pytest

from pixtention.curator import index_folder, open_library
from pixtention.curator.embedder import make_embedder
from pixtention.curator.kinds import classify, kind_of
from pixtention.curator.records import AdapterRecord
from pixtention.curator.serial import record_from_json, record_to_json
from pixtention.selector import apply_picks, select
from pixtention.selector.binding import (
    PHRASE_FLOOR,
    asks_for_detail,
    bind,
    character_on_generic,
    too_common,
)
from pixtention.webui.args import WebuiArgs
from tests.rig.factory import write_lora

# ---------------------------------------------------------------- the classifier


@pytest.mark.parametrize(
    ("title", "tags", "name", "expected"),
    [
        # Civitai: the category is among the model's tags
        ("Raiden Shogun | Genshin Impact", ("anime", "character", "genshin impact"), "", "character"),
        ("Raiden Shogun (all outfits)", ("anime", "character", "clothing"), "", "character"),
        ("Taylor Swift", ("celebrity", "woman", "photorealistic"), "", "character"),
        ("Makoto Shinkai Style", ("anime", "character", "style"), "", "style"),
        ("Studio Ghibli", ("anime", "art style", "style"), "", "style"),
        ("Sexy Astronaut Suit", ("clothing", "sexy", "woman"), "", "clothing"),
        # a character in an outfit is still a character
        ("Zero Suit Samus", ("character", "nintendo", "bodysuit"), "", "character"),
        ("Mudrock (Arknights) Silent Night Swimsuit", ("anime", "character", "swimsuit"), "",
         "character"),
        ("Detail Tweaker LoRA", ("anime", "concept", "detailed", "lora"), "", "hub"),
        ("Add More Details - Detail Enhancer", ("detail", "tool", "enhancer"), "", "hub"),
        ("epi_noiseoffset", ("dark", "noise offset", "tool"), "", "hub"),
        ("Sitting on a chair poses", ("poses", "woman"), "", "concept"),
        ("Isometric rooms", ("background", "interior"), "", "background"),
        ("Katana swords", ("weapon", "weapons"), "", "object"),
        # kohya only: training tags by frequency, the output name as a tag of a solo set
        ("hatsune miku", ("hatsune miku", "1girl", "solo", "twintails", "aqua hair"), "miku_v2",
         "character"),
        ("inkpunk", ("1girl", "solo", "city", "ink splatter"), "inkpunk", "concept"),
        # nothing to go by
        ("lora_0042", (), "lora_0042", "concept"),
    ],
)  # fmt: skip
def test_classify_realistic_metadata(title, tags, name, expected) -> None:
    assert classify(title, tags, name=name) == expected


def test_title_outweighs_a_stray_tag_and_category_breaks_ties() -> None:
    # "character" in the tags of a style: the title says what it is
    assert classify("Arcane Style", ("character", "anime")) == "style"
    # one tag each: the stored category decides
    assert classify("Thing", ("style", "clothing"), category="clothing") == "clothing"


# ---------------------------------------------------------------- binding rules on records


def _record(title: str, tags=(), triggers=(), name: str = "x", description: str = ""):
    record = AdapterRecord(
        id=0, name=name, path=f"/l/{name}.safetensors", fingerprint=name, short_hash=None,
        title=title, category=None, base_family="sd1", base_variant=None, kind="lora",
        rank=4, triggers=tuple(triggers), preferred_weight=None, weight_source=None,
        tags=tuple(tags), document=title, fields={"description": description},
    )  # fmt: skip
    return record


ARTORIA = _record(
    "Artoria Pendragon (Fate)", ("character", "anime", "fate", "knight"), ("artoria pendragon",)
)
KNIGHT_ARCHETYPE = _record("Female Knight", ("character", "knight", "sword"), ("female knight",))


def test_a_named_character_needs_its_name() -> None:
    assert bind(ARTORIA, "a knight on a hill", ["a knight", "a hill"], 0) is None
    prompt = "a hill, artoria pendragon standing"
    phrases = ["a hill", "artoria pendragon standing"]
    assert bind(ARTORIA, prompt, phrases, 0, plain=True) == 1
    # named, but its description matches only loosely: another Artoria ("Lisa" ≠ Mona Lisa)
    assert bind(ARTORIA, prompt, phrases, 0) is None
    assert character_on_generic(ARTORIA, "a knight")
    assert not character_on_generic(ARTORIA, "artoria pendragon")


NAGISA = _record(
    "Nagisa | My Little Brother's Seriously Huge, Wanna See?",
    ("character", "anime"),
    name="Nagisa_WannaSee",
)


def test_a_character_is_not_named_by_a_word_too_common_in_the_library() -> None:
    # "huge" is held by 150 of 8,695 adapters of the retrieval bench's library, "filesize" by 3
    common = too_common({"huge": 150, "filesize": 3}, 8695)
    assert common == {"huge"}
    prompt, phrases = "1girl, huge filesize", ["1girl", "huge filesize"]
    assert bind(NAGISA, prompt, phrases, 1, plain=True) == 1  # what it did: "huge" named her
    assert bind(NAGISA, prompt, phrases, 1, plain=True, common=common) is None
    named, phrases = "nagisa, huge filesize", ["nagisa", "huge filesize"]
    assert bind(NAGISA, named, phrases, 1, plain=True, common=common) == 0  # her own name
    # the benchmark counts such a pick as a character on a generic phrase
    assert character_on_generic(NAGISA, "huge filesize", common)
    assert not character_on_generic(NAGISA, "huge filesize")
    assert not character_on_generic(NAGISA, "nagisa", common)
    # a name of common words its file name holds too is a name ("zero two" of ZeroTwo), one
    # only its title holds is not ("virtual youtuber" of gawr_gura)
    zero_two = _record("Zero Two (Darling in the Franxx)", ("character",), name="ZeroTwo")
    both = frozenset(("zero", "two", "virtual", "youtuber"))
    assert bind(zero_two, "zero two, pink hair", ["zero two", "pink hair"], 0, True, 1.0, both) == 0
    gura = _record("Virtual youtuber-Gawr gura", ("character",), name="gawr_gura")
    vtuber, phrases = "virtual youtuber, smile", ["virtual youtuber", "smile"]
    assert bind(gura, vtuber, phrases, 0, plain=True) == 0
    assert bind(gura, vtuber, phrases, 0, plain=True, common=both) is None
    # a small library: a word must be held by more than COMMON_MIN adapters to be common
    assert too_common({"miku": 10, "hatsune": 4}, 300) == frozenset()
    assert too_common({"gundam": 42}, 8695) == frozenset()


def test_select_leaves_a_character_named_only_by_a_common_word(tmp_path) -> None:
    """The library's own document frequencies reach the rule: "huge", held by all 28
    adapters, names no one ("a girl with huge eyes" picked her before), "nagisa" does."""
    folder = tmp_path / "Lora"
    folder.mkdir()
    things = ("castle", "tree", "wave", "moon", "ship", "tower", "whale", "cake", "sword")
    looks = ("at dawn", "in fog", "in snow")
    adapters = [
        (f"huge_{t}_{i}", f"Huge {t.title()} {i}", ("concept", t), f"A huge {t} {look}.")
        for i, look in enumerate(looks)
        for t in things
    ]
    adapters.append(
        ("Nagisa_WannaSee", NAGISA.title, ("character", "anime"),
         "Nagisa from My Little Brother's Seriously Huge, Wanna See? A girl with huge eyes.")
    )  # fmt: skip
    for name, title, tags, description in adapters:
        write_lora(folder / f"{name}.safetensors")
        version = {
            "id": zlib.crc32(name.encode()), "name": "v1.0", "baseModel": "SD 1.5",
            "trainedWords": [], "description": None,
            "model": {"name": title, "type": "LORA", "tags": list(tags), "description": description},
        }  # fmt: skip
        (folder / f"{name}.civitai.info").write_text(json.dumps(version), encoding="utf-8")
    index_folder(folder, tmp_path / "store", captions=False, embedder=make_embedder())
    library = open_library(tmp_path / "store", embedder=make_embedder())
    assert "Nagisa_WannaSee" not in {p.name for p in _select("a girl with huge eyes", library)}
    named = {p.name: p.phrase for p in _select("nagisa, a girl with huge eyes", library)}
    assert named.get("Nagisa_WannaSee") == "nagisa"


def test_an_archetype_character_binds_to_its_noun() -> None:
    assert bind(KNIGHT_ARCHETYPE, "a knight on a hill", ["a knight", "a hill"], 0) == 0
    assert bind(KNIGHT_ARCHETYPE, "a woman on a hill", ["a woman", "a hill"], 0) is None
    cat = _record("Mochi the Cat", ("character", "cat"), ("mochi cat",))  # a creature
    assert bind(cat, "a fluffy cat on a cushion", ["a fluffy cat", "a cushion"], 0) == 0


def test_a_named_character_with_a_role_in_its_title_is_not_that_role() -> None:
    for title in ("Fairy Knight Tristan (FGO)", "Nearl the Radiant Knight"):
        named = _record(title, ("anime", "character"))
        assert bind(named, "a knight on a hill", ["a knight", "a hill"], 0) is None, title
        assert character_on_generic(named, "a knight")


def test_hubs_only_when_asked_for() -> None:
    hub = _record("Detail Tweaker", ("tool", "detail"))
    assert kind_of(hub) == "hub"
    boiler = ["masterpiece", "best quality", "highly detailed", "a castle"]
    assert not asks_for_detail(boiler)
    assert bind(hub, ", ".join(boiler), boiler, 2) is None
    asked = ["add more details", "a castle"]
    assert asks_for_detail(asked) and bind(hub, ", ".join(asked), asked, 0) == 0


def test_adult_adapters_stay_off_plain_prompts() -> None:
    suit = _record("Sexy Astronaut Suit", ("clothing", "sexy"))
    assert bind(suit, "an astronaut in space", ["an astronaut", "space"], 0) is None
    assert bind(suit, "sexy astronaut, space", ["sexy astronaut", "space"], 0) == 0
    # a tag in the singular is as adult as in the plural ("Open Coat", tagged "breast")
    coat = _record("Open Coat", ("poses", "clothing lift", "breast"), ("opencoat",))
    prompt, phrases = "a woman in a trench coat, film noir", ["a woman", "a trench coat"]
    assert bind(coat, prompt, phrases, 1, plain=True) is None


def test_a_common_word_of_an_adult_outfit_or_style_does_not_ask_for_it() -> None:
    dress = _record("Sexy Wedding Short Dress", ("clothing", "sexy"), ("SWSD",))
    prompt, phrases = "a woman wearing a wedding dress in a church", ["a wedding dress"]
    assert bind(dress, prompt, phrases, 0, plain=True) is None  # "wedding" is anyone's word
    assert bind(dress, "a bride, swsd, in a church", ["swsd"], 0, plain=True) == 0  # its token
    sword = _record("Booba Sword", ("concept", "boobs", "sword"))
    assert bind(sword, "a blacksmith forging a sword", ["forging a sword"], 0, True) is None
    victorian = _record("Victorian Style", ("style", "sexy"))
    assert bind(victorian, "a victorian mansion", ["a victorian mansion"], 0, plain=True) is None
    # a character tagged "sexy" is still the one the prompt names
    heroine = _record("Makima (Chainsaw Man)", ("character", "sexy"), ("makima",))
    assert bind(heroine, "makima in an office", ["makima", "an office"], 0, plain=True) == 0


def test_a_style_needs_a_phrase_asking_for_a_look() -> None:
    forest = _record("Magic Fantasy Forest", ("style", "fantasy"))
    assert bind(forest, "an elf in a forest", ["an elf", "a forest"], 1) is None
    # however plainly its description names the phrase: "the sea" asks for no underwater style
    assert bind(forest, "an elf in a forest", ["an elf", "a forest"], 1, plain=True) is None
    assert bind(forest, "an elf, fantasy art", ["an elf", "fantasy art"], 1) == 1


def test_a_pick_must_resemble_its_phrase_unless_its_title_names_it() -> None:
    prompt, phrases = "a nurse in a hospital corridor", ["a nurse", "a hospital corridor"]
    ward = _record("Hospital Ward", ("background", "hospital"))  # its title lacks "corridor"
    assert bind(ward, prompt, phrases, 1, plain=True, phrase_match=0.38) is None
    assert bind(ward, prompt, phrases, 1, plain=True, phrase_match=0.5) == 1
    gown = _record("Hospital Gown", ("clothing", "hospital"))  # worn: never bound to a place
    assert bind(gown, prompt, phrases, 1, plain=True, phrase_match=0.5) is None
    corridor = _record("Hospital Corridor", ("background", "hospital"))  # names "corridor"
    assert bind(corridor, prompt, phrases, 1, plain=True, phrase_match=0.5) == 1


def test_a_pick_must_resemble_its_phrase_even_when_its_title_names_it() -> None:
    # "Very Nice Forest" names the forest but is a bright one: its description resembles "a
    # haunted forest" less than the floor the hand-judged set calibrated
    forest = _record("Very Nice Forest", ("background", "forest"))
    prompt, phrases = "a haunted forest with twisted trees", ["a haunted forest", "twisted trees"]
    below, above = PHRASE_FLOOR - 0.01, PHRASE_FLOOR + 0.01
    assert bind(forest, prompt, phrases, 0, phrase_match=below) is None
    assert bind(forest, prompt, phrases, 0, phrase_match=above) == 0
    # a score that plainly names the phrase keeps it: the floor is for marginal picks
    assert bind(forest, prompt, phrases, 0, plain=True, phrase_match=below) == 0
    # asked for by a distinctive trigger, it is what the prompt wants whatever its score
    token = _record("Very Nice Forest", ("background", "forest"), ("nvfrst",))
    asked = "a haunted forest, nvfrst"
    assert bind(token, asked, ["a haunted forest", "nvfrst"], 0, phrase_match=below) == 0
    # a character is judged by its name: its phrase score is no guide
    named = "a hill, artoria pendragon standing"
    assert bind(ARTORIA, named, ["a hill", "artoria pendragon standing"], 1, True, below) == 1


def test_a_pose_is_not_added_to_a_scene_without_people() -> None:
    window = _record("By a large window", ("poses", "window"))
    scene = "a cozy coffee shop interior, rainy window"
    assert bind(window, scene, ["a cozy coffee shop interior", "rainy window"], 1, True) is None
    posed = "a girl reading by a rainy window"
    assert bind(window, posed, ["a girl reading", "a rainy window"], 1, plain=True) == 1
    rider = _record("Motorcycle Rider", ("concept",))  # a rider is someone
    assert bind(rider, "a motorcycle on a highway", ["a motorcycle"], 0, plain=True) is None


def test_a_marginal_pick_must_be_named_by_its_title() -> None:
    gown = _record("Hospital Gown", ("clothing", "hospital"))
    assert bind(gown, "a hospital interior", ["a hospital interior"], 0) is None
    assert bind(gown, "a girl in a hospital gown", ["a girl", "a hospital gown"], 1) == 1
    scenery = _record("SunsetScenery", ("effect", "background"))
    assert bind(scenery, "a beach, sunset", ["a beach", "sunset"], 1) == 1


def test_an_adapter_of_people_is_not_bound_to_a_thing() -> None:
    village_girl = _record("Village girl", ("girl", "woman"))
    assert bind(village_girl, "a cottage in a village", ["a cottage", "a village"], 1) is None
    assert bind(village_girl, "a village girl", ["a village girl"], 0) == 0
    # a trigger any prompt may hold does not ask for the person on the hood
    car_girl = _record("Sports Cars with Girl on Hood", ("cars", "woman"), ("car",))
    assert bind(car_girl, "a sports car on a road", ["a sports car"], 0, plain=True) is None
    pose = _record("Sitting on person's back", ("concept",), ("crossed legs",))
    prompt = "a girl sitting on a chair with crossed legs"
    assert bind(pose, prompt, ["a girl", "sitting", "crossed legs"], 1, plain=True) is None
    # a made-up trigger does ask for it, whatever its title's people
    armor = _record("Knight in Shining Armor", ("clothing", "armor"), ("knightarmor",))
    prompt = "a majestic knight, knightarmor on a horse"
    assert bind(armor, prompt, ["a majestic knight", "knightarmor"], 1, plain=True) == 1


def test_an_old_record_without_a_kind_is_classified_when_read() -> None:
    data = json.loads(record_to_json(ARTORIA))
    del data["concept_kind"]
    old = record_from_json(json.dumps(data))
    assert old.concept_kind == "character" and kind_of(old) == "character"


# ---------------------------------------------------------------- select() on an indexed library

Adapter = tuple[str, str, tuple[str, ...], str, tuple[str, ...]]
LIBRARY: tuple[Adapter, ...] = (
    ("knight_armor", "Knight in Shining Armor", ("knight", "armor", "medieval"),
     "A knight in shining plate armor.", ()),
    ("plate_knight", "Plate Knight", ("knight", "armor", "plate armor"),
     "A knight wearing full plate armor with a sword.", ()),
    ("knight_sword", "Knight Sword", ("weapon", "sword", "knight"),
     "The longsword of a knight in shining armor.", ()),
    ("neon_city", "Neon City", ("city", "neon", "night", "cyberpunk"),
     "A neon-lit city street at night.", ()),
    ("watercolor", "Watercolor Style", ("style", "watercolor", "painting"),
     "Soft watercolor painting style.", ()),
    ("artoria", "Artoria Pendragon (Fate)", ("character", "anime", "fate", "knight"),
     "Artoria Pendragon, the knight king, in shining armor.", ("artoria pendragon",)),
    ("detail_tweaker", "Detail Tweaker", ("tool", "detail"),
     "Adds detail: highly detailed, intricate details, masterpiece, best quality.", ()),
    ("astro_suit", "Sexy Astronaut Suit", ("clothing", "sexy"),
     "A sexy astronaut suit: an astronaut in a tight space suit.", ()),
)  # fmt: skip


def _write(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, title, tags, description, trained in LIBRARY:
        write_lora(folder / f"{name}.safetensors")
        version = {
            "id": zlib.crc32(name.encode()), "name": "v1.0", "baseModel": "SD 1.5",
            "trainedWords": list(trained), "description": None,
            "model": {"name": title, "type": "LORA", "tags": list(tags), "description": description},
        }  # fmt: skip
        (folder / f"{name}.civitai.info").write_text(json.dumps(version), encoding="utf-8")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    _write(root / "Lora")
    index_folder(root / "Lora", root / "store", captions=False, embedder=make_embedder())
    return open_library(root / "store", embedder=make_embedder())


def _select(prompt: str, library, **kw):
    args = WebuiArgs()
    options = dict(k=args.k, clusters=args.clusters, threshold=args.threshold, base_model="sd1")
    return select(prompt, library, **(options | kw))


def test_kinds_are_stored_and_shown_on_picks(library) -> None:
    kinds = {r.name: r.concept_kind for r in library.records}
    assert kinds["artoria"] == "character" and kinds["watercolor"] == "style"
    assert kinds["detail_tweaker"] == "hub" and kinds["astro_suit"] == "clothing"
    picks = _select("a knight in shining armor, watercolor painting", library)
    data = {p.name: p.to_dict() for p in picks}
    assert data["watercolor"]["concept_kind"] == "style" and data["watercolor"]["scope"] == "prompt"
    assert data["knight_armor"]["scope"] == "phrase"


def test_a_character_is_not_bound_to_a_generic_knight(library) -> None:
    prompt = "a knight in shining armor standing on a hill"
    picks = _select(prompt, library, k=5)
    assert "artoria" not in {p.name for p in picks}
    assert "artoria" not in apply_picks(prompt, picks).lower()  # its triggers never enter


def test_a_character_named_in_the_prompt_is_bound_to_its_name(library) -> None:
    prompt = "artoria pendragon standing on a hill, watercolor painting"
    picks = {p.name: p for p in _select(prompt, library)}
    assert picks["artoria"].phrase == "artoria pendragon"


def test_quality_words_do_not_pick_a_detail_hub(library) -> None:
    prompt = "masterpiece, best quality, highly detailed, intricate details, a neon city at night"
    assert "detail_tweaker" not in {p.name for p in _select(prompt, library, k=5)}


def test_a_plain_astronaut_gets_no_adult_suit(library) -> None:
    prompt = "an astronaut in a space suit floating above the earth"
    assert "astro_suit" not in {p.name for p in _select(prompt, library, k=5)}


def test_the_next_knights_are_alternates_and_another_kind_fills_k(library) -> None:
    prompt = "a knight in shining armor"  # three knight adapters serve "a knight"
    one = _select(prompt, library, k=1)
    assert [p.name for p in one] == ["knight_armor"]
    assert [a.name for a in one[0].alternates] == ["plate_knight", "knight_sword"]
    assert one[0].to_dict()["alternates"][0]["name"] == "plate_knight"
    # No other phrase wants anything: K is filled by another kind of help for the phrase (an
    # object beside an outfit); a second outfit stays an alternate.
    three = _select(prompt, library, k=3)
    assert [p.name for p in three] == ["knight_armor", "knight_sword"]
    assert three[1].phrase == "a knight" and three[1].concept_kind == "object"
    assert [a.name for a in three[0].alternates] == ["plate_knight"]


def test_an_old_store_opens_and_its_picks_have_kinds(tmp_path: Path) -> None:
    _write(tmp_path / "Lora")
    minilm = make_embedder()
    index_folder(tmp_path / "Lora", tmp_path / "store", captions=False, embedder=minilm)
    catalog = next((tmp_path / "store").glob("*.sqlite*"))
    with sqlite3.connect(catalog) as db:  # as an index written before kinds existed
        for table, key in (("adapters", "path"), ("snapshot", "row")):
            for k, text in db.execute(f"SELECT {key}, record FROM {table}").fetchall():
                data = json.loads(text)
                data.pop("concept_kind")
                db.execute(f"UPDATE {table} SET record=? WHERE {key}=?", (json.dumps(data), k))
    library = open_library(tmp_path / "store", embedder=minilm)
    assert "" not in {r.concept_kind for r in library.records}  # classified once, on read
    picks = {p.name: p for p in _select("watercolor painting of a neon city", library)}
    assert picks["watercolor"].concept_kind == "style" and picks["watercolor"].scope == "prompt"
