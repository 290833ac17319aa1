"""Binding rules about who is in the picture (issue 14's hand-judged misses): an outfit needs
someone to wear it, a thing trained on one gender needs someone in the prompt, an adapter of
one gender or era stays off
a prompt of the other, memes only by name, and a named character's title words that only name
it ("Storm Trooper") never make it a generic noun."""

from __future__ import annotations

from pixtention.curator.kinds import kind_of
from pixtention.selector.adapter_facts import facts_of
from pixtention.selector.binding import bind, character_on_generic
from tests.test_selector_kinds import _record


def _bind(record, prompt: str, phrases: list[str], row: int = 0, plain: bool = False):
    return bind(record, prompt, phrases, row, plain=plain)


def test_an_outfit_needs_a_wearer_not_a_thing_named_after_one() -> None:
    pirate = _record("Pirate Outfit", ("clothing", "pirate", "girl"))
    assert kind_of(pirate) == "clothing"
    assert (
        _bind(pirate, "a pirate ship in a storm", ["a pirate ship", "a storm"], plain=True) is None
    )
    prompt = "a pirate girl on a ship"
    assert _bind(pirate, prompt, ["a pirate girl", "a ship"], plain=True) == 0
    assert (
        _bind(pirate, "a cat wearing a pirate outfit", ["a cat", "a pirate outfit"], 1, True) == 1
    )


def test_an_outfit_binds_to_its_wearer_or_a_garment_never_a_place() -> None:
    gym = _record("Gym uniform (RED)", ("clothing", "uniform"))
    prompt, phrases = "a man lifting weights in a gym", ["a man", "lifting weights", "a gym"]
    assert _bind(gym, prompt, phrases, 2, plain=True) is None
    assert _bind(gym, "a girl in a gym uniform", ["a girl", "a gym uniform"], 1, True) == 1


def test_one_gender_stays_off_a_prompt_whose_people_are_the_other() -> None:
    muscle = _record("Muscular Female Variety", ("concept", "women", "muscle"))
    assert _bind(muscle, "a muscular man in a gym", ["a muscular man", "a gym"], plain=True) is None
    assert (
        _bind(muscle, "a muscular woman in a gym", ["a muscular woman", "a gym"], plain=True) == 0
    )
    both = "a muscular man and a muscular woman"
    assert _bind(muscle, both, ["a muscular man", "a muscular woman"], 1, plain=True) == 1
    # a place is not of a gender: its tags say who stood in its sample images
    roof = _record("School rooftop", ("background", "school", "schoolgirl", "rooftop"))
    assert kind_of(roof) == "background"
    prompt = "an anime boy in a school uniform on a rooftop"
    phrases = ["an anime boy", "a school uniform", "a rooftop"]
    assert _bind(roof, prompt, phrases, 2, plain=True) == 2


def test_a_thing_trained_on_women_needs_someone_in_the_prompt() -> None:
    slime = _record("Anime Slime", ("concept", "monster girls", "slime", "slime girl"))
    assert kind_of(slime) == "concept"
    prompt, phrases = "a cute slime monster in a dungeon", ["a cute slime monster", "a dungeon"]
    assert _bind(slime, prompt, phrases, 0, plain=True) is None
    # someone said, or implied by what only a person has or wears (booru prompts drop "1girl")
    for prompt in ("a slime girl in a dungeon", "smile, sleeveless, slime, dungeon"):
        assert _bind(slime, prompt, ["slime", "a dungeon"], 0, plain=True) == 0, prompt
    # trigger words that are clothes say it draws people in them ("1980s aerobics": leotards)
    aerobics = _record("Delorean 80s aerobics", ("concept", "80s", "retro"), ("highleg leotard",))
    prompt, phrases = "a red sports car in front of a diner, 80s", ["a red sports car", "80s"]
    assert _bind(aerobics, prompt, phrases, 1, plain=True) is None
    prompt, phrases = "a woman doing aerobics, 80s", ["a woman doing aerobics", "80s"]
    assert _bind(aerobics, prompt, phrases, 1, plain=True) == 1
    # a title that starts with what someone does draws someone doing it, whatever its kind
    couch = _record("Sleeping on couch", ("anime", "concept", "sleeping"))
    prompt, phrases = "a cat sleeping on a pile of books", ["a cat", "sleeping", "books"]
    assert _bind(couch, prompt, phrases, 1, plain=True) is None
    prompt = "a girl sleeping on a couch"
    assert _bind(couch, prompt, ["a girl", "sleeping", "a couch"], 1, plain=True) == 1
    pose = _record("Sleeping", ("female", "style"), ("sleeping",))
    assert kind_of(pose) == "style"
    assert _bind(pose, "a red fox sleeping, photo", ["a red fox", "sleeping"], 1, True) is None
    # so does a title naming a part of someone ("Macro Eye": human eyes, not a hummingbird)
    eye = _record("Macro Eye", ("photorealistic", "style"), ("macro-eye",))
    prompt, phrases = "a hummingbird on a flower, macro photography", ["a hummingbird", "macro"]
    assert _bind(eye, prompt, phrases, 1, plain=True) is None
    prompt, phrases = "a woman's blue eye, macro photography", ["a woman's blue eye", "macro"]
    assert _bind(eye, prompt, phrases, 1, plain=True) == 1
    # a fused title is not read as an action ("...Lighting" is a noun)
    assert not facts_of(_record("BetterDetailAndLighting", ("style", "detail"))).bodily
    # a thing of no gender stays free to fill a scene
    jelly = _record("Slime Monster", ("concept", "slime", "monster"))
    assert _bind(jelly, "a cute slime monster in a dungeon", phrases, 0, plain=True) == 0


def test_an_era_does_not_serve_the_other_era() -> None:
    roman = _record("Roman Armor", ("clothing", "medieval", "armor"))
    prompt = "a cyborg soldier, sci-fi armor"
    assert _bind(roman, prompt, ["a cyborg soldier", "sci-fi armor"], 1, plain=True) is None
    prompt = "a legionary soldier, ancient armor"
    assert _bind(roman, prompt, ["a legionary soldier", "ancient armor"], 1, plain=True) == 1


def test_a_meme_is_picked_only_by_name() -> None:
    meme = _record("Bubble Tea Challenge", ("concept", "meme"), ("bubble tea challenge",))
    prompt = "a maid serving tea"
    assert _bind(meme, prompt, ["a maid", "serving tea"], 1, plain=True) is None
    prompt = "a maid, bubble tea challenge"
    assert _bind(meme, prompt, ["a maid", "bubble tea challenge"], 1, plain=True) == 1


def test_a_named_characters_name_word_is_not_a_generic_noun() -> None:
    trooper = _record("Storm Trooper - Star Wars", ("character", "star wars", "storm trooper"))
    prompt, phrases = "a pirate ship in a storm", ["a pirate ship", "a storm"]
    assert _bind(trooper, prompt, phrases, 1) is None
    assert character_on_generic(trooper, "a storm")
    # a creature its tags repeat still binds ("Mochi the Cat" for "a cat")
    cat = _record("Mochi the Cat", ("character", "cat"), ("mochi cat",))
    assert _bind(cat, "a fluffy cat on a cushion", ["a fluffy cat", "a cushion"]) == 0
    # a thing its tags name whole is what it depicts ("LightningVFX" for "lightning")
    bolt = _record("LightningVFX - Consistent Lightning", ("character", "effect", "lightning"))
    assert _bind(bolt, "a shogun, lightning", ["a shogun", "lightning"], 1) == 1


def test_a_word_holding_a_common_one_inside_is_not_a_fused_trigger() -> None:
    # "motorcycle" holds "orc": it must not count as a distinctive trigger that asks for it
    rider = _record("[Concept]Motorcycle Rider", (), ("motorcycle",))
    prompt = "a futuristic motorcycle on a highway"
    assert _bind(rider, prompt, ["a futuristic motorcycle", "a highway"], plain=True) is None


def test_a_franchise_named_as_someone_elses_home_names_no_one_else() -> None:
    inumaki = _record("Inumaki Toge (Jujutsu Kaisen)", ("character", "anime", "jujutsu kaisen"))
    prompt = "gojo satoru from jujutsu kaisen, blindfold"
    assert _bind(inumaki, prompt, ["gojo satoru", "jujutsu kaisen", "blindfold"], 1, True) is None
    prompt = "inumaki toge from jujutsu kaisen"
    assert _bind(inumaki, prompt, ["inumaki toge", "jujutsu kaisen"], 0, True) == 0
    # the franchise alone, or a person noun from it, still names its characters
    prompt = "a boy from jujutsu kaisen"
    assert _bind(inumaki, prompt, ["a boy", "jujutsu kaisen"], 1, True) == 1
    # a booru qualifier is a franchise too
    ibuki = _record("Fate/grand Order : Ibuki Douji", ("character", "fate grand order"))
    prompt = "solo, semiramis \\(fate\\), black dress"
    assert _bind(ibuki, prompt, ["solo", "semiramis (fate)", "black dress"], 1, True) is None
    # a pack whose tags list the one named is about them
    pack = _record("Demon Slayer Characters", ("character", "demon slayer", "tanjiro"))
    prompt = "tanjiro from demon slayer swinging his sword"
    phrases = ["tanjiro", "demon slayer", "swinging his sword"]
    assert _bind(pack, prompt, phrases, 1, True) == 1


def test_a_pack_file_named_for_another_listed_character_is_someone_else() -> None:
    # a multi-character page lists everyone in its tags; each file is one of them
    tags = ("character", "jujutsu kaisen", "satoru gojo", "toge inumaki")
    title = "Sorcerers | Jujutsu Kaisen Characters"
    inumaki = _record(title, tags, name="jjk_inumaki-10")
    prompt, phrases = "gojo satoru from jujutsu kaisen", ["gojo satoru", "jujutsu kaisen"]
    assert _bind(inumaki, prompt, phrases, 1, True) is None
    gojo = _record(title, tags, name="jjk_gojo-10")
    assert _bind(gojo, prompt, phrases, 1, True) == 1
    # a surname shared with the one named does not make Loid's file Yor's
    tags = ("character", "spy x family", "yor forger", "loid forger")
    loid = _record("Mr. and Mrs. Forger | SPY x FAMILY", tags, name="sxf_loid_forger-10")
    prompt, phrases = "yor forger from spy x family", ["yor forger", "spy x family"]
    assert _bind(loid, prompt, phrases, 1, True) is None
    assert (
        _bind(loid, "loid forger from spy x family", ["loid forger", "spy x family"], 0, True) == 0
    )


def test_a_characters_series_is_not_the_character() -> None:
    aderet = _record("Aderet from Saving 80000 Gold Coins.", ("anime", "character"), ("aderet",))
    prompt, phrases = "a dragon egg in a nest of gold coins", ["a dragon egg", "gold coins"]
    assert _bind(aderet, prompt, phrases, 1, True) is None
    prompt, phrases = "aderet counting gold coins", ["aderet counting", "gold coins"]
    assert _bind(aderet, prompt, phrases, 0, True) == 0
    link = _record("Link - The Legend of Zelda", ("character", "male"), name="link_offset")
    prompt, phrases = "princess zelda in a castle garden", ["princess zelda", "a castle garden"]
    assert _bind(link, prompt, phrases, 0, True) is None
    # an alias in brackets is a name; a word its tags name whole is what it depicts
    saber = _record("Artoria Pendragon (Saber & Saber Alter) / Fate", ("character", "saber"))
    prompt, phrases = "saber from fate stay night in armor", ["saber", "fate stay night"]
    assert _bind(saber, prompt, phrases, 0, True) == 0
    bolt = _record("LightningVFX - Consistent Lightning", ("character", "effect", "lightning"))
    assert _bind(bolt, "a shogun, lightning", ["a shogun", "lightning"], 1) == 1


def test_a_meme_titled_so_is_a_meme() -> None:
    latte = _record("Breast Milk Latte (Meme) | Goofy Ai", ("anime", "concept", "woman"))
    prompt, phrases = "a cup of matcha latte with latte art", ["a cup of matcha latte", "latte art"]
    assert _bind(latte, prompt, phrases, 1, plain=True) is None


def test_fantasy_and_modern_are_eras_too() -> None:
    mecha = _record("Mecha warrior", ("anime", "mecha", "action"))
    prompt = "a muscular orc warrior with an axe"
    assert _bind(mecha, prompt, ["a muscular orc warrior", "an axe"], plain=True) is None
    room = _record("XSarchitectural-7Modern interior", ("buildings", "interior design"))
    prompt = "a gothic cathedral interior"
    assert _bind(room, prompt, ["a gothic cathedral interior"], plain=True) is None
    assert _bind(room, "a modern interior", ["a modern interior"], plain=True) == 0
    fused = _record("XSarchitectural-5Moderninterior", ("buildings", "interior design"))
    assert _bind(fused, prompt, ["a gothic cathedral interior"], plain=True) is None


def test_a_series_part_may_come_first() -> None:
    chihiro = _record("Ghibli - Spirited Away - Chihiro Ogino", ("character", "ghibli"),
                      ("ogino chihiro",), name="chihiroOgino_v11")  # fmt: skip
    prompt, phrases = (
        "1girl, chihiro ogino, ghibli style",
        ["1girl", "chihiro ogino", "ghibli style"],
    )
    assert _bind(chihiro, prompt, phrases, 1, True) == 1
    erina = _record("Erina Nakiri - Food Wars!", ("character",), ("erina nakiri",))
    prompt, phrases = "a chef cooking food", ["a chef cooking", "food"]
    assert _bind(erina, prompt, phrases, 1, True) is None
