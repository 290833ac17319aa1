"""What an adapter is about — character, style, concept, clothing, object, background or a
quality/detail "hub" — read from the metadata a user's disk holds.

The selector binds by kind (issue 14): a character needs its name in the prompt, a style serves
the whole prompt, a hub is picked only when asked for. So a wrong kind costs a bad pick, and
the classifier weighs the plainest evidence most: words of the title ("… Style", "… Outfit",
"Detail Tweaker"), then category tags (Civitai puts "character", "style", "clothing" … among a
model's tags; kohya training tags hold "1girl"/"solo" beside a character's name), then the
stored category and the description. Ties go to the kind whose mistakes cost least to undo:
a hub or a character is gated, so a doubtful adapter is gated rather than spread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

KINDS = ("character", "style", "concept", "clothing", "object", "background", "hub")
# Tie order: gated kinds first (see the module docstring), style last (it applies everywhere).
_PRIORITY = ("hub", "character", "clothing", "background", "object", "concept", "style")
FALLBACK = "concept"  # no evidence at all: bound to its phrase like any concept

# Category-like tags (Civitai's, modelspec's, folder names), lower case → kind.
_TAG_KINDS: dict[str, tuple[str, ...]] = {
    "character": (
        "character", "characters", "game character", "anime character", "video game character",
        "vtuber", "vtuber character", "virtual youtuber", "celebrity", "celeb", "real person",
        "person", "actress", "actor", "idol", "kpop idol", "waifu", "oc", "original character",
        "consistent character", "characterpack", "character lora", "singer", "model girl",
    ),
    "style": (
        "style", "styles", "art style", "artstyle", "style lora", "style art", "artist",
        "painting style", "illustration style", "drawing style", "aesthetic", "art",
    ),
    "clothing": (
        "clothing", "clothes", "outfit", "outfits", "costume", "costumes", "fashion",
        "fashion design", "uniform", "swimwear", "lingerie", "dress", "armor", "armour",
    ),
    "concept": (
        "concept", "concepts", "pose", "poses", "posing", "action", "actions", "effect",
        "effects", "expression", "gesture", "composition", "concept lora",
    ),
    "background": (
        "background", "backgrounds", "scenery", "landscape", "landscapes", "environment",
        "architecture", "architecture design", "buildings", "building", "cityscape", "interior",
    ),
    "object": (
        "object", "objects", "item", "items", "vehicle", "vehicles", "weapon", "weapons",
        "food", "prop", "props", "accessory", "accessories",
    ),
    "hub": (
        "tool", "tools", "tool lora", "detail", "detailer", "details", "enhancer", "tweaker",
        "slider", "noise offset", "utility", "adjuster",
    ),
}  # fmt: skip
_KIND_OF_TAG = {tag: kind for kind, tags in _TAG_KINDS.items() for tag in tags}

# A character tag outweighs one title cue: "Zero Suit Samus", "Mudrock (Arknights) Swimsuit"
# are characters in an outfit; "Makoto Shinkai Style" (style in title and tags) stays a style.
_CHARACTER_TAG = 3.5
# Title words, the strongest evidence: what the author calls the file.
_TITLE_CUES: dict[str, re.Pattern[str]] = {
    "hub": re.compile(
        r"detail(?:s|er)?\s*(?:tweaker|enhancer|slider|adjust\w*|maker)|add (?:more )?details?"
        r"|more[ _]?details|detailer|tweaker|enhancer|noise ?offset|\bslider\b|\blowra\b"
        r"|adjuster"
    ),
    "style": re.compile(r"\bstyles?\b|art ?style|\bin the style of\b|painting style|aesthetic"),
    "clothing": re.compile(
        r"\b(?:outfit|costume|dress|uniform|suit|bikini|swimsuit|swimwear|lingerie|armou?r"
        r"|kimono|hoodie|jacket|clothes|clothing|attire|pantyhose|stockings|leggings|skirt"
        r"|gown|hanfu|bodysuit|cosplay)s?\b"
    ),
    "concept": re.compile(r"\b(?:poses?|posing|concept|gesture|expression|action)\b"),
    "background": re.compile(
        r"\b(?:backgrounds?|scenery|landscapes?|interior|architecture|cityscape|buildings?)\b"
    ),
    "object": re.compile(r"\b(?:weapon|sword|gun|vehicle|car|item|object|prop|food)s?\b"),
}
# "Raiden Shogun (all outfits)" is a character with its outfits, not an outfit.
_ALL_OUTFITS = re.compile(r"\b(?:all|multiple|every|\d+|with)\s+(?:outfits?|costumes?)\b")
# Kohya training tags of a picture of one character (a style set holds many subjects).
_SOLO_TAGS = frozenset(("1girl", "1boy", "solo", "solo focus"))
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _votes(
    title: str, tags: Sequence[str], category: str | None, description: str
) -> dict[str, float]:
    votes = dict.fromkeys(KINDS, 0.0)
    lowered_title = " ".join(_WORD.findall(title.lower()))
    for kind, cue in _TITLE_CUES.items():
        if cue.search(_ALL_OUTFITS.sub(" ", lowered_title)):
            votes[kind] += 4.0 if kind == "style" else 3.0  # "… Style": whatever the tags say
    seen: set[str] = set()
    for tag in tags:
        kind = _KIND_OF_TAG.get(" ".join(tag.lower().replace("_", " ").split()))
        if kind is not None and kind not in seen:
            seen.add(kind)  # one vote per kind: "style, styles, art style" is one claim
            votes[kind] += _CHARACTER_TAG if kind == "character" else 2.0
    if category in votes:
        votes[category] += 1.0
    text = description.lower()
    for kind, phrase in (
        ("character", "character lora"),
        ("style", "style lora"),
        ("clothing", "outfit"),
        ("concept", "pose"),
    ):
        if phrase in text:
            votes[kind] += 0.5
    return votes


def _kohya_character(name: str, title: str, tags: Sequence[str]) -> bool:
    """A kohya set of one character: "1girl"/"solo" among the top training tags and the
    output name (or title) itself a training tag ("hatsune miku", "asuna_(sao)")."""
    lowered = [" ".join(t.lower().replace("_", " ").split()) for t in tags[:12]]
    if not _SOLO_TAGS.intersection(lowered):
        return False
    names = {" ".join(_WORD.findall(n.lower())) for n in (name, title) if n}
    return any(tag and (tag in names or tag.split(" (")[0] in names) for tag in lowered)


def classify(
    title: str,
    tags: Sequence[str] = (),
    *,
    name: str = "",
    category: str | None = None,
    description: str = "",
) -> str:
    """One of :data:`KINDS` for an adapter (``FALLBACK`` when nothing says).

    ``tags`` are every tag the adapter has (kohya training tags by frequency, Civitai's,
    modelspec's), ``category`` the curator's category if any, ``name`` the file stem or
    ``ss_output_name``.
    """
    votes = _votes(title or name, tags, category, description)
    if _kohya_character(name, title, tags):
        votes["character"] += 2.5
    best = max(votes.values())
    if best <= 0:
        return FALLBACK
    return next(kind for kind in _PRIORITY if votes[kind] == best)


def classify_record(record) -> str:
    """The kind of an :class:`~pixtention.curator.records.AdapterRecord` from its own fields."""
    return classify(
        record.title,
        record.tags,
        name=record.name,
        category=record.category,
        description=record.fields.get("description", ""),
    )


def kind_of(record) -> str:
    """The stored kind (records read from a store always have one, see ``serial``), or a record
    built in memory without one classified now."""
    return getattr(record, "concept_kind", "") or classify_record(record)
