"""One indexed adapter as the selector and the UI see it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AdapterRecord:
    """A row of the library: row ``id`` of the catalog is row ``id`` of the vector matrix."""

    id: int
    name: str  # file stem, what <lora:name:w> uses
    path: str
    fingerprint: str
    short_hash: str | None  # civitai AutoV2-style short hash when known
    title: str
    category: str | None
    base_family: str  # sd1 | sd2 | sdxl | sd3 | flux | unknown
    base_variant: str | None
    kind: str  # lora | locon | loha | …
    rank: int | None
    triggers: tuple[str, ...]  # every trigger word, for prompting
    preferred_weight: float | None
    weight_source: str | None
    tags: tuple[str, ...]
    document: str  # the text that was embedded
    fields: dict[str, str] = field(default_factory=dict)  # document field → text (evidence)
    cluster: int = -1
    cluster_label: str = ""
    # What it is about (curator.kinds: character, style, concept …); "" in a store indexed
    # before kinds existed — read it with kinds.kind_of(), which classifies such a record.
    concept_kind: str = ""
