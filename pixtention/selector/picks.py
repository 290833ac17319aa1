"""What the selector hands to the integrator, the UI and the API: one ``Pick`` per adapter."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SOURCES = ("auto", "user", "pinned")
SCOPES = ("phrase", "prompt")


@dataclass(frozen=True)
class FieldMatch:
    """A document field that shares words with the bound phrase or the prompt."""

    field: str  # e.g. "title", "tags", "triggers", "description"
    terms: tuple[str, ...]  # the shared words, in field order


@dataclass(frozen=True)
class Evidence:
    """Why an adapter was picked, in numbers a user can read."""

    # The ranking score, by default the mean of dense and lexical (retrieval.Scoring): about
    # 0.45–0.65 when the document plainly names the phrase, 0.05–0.3 when it is about something
    # else, whatever the library's size; the default threshold is 0.35.
    score: float
    dense: float  # cosine of the document to its best phrase (× specificity) and to the prompt
    lexical: float  # the prompt's words the document holds, squashed to [0, 1): 1 → 0.3, 2 → 0.47
    phrase: str
    phrase_score: float  # cosine similarity of the document to the bound phrase alone
    cluster_label: str
    matched: tuple[FieldMatch, ...] = ()


@dataclass(frozen=True)
class Alternate:
    """A ranked adapter for the same phrase that another pick took (shown, not applied)."""

    name: str
    score: float
    concept_kind: str = ""


@dataclass(frozen=True)
class Suggestion:
    """An adapter ranked for a prompt, for the user to browse and pin: ``select.rank`` lists
    what is relevant, ``select.select`` decides what is applied (a character the prompt only
    describes is suggested, never applied)."""

    name: str
    score: float
    concept_kind: str
    phrase: str  # the phrase it scores best on; "" when that is the prompt as a whole

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Pick:
    """An adapter chosen for a prompt, bound to the phrase it serves.

    ``phrase_span`` indexes the original prompt (tags included) and ``stripped_span`` the
    tag-stripped prompt the WebUI tokenises; both are None when the prompt has no phrase
    (a pin on an empty prompt: the adapter then applies everywhere). ``weight`` is the UNet
    multiplier; ``triggers`` are the words :func:`apply_picks` inserts after the phrase (a whole
    trigger item, never one the prompt already contains). ``concept_kind`` is what the adapter
    is about (:mod:`pixtention.curator.kinds`); ``scope`` is "phrase" when it serves its phrase
    only, "prompt" when it serves the whole image (a style, a detail hub), the phrase then
    only saying what named it; ``alternates`` are the next ranked adapters for its phrase.
    """

    name: str
    path: str
    fingerprint: str
    short_hash: str | None
    score: float
    phrase: str
    phrase_span: tuple[int, int] | None
    stripped_span: tuple[int, int] | None
    weight: float
    weight_source: str  # "prompt", "user", "civitai", "modelspec", "default" …
    triggers: tuple[str, ...]
    cluster_label: str
    evidence: Evidence
    source: str  # one of SOURCES
    base_family: str
    concept_kind: str = ""
    scope: str = "phrase"  # one of SCOPES
    alternates: tuple[Alternate, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"pick source {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.scope not in SCOPES:
            raise ValueError(f"pick scope {self.scope!r} is not one of {', '.join(SCOPES)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``json.dumps`` (nested dataclasses become dicts, tuples JSON arrays)."""
        return asdict(self)
