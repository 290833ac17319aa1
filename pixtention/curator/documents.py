"""The text that describes one adapter: what gets embedded, and the fields shown as evidence.

A document is short and structured (title first, description last) so that truncation cuts the
least useful part, and so that the selector can say *which* field matched a phrase.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pixtention.library.info import AdapterInfo

MAX_CHARS = 1200  # embedded text bound (MiniLM reads ~256 word pieces; the rest is noise)
MAX_DESCRIPTION = 400
MAX_TAGS = 12
MAX_CAPTION = 200

KINDS = ("style", "character", "concept", "clothing", "background", "object")

# Tag words that reveal an adapter's kind, checked in this order (first hit wins).
_KIND_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("character", ("character", "characters", "celebrity", "person", "waifu", "oc")),
    ("style", ("style", "art style", "artstyle", "artist", "aesthetic", "painting style")),
    ("clothing", ("clothing", "outfit", "costume", "dress", "uniform", "armor", "armour")),
    ("background", ("background", "scenery", "landscape", "environment", "architecture")),
    ("object", ("object", "item", "vehicle", "weapon", "food", "prop")),
    ("concept", ("concept", "pose", "action", "effect", "poses")),
)

# Classic DreamBooth / LoRA rare tokens chosen precisely because they mean nothing.
_RARE_TOKENS = frozenset({"sks", "ohwx", "zwx", "xyz", "zkz", "bnha", "szn", "tok", "skz"})
_VOWELS = set("aeiouy")
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True)
class Document:
    """One adapter described for retrieval.

    ``text`` is embedded; ``fields`` (name → text) lets the selector show which part matched;
    ``triggers`` are all trigger words (for prompting), ``embedded_triggers`` the word-like subset
    that made it into ``text``.
    """

    text: str
    fields: dict[str, str] = field(default_factory=dict)
    triggers: tuple[str, ...] = ()
    embedded_triggers: tuple[str, ...] = ()
    kind: str | None = None


@functools.lru_cache(maxsize=1 << 16)
def is_gibberish_word(word: str) -> bool:
    """True for tokens chosen to be meaningless: ``sks``, ``ohwx``, hashes, ``k4r3n``, ``xzqrt``."""
    w = word.lower().strip()
    if not w or w in _RARE_TOKENS:
        return bool(w)
    if not w.isascii():
        return False  # other scripts: we cannot judge, keep them
    letters = [c for c in w if c.isalpha()]
    digits = sum(c.isdigit() for c in w)
    if not letters:
        return len(w) >= 4  # long bare numbers / ids carry no meaning
    if len(w) >= 6 and all(c in "0123456789abcdef" for c in w) and digits >= 2:
        return True  # hash-like
    if digits and len(letters) >= 2 and digits * 3 >= len(w) - 1:
        return True  # leetspeak-style ids: k4r3n, 1girl stays (one digit, short)
    if len(letters) >= 4 and not _VOWELS.intersection(letters):
        return True  # "vhs", "crt" are acronyms people prompt with; "xzqr" is not a word
    run = longest = 0
    for c in w:
        run = run + 1 if c.isalpha() and c not in _VOWELS else 0
        longest = max(longest, run)
    return longest >= 5


def embeddable_trigger(trigger: str) -> str:
    """The word-like part of a trigger phrase ("ohwx man" → "man"); "" when nothing is left."""
    words = [w for w in _WORD.findall(trigger) if not is_gibberish_word(w)]
    return " ".join(words)


def infer_kind(category: str | None, tags: Iterable[str], title: str = "") -> str | None:
    """The adapter's kind from its stated category, else from tag words, else None."""
    if category and category.lower() in KINDS:
        return category.lower()
    lowered = [t.lower().strip() for t in tags]
    for kind, hints in _KIND_HINTS:
        if any(t in hints for t in lowered):
            return kind
    title_words = set(_WORD.findall(title.lower()))
    for kind, hints in _KIND_HINTS:
        if title_words.intersection(h for h in hints if " " not in h and len(h) > 3):
            return kind
    return None


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + "…"


def _unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.lower().strip()
        if key and key not in seen:
            seen.add(key)
            out.append(item.strip())
    return out


def _title_from_name(name: str) -> str:
    """``pixel_art-style.v2`` → ``pixel art style v2`` (file stems used as titles)."""
    return " ".join(w for w in re.split(r"[_\-.]+", name) if w) or name


def build_document(info: AdapterInfo, captions: Iterable[str] = ()) -> Document:
    """Describe ``info`` (and its preview ``captions``) as a bounded, structured document."""
    meta = info.metadata
    title = meta.title.strip()
    title = _clip(title if " " in title else _title_from_name(title or meta.name), 160)
    kind = infer_kind(meta.category, meta.tags, title)
    triggers = tuple(_unique(meta.triggers))
    embedded = tuple(_unique(t for t in (embeddable_trigger(x) for x in triggers) if t))
    tags = _unique(t for t in meta.tags if not is_gibberish_word(t.replace(" ", "")))[:MAX_TAGS]
    folders = [f for f in meta.folders if f and not is_gibberish_word(f)]
    caption_text = "; ".join(_unique(_clip(c, MAX_CAPTION) for c in captions if c.strip()))

    fields: dict[str, str] = {"title": title}
    if kind:
        fields["kind"] = kind
    if embedded:
        fields["triggers"] = ", ".join(embedded)
    if tags:
        fields["tags"] = ", ".join(tags)
    if folders:
        fields["folders"] = " / ".join(folders)
    if caption_text:
        fields["caption"] = caption_text
    if meta.description.strip():
        fields["description"] = _clip(meta.description, MAX_DESCRIPTION)

    labels = {"title": "", "kind": "Kind: ", "triggers": "Triggers: ", "tags": "Tags: "}
    labels |= {"folders": "Folder: ", "caption": "Preview: ", "description": ""}
    parts = [labels[name] + value for name, value in fields.items()]
    text = _clip(". ".join(p.rstrip(".") for p in parts) + ".", MAX_CHARS)
    return Document(
        text=text, fields=fields, triggers=triggers, embedded_triggers=embedded, kind=kind
    )


def document_digest(text: str) -> str:
    """Identifies a document's text: a cached vector is reused only for the same text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
