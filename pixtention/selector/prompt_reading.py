"""What the binding rules read from a prompt or a phrase: its words, its word runs, its
clauses (who comes from where), whether someone is in it, a phrase's head word. The prompt-wide
ones are parsed once per prompt and cached, since select() asks up to a hundred candidates the
same questions of one prompt (:func:`forget` empties the caches, for a benchmark's "never seen"
prompt)."""

from __future__ import annotations

import functools
import re

from pixtention.selector.adapter_facts import FREE_WORDS
from pixtention.selector.triggers import contains_item, prompt_pieces, words
from pixtention.selector.wordlists import BODY_WORDS, CLOTHING_WORDS, FIGURE_WORDS, PERSON_NOUNS

# Words a phrase and a title share without being about the same thing (see head_word).
_BARE_PEOPLE = FIGURE_WORDS | {"person", "people", "lady"}


# Words that put someone in a prompt besides person nouns: a portrait, someone wearing a thing.
_SOMEONE = frozenset(("portrait", "selfie", "wearing", "wears", "wear", "dressed", "worn"))


@functools.lru_cache(maxsize=512)
def text_words(text: str) -> frozenset[str]:
    return frozenset(words(text))


_MAX_GRAM = 6  # trigger items are short: longer ones are looked for piece by piece


@functools.lru_cache(maxsize=64)
def word_runs(prompt: str) -> tuple[frozenset[tuple[str, ...]], tuple[tuple[str, ...], ...]]:
    """Every run of up to ``_MAX_GRAM`` words inside one piece of the prompt, and the pieces:
    select() asks each of up to a hundred candidates whether the prompt holds its items."""
    pieces = tuple(prompt_pieces(prompt))
    runs = {
        piece[i : i + n]
        for piece in pieces
        for i in range(len(piece))
        for n in range(1, min(_MAX_GRAM, len(piece) - i) + 1)
    }
    return frozenset(runs), pieces


def holds(prompt: str, item: tuple[str, ...]) -> bool:
    """Whether the item's words appear together, in order, inside one piece of the prompt."""
    runs, pieces = word_runs(prompt)
    if len(item) <= _MAX_GRAM:
        return item in runs
    return contains_item(pieces, " ".join(item))


_CLAUSE_END = re.compile(r"[,;|\n，、；]")
_FROM = re.compile(r"^(?P<who>.+?)\s+from\s+(?P<where>.+)$", re.IGNORECASE)
_QUALIFIED = re.compile(r"^(?P<who>[^()]+?)\s*\\?\((?P<where>[^():]+?)\\?\)$")


@functools.lru_cache(maxsize=64)
def homes(prompt: str) -> tuple[tuple[frozenset[str] | None, frozenset[str]], ...]:
    """Each clause of the prompt as (who, where) when it places someone ("gojo satoru from
    jujutsu kaisen", "semiramis \\(fate\\)"), else (None, its words): parsed once per prompt,
    asked by every character it names."""
    clauses = []
    for clause in _CLAUSE_END.split(prompt):
        text = clause.strip()
        found = _FROM.match(text) or _QUALIFIED.match(text)
        if found is None:
            clauses.append((None, frozenset(words(text))))
        else:
            clauses.append((frozenset(words(found["who"])), frozenset(words(found["where"]))))
    return tuple(clauses)


@functools.lru_cache(maxsize=64)
def has_someone(prompt: str) -> bool:
    """The prompt has a person in it ("a girl sitting", "a warrior woman"), not only a thing
    named after one ("a pirate ship", "a witch hat"), or someone wearing something."""
    for piece in word_runs(prompt)[1]:
        if _SOMEONE.intersection(piece):
            return True
        for i, word in enumerate(piece):
            after = piece[i + 1] if i + 1 < len(piece) else None
            if word in PERSON_NOUNS and (
                after is None
                or after in PERSON_NOUNS
                or after in FREE_WORDS
                or after.endswith("ing")
            ):
                return True
    return False


_PERSON_CUES = CLOTHING_WORDS | BODY_WORDS


def has_anyone(prompt: str) -> bool:
    """Someone is in the prompt, said or implied: a person, or what only a person has or wears
    ("smile, sitting, sleeveless" with its "1girl" left out)."""
    return has_someone(prompt) or bool(_PERSON_CUES & text_words(prompt))


def content_words(phrase: str) -> list[str]:
    """A phrase's words that can carry a concept, in order."""
    return [w for w in words(phrase) if w not in FREE_WORDS and len(w) > 2]


def head_word(phrase: str) -> str | None:
    """A phrase's head word: its last content word that is not an -ing verb nor a bare person
    word ("fire" of "breathing fire", "warrior" of "a warrior woman"); None when none."""
    content = content_words(phrase)
    for w in reversed(content):
        if not w.endswith("ing") and w not in _BARE_PEOPLE:
            return w
    return content[-1] if content else None


_PLACE_WORDS = frozenset(
    ("in", "on", "at", "under", "inside", "through", "by", "near", "behind", "beside", "over")
)
_DETERMINERS = frozenset(("a", "an", "the", "his", "her", "their", "my", "some", "two"))


def handles_a_thing(phrase: str) -> bool:
    """A verb, a determiner and its object ("reading a newspaper", "holding her sword"): a
    thing someone handles, not a place a background could fill ("standing by a wall" and "a
    living room" are places)."""
    ws = words(phrase)
    verb = next((i for i, w in enumerate(ws) if w.endswith("ing")), None)
    return (
        verb is not None
        and verb + 2 < len(ws)
        and ws[verb + 1] in _DETERMINERS
        and not _PLACE_WORDS & set(ws)
    )


def forget() -> None:
    """Empty the per-prompt caches: the next prompt is parsed as if never seen."""
    for cache in (text_words, word_runs, homes, has_someone):
        cache.cache_clear()
