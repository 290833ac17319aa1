"""What the library layer reports about one file, without loading its tensors.

These frozen dataclasses are the seam to the curator: it stores and indexes them, and the
command line prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BASE_FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux", "unknown")


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class AdapterFile:
    """A safetensors file's header, read with a size cap; never its tensor data."""

    path: str
    size: int
    mtime: float
    fingerprint: str  # f"{size}:{sha256(header bytes)[:32]}" — stable across moves/renames
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]


@dataclass(frozen=True)
class Hashes:
    """Full-file hashes; computed lazily (or reused from the file's own metadata)."""

    sha256: str  # 64 lowercase hex
    autov2: str  # civitai AutoV2: first 10 hex of sha256, upper case as civitai shows it
    autov3: str | None = None  # civitai AutoV3: sha256 of the tensor region, first 12 hex


@dataclass(frozen=True)
class BaseModel:
    family: str  # one of BASE_FAMILIES
    variant: str | None = None  # e.g. "pony", "illustrious", "noobai" for sdxl; "sd1.5" …
    evidence: str = ""  # why: "context width 768 (attn2.to_k)", "civitai baseModel 'Pony'"


@dataclass(frozen=True)
class Layout:
    """What the tensor names and shapes say, before any tensor is loaded."""

    kind: str  # lora | locon | loha | lokr | ia3 | full | dora | peft | mixed | unknown
    rank: int | None
    alpha: float | None
    unet_modules: tuple[str, ...]  # key stems targeting the UNet
    text_encoder_modules: tuple[str, ...]  # key stems targeting a text encoder
    unrecognised: tuple[str, ...]  # tensor names matching no known layout


@dataclass(frozen=True)
class AdapterMetadata:
    """Metadata merged from every source (user edits win; see design §3)."""

    name: str  # file stem: what <lora:name:w> uses
    title: str  # best human title
    description: str = ""  # plain text, bounded
    triggers: tuple[str, ...] = ()  # activation / trained words, in source order
    tags: tuple[str, ...] = ()  # training tags by frequency, then civitai/modelspec tags
    category: str | None = None  # style | character | concept | clothing | background | object
    preferred_weight: float | None = None
    weight_source: str | None = None  # "user", "civitai", "modelspec" …
    negative_text: str = ""
    notes: str = ""
    folders: tuple[str, ...] = ()  # folder names between the library root and the file
    base_model_hint: str | None = None  # as a sidecar/metadata states it ("SD 1.5", "Pony" …)
    civitai: dict[str, Any] = field(default_factory=dict)  # model_id, version_id, url …
    example_prompts: tuple[str, ...] = ()
    previews: tuple[str, ...] = ()  # preview image paths, best first
    has_embedded_preview: bool = False
    sources: tuple[str, ...] = ()  # which sources contributed ("name.json", "ss_*", …)
    warnings: tuple[str, ...] = ()  # bounded/malformed sidecars and the like
    skipped: tuple[str, ...] = ()  # names of sidecars/previews: links out of the library folder


@dataclass(frozen=True)
class AdapterInfo:
    """Everything ``show`` prints and the curator stores for one readable adapter file."""

    file: AdapterFile
    layout: Layout
    base_model: BaseModel
    metadata: AdapterMetadata
    hashes: Hashes | None = None  # filled only when asked for (full-file read)
    warnings: tuple[str, ...] = ()
