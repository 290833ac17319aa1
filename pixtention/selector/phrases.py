"""Where one concept ends and the next begins, read on the syntax-free view of a prompt.

Two levels, both plain regular expressions (deterministic, linear, no language model):

- everywhere: punctuation, ``BREAK``/``AND`` (already line breaks in the view), and the words
  "and", "with", "in";
- inside a piece of at least :data:`FINE_MIN_WORDS` words (a sentence, not a tag): prepositions
  ("of", "over", "behind" …) and light verbs ("wearing", "holding" …) are dropped like "and",
  and an ``-ing`` verb right after a content word starts a phrase of its own ("a red dragon
  flying over a neon city" → "a red dragon" · "flying" · "a neon city").

Short pieces are left whole because comma-separated tags such as "looking at viewer", "hand on
hip" or "cup of tea" each name one concept; cutting them would bind adapters to half a tag.
"""

from __future__ import annotations

import re

# Phrases made only of these words name no concept.
STOPWORDS = frozenset((
    "a", "an", "the", "of", "on", "at", "to", "for", "by", "from", "as", "is", "are", "be", "it",
    "its", "this", "that", "these", "those",
))  # fmt: skip
FINE_MIN_WORDS = 4
# Boilerplate: tags written into most prompts to steer quality or clear the backdrop. They name
# no concept an adapter could serve, yet their words ("background", "detailed") match adapter
# kinds and descriptions, so they are left out of retrieval (still phrases of the prompt).
_BOILERPLATE = re.compile(
    r"(?:(?:best|high|highest|top|good|normal|low|worst|amazing|great|masterpiece) quality"
    r"|masterpiece|absurdres|highres|incredibly absurdres|high ?res(?:olution)?|\d+k(?: uhd)?"
    r"|uhd|hdr|(?:very )?aesthetic|(?:ultra|extremely|highly|very|super|insanely) detailed"
    r"|ultra high res|intricate details?|sharp focus|score \d(?: up)?"
    r"|(?:simple|plain|white|black|gr[ae]y|transparent|gradient|blank|solid) background)"
)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

_COARSE = re.compile(
    r"[,;\n|，、；。！？!?]|\.(?=\s|$)|\b(?:and|with|in)\b", re.IGNORECASE | re.UNICODE
)
_PREPOSITIONS = (
    "of", "over", "under", "on", "at", "behind", "near", "from", "above", "below", "beneath",
    "underneath", "beside", "besides", "across", "through", "into", "onto", "against", "among",
    "amongst", "between", "inside", "outside", "around", "along", "atop", "toward", "towards",
    "within", "by", "while",
)  # fmt: skip
_LIGHT_VERBS = (
    "wearing", "wears", "worn", "holding", "holds", "carrying", "carries", "wielding", "wields",
    "featuring", "dressed",
)  # fmt: skip
_FINE = re.compile(r"\b(?:" + "|".join(_PREPOSITIONS + _LIGHT_VERBS) + r")\b", re.IGNORECASE)
_WORD = re.compile(r"\w+", re.UNICODE)
# Words in -ing that name things rather than actions, common in image prompts.
_ING_NOUNS = frozenset((
    "anything", "awning", "bedding", "building", "ceiling", "clearing", "clothing", "coloring",
    "colouring", "darling", "drawing", "duckling", "dumpling", "earring", "ending", "engraving",
    "evening", "everything", "feeling", "frosting", "icing", "king", "landing", "legging",
    "lighting", "lightning", "morning", "nothing", "offering", "opening", "painting", "pudding",
    "railing", "rendering", "ring", "sapling", "seedling", "setting", "shading", "sibling",
    "sing", "sling", "something", "spring", "sterling", "sting", "stocking", "string",
    "stuffing", "swing", "thing", "viking", "wedding", "wing", "writing",
))  # fmt: skip


def is_boilerplate(phrase: str) -> bool:
    """Whether a phrase is only a quality/resolution tag or a plain backdrop ("a white
    background", "best quality", "8k", "score_9")."""
    words = _NON_WORD.sub(" ", phrase.lower()).split()
    while words and words[0] in ("a", "an", "the"):
        words.pop(0)
    return bool(words) and _BOILERPLATE.fullmatch(" ".join(words)) is not None


def _is_action(word: str, previous: str | None) -> bool:
    """An ``-ing`` verb after a content word ("dragon flying"), not a noun ("oil painting")."""
    w = word.lower()
    return (
        previous is not None
        and len(w) >= 5
        and w.endswith("ing")
        and w not in _ING_NOUNS
        and previous.lower() not in STOPWORDS
        and not previous.isdigit()
    )


def _fine_pieces(view: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sub-pieces of ``view[start:end]`` at prepositions, light verbs and -ing verbs."""
    found = list(_WORD.finditer(view, start, end))
    if len(found) < FINE_MIN_WORDS:
        return [(start, end)]
    cuts: list[tuple[int, int]] = []  # (cut start, cut end): text between pieces
    previous: str | None = None
    for m in found:
        if _FINE.fullmatch(m.group()):
            cuts.append(m.span())
            previous = None
            continue
        if _is_action(m.group(), previous):
            cuts.append((m.start(), m.start()))
        previous = m.group()
    pieces = []
    cursor = start
    for a, b in cuts:
        pieces.append((cursor, a))
        cursor = b
    pieces.append((cursor, end))
    return pieces


def concept_pieces(view: str) -> list[tuple[int, int]]:
    """Spans of ``view`` between concept boundaries (untrimmed; some may be blank)."""
    pieces: list[tuple[int, int]] = []
    cursor = 0
    for m in _COARSE.finditer(view):
        pieces.extend(_fine_pieces(view, cursor, m.start()))
        cursor = m.end()
    pieces.extend(_fine_pieces(view, cursor, len(view)))
    return pieces
