"""Binding rules about what an adapter's title says (issue 14's third hold-out misses): a word
inside another thing's name is not the thing, a title alone may be a pun, a style's subject
noun held in hand is not a request for that look, and a background is a place."""

from __future__ import annotations

from pixtention.curator.kinds import kind_of
from pixtention.selector.binding import bind
from tests.test_selector_kinds import _record


def test_a_word_inside_a_franchise_name_is_not_the_thing() -> None:
    aura = _record(
        "Dragon Ball KI Charge (Aura) | Concept LoRA",
        ("concept", "dragon ball", "fighting", "aura"),
        description="Works with almost every character: a ki aura.",
    )
    prompt, phrases = "a knight fighting a dragon", ["a knight", "fighting a dragon"]
    assert bind(aura, prompt, phrases, 1) is None
    # the franchise named whole in the phrase is about it again
    prompt, phrases = "goku, dragon ball aura", ["goku", "dragon ball aura"]
    assert bind(aura, prompt, phrases, 1) == 1


def test_a_compound_whose_modifier_is_a_thing_of_its_own_is_another_thing() -> None:
    bridge = _record("Spaceship bridge", ("spaceship", "background", "spaceship bridge"),
                     ("Spaceship bridge",))  # fmt: skip
    assert kind_of(bridge) == "background"
    prompt, phrases = "a couple on a bridge in paris", ["a couple", "a bridge", "paris"]
    assert bind(bridge, prompt, phrases, 1) is None
    prompt, phrases = "the captain on a spaceship bridge", ["the captain", "a spaceship bridge"]
    assert bind(bridge, prompt, phrases, 1) == 1
    # a modifier that is no tag of its own keeps its noun: a red dress is a dress
    dress = _record("Red Dress", ("clothing", "red dress"), description="a flowing dress")
    assert bind(dress, "a woman in a long dress", ["a woman", "a long dress"], 1) == 1


def test_a_booru_qualifier_or_a_pasted_list_is_no_longer_name() -> None:
    sailor = _record("black serafuku", ("girl", "serafuku_(sailor_uniform)", "black skirt"),
                     ("black serafuku",), description="黑色水手服")  # fmt: skip
    prompt, phrases = "1girl, school uniform, serafuku", ["1girl", "school uniform", "serafuku"]
    assert bind(sailor, prompt, phrases, 2) == 2
    armor = _record("CM Beautiful armor", ("clothing", "cm-beautiful_armor,armor, shield"))
    prompt, phrases = "1boy, armor, hammer", ["1boy", "armor", "hammer"]
    assert bind(armor, prompt, phrases, 1) == 1


def test_a_title_alone_does_not_say_what_a_marginal_pick_depicts() -> None:
    tiles = _record("Salted Fish map materials", ("game art", "rpgmaker"),
                    description="Stable production of images similar to game material, tiles for maps.")  # fmt: skip
    prompt, phrases = "an underwater city with glowing fish", ["an underwater city", "glowing fish"]
    assert bind(tiles, prompt, phrases, 1) is None
    # its tags, triggers or description saying it too make it one
    prompt, phrases = "a pond with glowing fish", ["a pond", "glowing fish"]
    koi = _record(
        "Koi Fish",
        ("animal",),
        description="Koi swimming in a garden pond, seen from above, with lilies.",
    )
    assert bind(koi, prompt, phrases, 1) is None
    koi = _record(
        "Koi Fish",
        ("animal",),
        description="Colourful fish swimming in a garden pond, seen from above.",
    )
    assert bind(koi, prompt, phrases, 1) == 1
    koi = _record("Koi Fish", ("animal", "fish"))
    assert bind(koi, prompt, phrases, 1) == 1


def test_a_word_for_people_as_such_is_not_what_a_phrase_is_about() -> None:
    # "male" of "a muscular male" says who, not what: a marginal "Male Foot Pose" is no match
    feet = _record("Male Foot Pose", ("concept", "feet"))
    prompt, phrases = "a muscular male, indoors", ["a muscular male", "indoors"]
    assert bind(feet, prompt, phrases, 0) is None
    prompt, phrases = "a male foot pose, indoors", ["a male foot pose", "indoors"]
    assert bind(feet, prompt, phrases, 0) == 0


def test_a_style_of_a_thing_is_not_asked_for_by_holding_that_thing() -> None:
    paper = _record("Old Newspaper Style", ("vintage", "style", "newspaper"), ("npzw",))
    assert kind_of(paper) == "style"
    prompt = "an old man reading a newspaper on a bench"
    phrases = ["an old man", "reading a newspaper", "a bench"]
    assert bind(paper, prompt, phrases, 1, plain=True) is None
    # as a modifier, alone, or beside a style word it names the look
    for prompt, phrases in (
        ("a newspaper collage of a city", ["a newspaper collage", "a city"]),
        ("a city, newspaper", ["a city", "newspaper"]),
        ("a city in newspaper style", ["a city", "newspaper style"]),
    ):
        assert bind(paper, prompt, phrases, 1, plain=True) is not None, prompt
    # a "style" whose title is the thing itself is about that thing
    umbrella = _record("The Umbrella LoRA: Rain Umbrella, Parasol", ("style", "umbrella"))
    assert kind_of(umbrella) == "style"
    prompt, phrases = "a geisha holding a paper umbrella", ["a geisha", "a paper umbrella"]
    assert bind(umbrella, prompt, phrases, 1, plain=True) is not None


def test_a_background_fills_a_place_not_a_thing_in_hand() -> None:
    wall = _record("Newspaper Background", ("background",), ("newspaper background",),
                   description="A pose photo in front of a newspaper wall.")  # fmt: skip
    assert kind_of(wall) == "background"
    prompt = "an old man reading a newspaper on a bench"
    phrases = ["an old man", "reading a newspaper", "a bench"]
    assert bind(wall, prompt, phrases, 1, plain=True) is None
    prompt = "a girl standing by a newspaper wall"
    phrases = ["a girl", "standing by a newspaper wall"]
    assert bind(wall, prompt, phrases, 1, plain=True) == 1
    # a room named by an -ing word is still a place
    messy = _record("MessyRoom", ("background",), ("messy room",))
    prompt, phrases = "a girl in a messy living room", ["a girl", "a messy living room"]
    assert bind(messy, prompt, phrases, 1, plain=True) == 1


def test_a_title_is_trusted_when_there_is_nothing_else() -> None:
    shorts = _record("EX micro shorts", ("clothes", "clothing"), ("denim",))
    prompt, phrases = "1girl, micro shorts", ["1girl", "micro shorts"]
    assert bind(shorts, prompt, phrases, 1) == 1


def test_a_persons_compound_still_serves_that_person() -> None:
    armor = _record("knight armor", ("knight armor", "sword"),
                    description="Knight in Shining Armor. A knight in shining plate armor.")  # fmt: skip
    prompt, phrases = "a knight walking in a city", ["a knight walking", "a city"]
    assert bind(armor, prompt, phrases, 0) == 0


def test_a_compound_tag_the_title_does_not_hold_names_nothing() -> None:
    city = _record("Cyberpunk Neon City", ("cyberpunk", "neon lights", "city street"),
                   description="Rain-soaked cyberpunk city streets at night, lit by neon signs.")  # fmt: skip
    prompt, phrases = "a dragon over a neon city", ["a dragon", "a neon city"]
    assert bind(city, prompt, phrases, 1) == 1
