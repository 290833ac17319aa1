"""What the binding rules read from one adapter record (:class:`Facts`), derived once per
record: its kind, the words that name it, its title's nouns and series part, whether it paints
someone in, is adult or a meme, and the gender and era its title and tags say. The rules
themselves are in :mod:`pixtention.selector.binding`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pixtention.curator.documents import is_gibberish_word
from pixtention.curator.kinds import kind_of
from pixtention.selector.phrases import STOPWORDS
from pixtention.selector.triggers import trigger_items, words
from pixtention.selector.wordlists import (
    ADULT_TAGS,
    BODY_WORDS,
    CLOTHING_WORDS,
    CREATURE_WORDS,
    FEMALE_WORDS,
    FIGURE_WORDS,
    FUTURE_WORDS,
    GENERIC_WORDS,
    MALE_WORDS,
    MEME_TAGS,
    PAST_WORDS,
    PERSON_NOUNS,
    STYLE_WORDS,
)

# Words that carry no name nor concept of their own.
FREE_WORDS = STOPWORDS | {"and", "with", "in", "from", "all", "new", "lora", "locon", "loha"}
_NOISE = re.compile(r"^(?:v\d[\w.]*|\d+(?:k|d|mb|px|s)?|sd\w*|xl|ver\d*|\w)$")
_POSE_TAGS = frozenset(("pose", "poses"))


@dataclass(frozen=True)
class Facts:
    """What the rules read from one adapter, derived once (select() judges up to a hundred
    candidates per prompt)."""

    kind: str
    names: frozenset[str]  # name_words()
    title_nouns: frozenset[str]  # what its title says it depicts (see name_row)
    people: frozenset[str]  # person nouns of its title
    posed: bool  # tagged as a pose: it paints someone in that pose
    adult: bool
    meme: bool  # one joke: asked for by name only
    gender: str  # "female" or "male" when its title and tags say only that one, else ""
    # its title or tags say plain women or men ("woman", "1girl", not a role), or its
    # triggers are clothes ("highleg leotard"): it draws people
    figures: bool
    # its title starts with what someone does ("Sleeping on couch") or names a part of them
    # ("Macro Eye"): it draws a person, whatever its kind
    bodily: bool
    era: str  # "future" or "past" when its title and tags say only that one, else ""
    own: frozenset[str]  # words of its title and file name
    # pairs of name words its title and its file name both hold in a row ("zero two" of
    # "Zero Two (Darling in the Franxx)" in "ZeroTwo.safetensors"): a name, however common
    # its words (binding._naming)
    name_pairs: frozenset[tuple[str, str]]
    file_only: frozenset[str]  # its file name's words its title lacks ("inumaki" of a pack)
    series: frozenset[str]  # name words only its title's series part holds ("Rem - Re:Zero")
    whole: frozenset[str]  # its tags, each as one lower-case string of its words
    # its tags of several words its title holds whole ("Dragon Ball KI Charge"), word tuples
    compounds: tuple[tuple[str, ...], ...]
    # trigger items (as word tuples) that, whole in a prompt, ask for it (_triggered)
    askable: tuple[tuple[str, ...], ...]
    distinct: tuple[tuple[str, ...], ...]  # those no common phrase holds: a token, two own words
    # its tags, triggers and description, lower case, when its description says something
    # (SAYS_LITTLE); None when it has nothing but a title to go by
    described: str | None


_FACTS: dict[tuple, Facts] = {}
_MAX_FACTS = 1 << 16
SAYS_LITTLE = 40  # characters: a description shorter than this describes nothing


def facts_of(record) -> Facts:
    description = record.fields.get("description") or ""
    key = (
        record.name,
        record.title,
        record.triggers,
        record.tags,
        record.concept_kind,
        description,
    )
    found = _FACTS.get(key)
    if found is None:
        if len(_FACTS) >= _MAX_FACTS:
            _FACTS.clear()
        found = _FACTS[key] = _derive(record, description)
    return found


def _derive(record, description: str) -> Facts:
    kind = kind_of(record)
    title_words = tuple(words(record.title))
    title = set(title_words)
    texts = [record.title, re.sub(r"[_\-.]+", " ", record.name)]
    askable, distinct, triggered = [], [], set()
    for item in trigger_items(record.triggers):
        item_words = words(item)
        triggered.update(item_words)
        token = any(map(is_gibberish_word, item_words))
        if title.intersection(item_words) or token:
            texts.append(item)
        own = set(item_words) - GENERIC_WORDS - STYLE_WORDS - FREE_WORDS
        if token or (own and kind != "character"):
            askable.append(tuple(item_words))
            if token or len(own) > 1 or any(map(_fused, own)):
                distinct.append(tuple(item_words))
    found = {w for text in texts for w in words(text)} - GENERIC_WORDS - STYLE_WORDS - FREE_WORDS
    names = frozenset(w for w in found if not _NOISE.match(w) and (len(w) > 2 or not w.isalpha()))
    tagged = {w for tag in record.tags for w in words(tag)}
    common = {w for w in title if w in GENERIC_WORDS} - FREE_WORDS
    # An archetype ("Female Knight") is its title's nouns; a named one only a creature its tags
    # repeat or a tag of its own ("cat" of "Mochi the Cat", "lightning" of "LightningVFX"):
    # "Fairy Knight Tristan" is no knight, "Storm Trooper" (tagged "storm trooper") no storm.
    whole = _tag_names(record.tags)
    nouns = common if not names else (common - PERSON_NOUNS) & (CREATURE_WORDS & tagged | whole)
    said = {w.lstrip("0123456789") for w in title} | tagged  # "7Modern" of a numbered series
    said |= {e for w in said for e in _ERA_WORDS if len(w) > len(e) >= 5 and w.startswith(e)}
    return Facts(
        kind=kind,
        names=names,
        title_nouns=frozenset(nouns),
        people=frozenset(PERSON_NOUNS & title),
        posed=bool(_POSE_TAGS & tagged),
        adult=bool(ADULT_TAGS & said),
        meme=bool(MEME_TAGS & said),
        gender=_gender(said),
        figures=bool(FIGURE_WORDS & said or CLOTHING_WORDS & triggered),
        bodily=_action(record.title) or bool(BODY_WORDS & title),
        era=era_of(said),
        own=frozenset(title | set(words(texts[1]))),
        name_pairs=_name_pairs(title_words, tuple(words(texts[1])), names),
        file_only=frozenset(_anchors(texts[:2]) - title),
        series=frozenset(names & _series_words(record.title, _anchors(texts))),
        whole=frozenset(whole),
        compounds=tuple(
            tuple(t.split())
            for t in sorted(whole)
            if " " in t and _holds_run(title_words, tuple(t.split()))
        ),
        askable=tuple(askable),
        distinct=tuple(distinct),
        described=_described(record, description),
    )


def _name_pairs(
    title: tuple[str, ...], file: tuple[str, ...], names: frozenset[str]
) -> frozenset[tuple[str, str]]:
    in_file = set(zip(file, file[1:])) | set(file)
    return frozenset(
        (a, b)
        for a, b in zip(title, title[1:])
        if a in names and b in names and ((a, b) in in_file or a + b in in_file)
    )


def _described(record, description: str) -> str | None:
    """What a marginal pick's title word must also be found in (binding._title_says), lower
    case once per record rather than once per prompt."""
    if len(description) < SAYS_LITTLE:
        return None
    return " ".join((*record.tags, *record.triggers, description)).lower()


def _action(title: str) -> bool:
    """A title that starts with what someone does ("Sleeping on couch", "Sitting backwards on
    chair"): the adapter draws a person doing it."""
    written = next(iter(title.split()), "")  # as written: "BetterDetailAndLighting" fuses
    first = next(iter(words(written)), "")
    plain = written[1:] == written[1:].lower()
    return plain and len(first) > 5 and first.endswith("ing") and first not in GENERIC_WORDS


_QUALIFIER = re.compile(r"[(（][^)）]*[)）]")


def _tag_names(tags: Sequence[str]) -> set[str]:
    """Each tag as one string of its words, a list pasted into one tag split at its commas
    and a booru qualifier dropped ("serafuku_(sailor_uniform)" is a serafuku)."""
    parts = (p for tag in tags for p in re.split(r"[,，]", _QUALIFIER.sub(" ", tag)))
    return {" ".join(w) for p in parts if (w := words(p))}


# Where one part of a character title ends and another (its series, an author) begins;
# brackets hold an alias as often ("Artoria Pendragon (Saber)") and part nothing.
_TITLE_PARTS = re.compile(r"\s[-|/–—]\s|\sfrom\s", re.IGNORECASE)


def _series_words(title: str, anchors: set[str]) -> set[str]:
    """The words of a character title's other parts than its name, the name part being the
    one its file name or naming triggers (``anchors``) share: "Food Wars" of "Erina Nakiri -
    Food Wars!", "Ghibli" and "Spirited Away" of "Ghibli - Spirited Away - Chihiro Ogino",
    "Saving 80000 Gold Coins" of "Aderet from Saving 80000 Gold Coins". None when no part, or
    every part, is so anchored."""
    parts = [set(words(p)) for p in _TITLE_PARTS.split(title)]

    def anchored(part: set[str]) -> bool:
        return any(w in a for w in part if len(w) >= 3 for a in anchors)

    named = [p for p in parts if anchored(p)]
    if len(parts) < 2 or not named or len(named) == len(parts):
        return set()
    return set().union(*(p for p in parts if not anchored(p))) - set().union(*named)


def _anchors(texts: list[str]) -> set[str]:
    """Words of a file name and naming triggers (``texts`` after the title): where a title's
    name part is."""
    return {w for text in texts[1:] for w in words(text) if not _NOISE.match(w)}


def _gender(said: set[str] | frozenset[str]) -> str:
    female, male = bool(said & FEMALE_WORDS), bool(said & MALE_WORDS)
    return "" if female == male else "female" if female else "male"


def era_of(said: set[str] | frozenset[str]) -> str:
    future, past = bool(said & FUTURE_WORDS), bool(said & PAST_WORDS)
    return "" if future == past else "future" if future else "past"


_ERA_WORDS = FUTURE_WORDS | PAST_WORDS  # also heading a fused title word ("Moderninterior")
_PARTS = tuple(w for w in GENERIC_WORDS | STYLE_WORDS if len(w) >= 3)


def _fused(word: str) -> bool:
    """A made-up word fusing a common one with more ("knightarmor", "neoncity"): no phrase
    holds it by chance, unlike "car". The common word starts or ends it: "motorcycle" holds
    "orc" but fuses nothing."""
    return len(word) >= 7 and any(
        len(word) - len(p) >= 3 and (word.startswith(p) or word.endswith(p)) for p in _PARTS
    )


def _holds_run(seq: tuple[str, ...], run: tuple[str, ...]) -> bool:
    return any(seq[i : i + len(run)] == run for i in range(len(seq) - len(run) + 1))
