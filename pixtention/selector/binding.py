"""Whether an adapter may be auto-picked for a prompt, and where it binds, by its kind.

A hobbyist rejects a character LoRA bound to a generic noun ("a knight" → a named heroine):
its trigger words then enter the prompt and its face replaces the one they asked for. So
(issue 14), from a threshold above 0 (0 or below is a plain ranking, see ``select``):

- a **character** is picked only when the prompt names it — a distinctive word of its title,
  file name or token-like trigger (never a generic noun such as "knight", "witch", "girl",
  nor a word many of the library's adapters hold, :data:`COMMON_SHARE`: "huge" is no one) —
  and its description plainly matches (score ≥ ``select.PLAIN_SCORE``: "Lisa Imai" is not
  "mona lisa"); an archetype whose title names no one ("Female Knight", "Mochi the Cat" for a
  cat) binds to its title's noun instead. It binds to the phrase holding its name;
- a **style** (and a hub) serves the prompt as a whole (``scope="prompt"``), picked when its
  phrase asks for a look ("watercolor painting", "pixel art"), names it, or plainly matches;
- a quality/detail **hub** is picked only when the prompt asks for one in words that are not
  boilerplate: "add detail", "more details", "detail tweaker/enhancer", "detailer", "noise
  offset", or the hub's own name; "masterpiece, highly detailed" never does;
- an adapter tagged adult ("sexy", "nsfw" …) is picked only when the prompt is adult or names
  it ("an astronaut" never gets a "sexy astronaut suit");
- an adapter whose title is a person ("Village girl") is not bound to a phrase about a thing;
- an outfit needs someone in the prompt to wear it ("a pirate ship" has no pirate in it) and
  binds to its wearer or a garment, never a place ("a gym" for a gym uniform);
- a concept or object trained on people (its title or tags say "woman", "1girl", or its
  triggers are clothes) needs someone in the prompt, said or implied ("smile, sleeveless"):
  "Anime Slime" tagged "slime girl" would paint a girl into "a cute slime monster";
- so does any adapter whose title starts with what someone does or names a part of them
  ("Sleeping on couch" for "a cat sleeping", "Macro Eye" for a hummingbird);
- an adapter whose title and tags say one gender or era stays off a prompt of only the other
  ("Muscular Female" for "a muscular man", "Roman Armor" for "sci-fi armor"), a background
  whatever gender its sample images have; a meme is picked only by name;
- below a plain match, an adapter's title must name its phrase's head word ("Hospital Gown"
  is not "a hospital interior"), and its document must resemble that phrase alone
  (:data:`PHRASE_FLOOR`): "Very Nice Forest" is a forest, not "a haunted forest".

The word lists (:mod:`pixtention.selector.wordlists`) are a heuristic for English prompts; a name that is also a common word can
still collide ("Earth-chan" for "earth" is caught only by the person rule).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from pixtention.selector.adapter_facts import FREE_WORDS, Facts, era_of, facts_of
from pixtention.selector.phrases import is_boilerplate
from pixtention.selector.prompt_reading import (
    content_words,
    handles_a_thing,
    has_anyone,
    has_someone,
    head_word,
    holds,
    homes,
    text_words,
)
from pixtention.selector.wordlists import (
    ADULT_TAGS,
    CLOTHING_WORDS,
    FEMALE_WORDS,
    GENERIC_WORDS,
    MALE_WORDS,
    PERSON_NOUNS,
    STYLE_WORDS,
)

GLOBAL_KINDS = frozenset(("style", "hub"))

_VAGUE_WORDS = frozenset(("style", "styles", "art", "concept", "lora", "version", "effect"))

# An automatic pick whose title does not name its phrase must resemble that phrase alone this
# much (cosine, see bind). On the hand-judged set (bench/selector_judged.py) picks under 0.46
# were 4 acceptable of 12, those above 36 of 44.
PHRASE_MATCH = 0.46
# A marginal automatic pick (a score under select.PLAIN_SCORE) must resemble its phrase alone
# this much, whatever its title says, unless it is a character (judged by its name) or the
# prompt asks for it by a distinctive trigger. Calibrated on the hand-judged set, leaving each
# of its ten sets out in turn: the lowest floor keeping ≥ 82 % of the other sets' picks
# acceptable was 0.44–0.49 (median 0.47), and the left-out sets' picks it kept were 81.8 %
# acceptable (76.8 % with no floor). The marginal picks under 0.48 were 12 acceptable of 28
# ("a bamboo forest" → a misty forest, "white armor" → a second armour); those over it or
# plain, 117 of 140. A plain match ("Soft watercolor painting style." for "watercolor
# painting", 0.47) is kept.
PHRASE_FLOOR = 0.48

# A word more of the library's adapters hold than this share (and at least COMMON_MIN of them)
# is anyone's word, too common to name a character alone ("two" of "two-tone hair" for Marin
# Kitagawa, "huge" of "huge filesize" for a character of "My Little Brother's Seriously Huge").
# On 3,000 dev prompts over the 8,695 adapters (a cap of 52) it took the character picks from
# 410 to 348, and none it dropped was the prompt's own LoRA: that was picked 63 times before,
# 65 after (a freed slot went to the right pack).
COMMON_SHARE = 0.006
COMMON_MIN = 25

_HUB_REQUEST = re.compile(
    r"\b(?:add|more|extra|enhanced?|increased?)\s+(?:\w+\s+)?details?\b"
    r"|\bdetail\s*(?:tweaker|enhancer|slider)|\bdetailer\b|\btweaker\b|\benhancer\b"
    r"|\bnoise\s*offset\b",
    re.IGNORECASE,
)


def name_words(record) -> frozenset[str]:
    """The words that name this adapter and nothing else: its title's, file name's and naming
    triggers' words, generic nouns, versions and numbers left out."""
    return facts_of(record).names


def asks_for_detail(phrases: Sequence[str]) -> bool:
    """The prompt asks for a detail/quality adapter in words that are not boilerplate."""
    return any(_HUB_REQUEST.search(p) for p in phrases if not is_boilerplate(p))


def _triggered(facts: Facts, prompt: str) -> frozenset[str]:
    """The words of a trigger item the prompt holds whole: for a thing, an item with a word of
    its own ("knightarmor", not "sitting"); for a character only a token-like one (its
    "blonde hair" is anyone's)."""
    for item in facts.askable:
        if holds(prompt, item):
            return frozenset(item)
    return frozenset()


def _asked_distinctly(facts: Facts, prompt: str) -> bool:
    """The prompt holds one of its distinctive trigger items whole ("bubble tea challenge",
    "ohwx"), not one any prompt may hold ("car", "crossed legs")."""
    return any(holds(prompt, item) for item in facts.distinct)


def _named(facts: Facts, prompt: str) -> frozenset[str]:
    """The adapter's name words the prompt holds, else a trigger item's (:func:`_triggered`)."""
    return facts.names & text_words(prompt) or _triggered(facts, prompt)


def adult_unasked(record, prompt: str, applied: bool = True) -> bool:
    """An adult-tagged adapter for a prompt that is not adult and does not ask for it.

    To be applied (``applied``), a character is asked for by its name (many are tagged
    "sexy"), anything else by a distinctive trigger: a name word that is also a common word
    ("wedding" of "Sexy Wedding Short Dress", "victorian" of a Victorian style tagged sexy) does
    not ask for it. To be listed as a suggestion, any of its name words in the prompt does."""
    return _adult_unasked(facts_of(record), prompt, applied)


def _adult_unasked(facts: Facts, prompt: str, applied: bool = True) -> bool:
    if not facts.adult or ADULT_TAGS & text_words(prompt):
        return False
    if facts.kind == "character" or not applied:
        return not _named(facts, prompt)
    return not _asked_distinctly(facts, prompt)


def scope_of(kind: str, from_tag: bool) -> str:
    """A style or hub serves the whole image, unless the user's own tag regionalises it."""
    return "prompt" if kind in GLOBAL_KINDS and not from_tag else "phrase"


def name_row(record, phrases: Sequence[str], best_row: int) -> int | None:
    """A character's phrase, or None when no phrase is about it: ``best_row`` if it names it
    or holds its title's noun (an archetype, or a creature its tags repeat), else the phrase
    holding most of its name words ("hatsune miku" for "Hatsune Miku | Vocaloid")."""
    return _name_row(facts_of(record), phrases, best_row)


def too_common(doc_freqs: dict[str, int], n_docs: int) -> frozenset[str]:
    """The words (of ``doc_freqs``: word → adapters holding it) too common in a library of
    ``n_docs`` adapters to name a character alone (:data:`COMMON_SHARE`)."""
    cap = max(COMMON_MIN, COMMON_SHARE * n_docs)
    return frozenset(w for w, n in doc_freqs.items() if n > cap)


def _naming(facts: Facts, prompt: str, common: frozenset[str]) -> Facts:
    """A character's facts with the name words ``common`` holds left out, unless the prompt
    holds them as a pair its title and file name hold ("zero two"), not only its title
    ("Virtual youtuber-Gawr gura" in "gawr_gura")."""
    dropped = facts.names & common
    if not dropped or facts.kind != "character":
        return facts
    for pair in facts.name_pairs:
        if holds(prompt, pair):
            dropped -= set(pair)
    return dataclasses.replace(facts, names=facts.names - dropped) if dropped else facts


def _name_row(facts: Facts, phrases: Sequence[str], best_row: int) -> int | None:
    if best_row >= 0 and (facts.names | facts.title_nouns) & text_words(phrases[best_row]):
        return best_row
    hits = [len(facts.names & text_words(p)) for p in phrases]
    return hits.index(max(hits)) if hits and max(hits) > 0 else None


def bind(
    record,
    prompt: str,
    phrases: Sequence[str],
    best_row: int,
    plain: bool = False,
    phrase_match: float = 1.0,
    common: frozenset[str] = frozenset(),
) -> int | None:
    """The phrase row an auto-pick candidate binds to (-1: none), or None when its kind
    forbids picking it for this prompt.

    ``prompt`` is the prompt as written, ``phrases`` the query's phrase texts, ``best_row`` the
    phrase the scores bound it to, ``plain`` whether its score says its description plainly
    names that phrase (``select.PLAIN_SCORE``) and ``phrase_match`` the cosine of its
    document to that phrase alone: below :data:`PHRASE_FLOOR`, a marginal pick the prompt
    does not ask for by a distinctive trigger is another thing of the kind the phrase asks for
    ("Very Nice Forest" for "a haunted forest"), and below :data:`PHRASE_MATCH`, an adapter
    whose title does not name the phrase resembles only the prompt as a whole ("Hospital Gown"
    for "a hospital corridor"); neither is picked (``select.rank`` still lists them).
    ``common`` holds the prompt's words too common in the library to name a character alone
    (:func:`too_common`).
    """
    facts = _naming(facts_of(record), prompt, common)
    row = _bind_by_kind(facts, prompt, phrases, best_row, plain)
    if row is None or row != best_row or best_row < 0:
        return row
    asked = facts.kind == "character" or _asked_distinctly(facts, prompt)
    if not (plain or asked) and phrase_match < PHRASE_FLOOR:
        return None  # "Very Nice Forest" for "a haunted forest": a forest, not that one
    if phrase_match < PHRASE_MATCH and not _title_says(facts, phrases[best_row]):
        return None
    return row


def _bind_by_kind(
    facts: Facts, prompt: str, phrases: Sequence[str], best_row: int, plain: bool
) -> int | None:
    """:func:`bind` by the adapter's kind alone (the rules of the module docstring)."""
    kind = facts.kind
    named = _named(facts, prompt)
    if _adult_unasked(facts, prompt):
        return None
    if kind == "character" and named and _named_for_someone_else(facts, prompt):
        return None  # "gojo satoru from jujutsu kaisen" names no other Jujutsu Kaisen character
    if kind == "character" and named and named <= facts.series and not named & facts.title_nouns:
        return None  # its series is no one: "gold coins" are not Aderet, "zelda" is not Link
    text = phrases[best_row] if best_row >= 0 else ""
    phrase = text_words(text)
    asked = (named and kind == "character") or _asked_distinctly(facts, prompt)
    if facts.people and not asked and not PERSON_NOUNS & phrase:
        return None  # "Village girl" would paint a person where "a village" is
    everyone = text_words(prompt)
    if not asked and (facts.posed or kind == "clothing") and not has_someone(prompt):
        return None  # a pose or an outfit adds someone to a scene without people ("a ship")
    drawn = facts.bodily or facts.figures and kind in ("concept", "object")
    if not asked and drawn and not has_anyone(prompt):
        return None  # it draws someone: "Anime Slime" (tagged "slime girl") into "a slime monster"
    if not asked and facts.meme:
        return None  # a meme is asked for by name
    if not asked and kind != "background" and _other_gender(facts.gender, everyone):
        return None  # "Muscular Female" is not "a muscular man" (a place's "schoolgirl" tag
        # says who is in its sample images, not what the place is)
    if not asked and facts.era and era_of(phrase) not in ("", facts.era):
        return None  # "Roman Armor" for "sci-fi armor"
    if kind == "character":
        row = _name_row(facts, phrases, best_row)
        if row is None or plain or facts.title_nouns & text_words(phrases[row]):
            return row
        return None  # named, yet its description is about someone else ("Lisa" ≠ Mona Lisa)
    if kind == "clothing" and not (asked or (PERSON_NOUNS | CLOTHING_WORDS) & phrase):
        return None  # an outfit is worn: "a gym" is no place for a gym uniform
    if kind == "hub" and not (named or asks_for_detail(phrases)):
        return None
    if kind == "style" and not (_names_a_look(facts, prompt, phrases) or STYLE_WORDS & phrase):
        return None  # "a forest" asks for no fantasy-forest art style, "the sea" no underwater one
    if kind == "background" and not asked and handles_a_thing(text):
        return None  # "reading a newspaper" holds a thing in hand, not a newspaper-wall setting
    if kind != "style" and not (plain or _title_says(facts, text)):
        return None  # a marginal score, and its title names another thing than the phrase
    return best_row


def _named_for_someone_else(facts: Facts, prompt: str) -> bool:
    """The prompt names this character's franchise only as the home of someone else it names
    ("gojo satoru from jujutsu kaisen" for Inumaki, "semiramis \\(fate\\)" for Ibuki). A pack
    whose tags list the one named is not someone else, unless its file is another one it lists:
    a multi-character page's files are one character each ("jjk_inumaki" of a page tagged
    "satoru gojo", "sxf_loid_forger" for "yor forger")."""
    tagged = {w for tag in facts.whole for w in tag.split()}
    elsewhere, outside = False, set()
    for who, where in homes(prompt):
        if who is None:
            outside |= where
            continue
        specific = who - GENERIC_WORDS - STYLE_WORDS - FREE_WORDS - PERSON_NOUNS
        unlisted = not facts.names & who and not specific & tagged
        another = not specific <= facts.names and (facts.file_only & tagged) - who
        if facts.names & where and specific and (unlisted or another):
            elsewhere = True
        else:
            outside |= who | where
    return elsewhere and not facts.names & outside


def _other_gender(gender: str, prompt_words: frozenset[str]) -> bool:
    """The prompt's people are all of the gender the adapter's title and tags do not say."""
    if not gender:
        return False
    same, other = (FEMALE_WORDS, MALE_WORDS) if gender == "female" else (MALE_WORDS, FEMALE_WORDS)
    return bool(other & prompt_words) and not same & prompt_words


def _title_says(facts: Facts, phrase: str) -> bool:
    """Whether the adapter's title or file name holds its phrase's head word, whole or inside
    a compound ("sunset" in "SunsetScenery", "detail" in "details"), not only as part of
    another thing's name (:func:`_part_of_a_name`), and its tags, triggers or description say
    it too when it has a description: a title may be a pun ("Salted Fish map materials" are
    RPG map tiles)."""
    head = head_word(phrase)
    if head is None or head in _VAGUE_WORDS:
        return False
    said = any(head in o or (len(o) > 3 and o in head) for o in facts.own)
    if not said or _part_of_a_name(facts, head, text_words(phrase)):
        return False
    if facts.described is None:
        return True  # nothing but a title to go by ("EX micro shorts", tagged "clothing")
    return head[:5] in facts.described  # "photography" is said by "foodphoto"


def _part_of_a_name(facts: Facts, head: str, phrase: frozenset[str]) -> bool:
    """``head`` is only a word of a longer name that the adapter's title and tags give and
    the phrase does not hold: a modifier inside it ("dragon" of "Dragon Ball" for "fighting a
    dragon"), or the noun of a compound whose modifier is a thing of its own, tagged alone
    ("Spaceship bridge" tagged "spaceship" for "a bridge in paris"). A red dress tagged "red
    dress" is a dress, a person's "knight armor" serves "a knight", and a "city street" tag
    its title does not hold names nothing."""
    if head in facts.whole or head in PERSON_NOUNS:
        return False
    for tag in facts.compounds:
        if head not in tag or phrase.issuperset(tag):
            continue
        if tag[-1] != head or " ".join(w for w in tag if w != head) in facts.whole:
            return True
    return False


def _names_a_look(facts: Facts, prompt: str, phrases: Sequence[str]) -> bool:
    """Whether the prompt names a style adapter as a look: a distinctive trigger, or its name
    words in a phrase as a modifier ("a steampunk inventor"), alone ("…, cyberpunk") or beside
    a style word. The noun a phrase is about names a look only when the adapter's title is
    that thing ("The Umbrella LoRA" for "a paper umbrella"), not a look of it: "reading a
    newspaper" asks for no "Old Newspaper Style" front page."""
    if _asked_distinctly(facts, prompt):
        return True
    names = facts.names | _triggered(facts, prompt)
    for phrase in phrases:
        found = names & text_words(phrase)
        if not found:
            continue
        content = content_words(phrase)
        head = content[-1] if content else None
        if STYLE_WORDS & text_words(phrase) or found - {head} or set(content) <= found:
            return True
        if not STYLE_WORDS & facts.own:
            return True
    return False


def claims(record, prompt: str) -> frozenset[str]:
    """The prompt's words that name this adapter (:func:`name_words`): an adapter claiming no
    word a picked character does not ("Makima Eyes Inpaint" after "Makima | Chainsaw Man")
    is about the same person again, an alternate rather than a pick."""
    return _named(facts_of(record), prompt)


def may_fill(kind: str, phrase_row: int, taken: set[tuple[int, str]]) -> bool:
    """Whether an alternate may fill K beside the picks ``taken`` as (phrase row, kind): only
    as another kind of help for its phrase (a style beside an outfit), never the same
    character twice nor a second adapter of the same kind for one phrase."""
    return kind != "character" and (phrase_row, kind) not in taken


def character_on_generic(record, phrase: str, common: frozenset[str] = frozenset()) -> bool:
    """A character adapter bound to a phrase holding neither its name nor its title's noun
    (the issue's precision failure, counted by the benchmark); a word of ``common``
    (:func:`too_common`) is no name ("two" of "two-tone hair" for Marin Kitagawa)."""
    facts = _naming(facts_of(record), phrase, common)
    if facts.kind != "character":
        return False
    return not (facts.names | facts.title_nouns) & text_words(phrase)
