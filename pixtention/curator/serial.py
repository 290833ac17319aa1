"""JSON forms of what the catalog stores: a slim :class:`AdapterInfo` and an adapter record.

The slim info drops the tensor table and the raw header metadata (tens of KB per file, and
re-readable from the file), keeping what documents, ``show`` and the selector use.

JSON is stored as UTF-8 text (not ``\\uXXXX``-escaped ASCII, which takes up to 6× the room for
non-Latin titles); only lone surrogates — bytes of file names that are not UTF-8 — are escaped,
which keeps them lossless. A document over :data:`MAX_JSON_CHARS` is refused: the library layer
bounds every field, so only a bug could produce one, and it must not reach the catalog.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any

from pixtention.curator.kinds import classify_record
from pixtention.curator.records import AdapterRecord
from pixtention.library.info import (
    AdapterFile,
    AdapterInfo,
    AdapterMetadata,
    BaseModel,
    Hashes,
    Layout,
)

MAX_JSON_CHARS = 256 * 1024  # one adapter's info or record; real ones are a few KB
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(data: Any) -> str:
    """Compact JSON in UTF-8 text, lone surrogates escaped (see the module docstring)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"{len(text)} characters of JSON for one adapter, over the bound")
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@functools.cache
def _field_names(cls) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def _tuples(cls, data: dict[str, Any]):
    """Build dataclass ``cls`` from JSON, turning lists back into tuples and ignoring extras."""
    names = _field_names(cls)  # cached: a reader builds tens of thousands of records
    return cls(**{k: tuple(v) if type(v) is list else v for k, v in data.items() if k in names})


def _flat(obj) -> dict[str, Any]:
    """A flat dataclass's fields (values are JSON-ready); much faster than ``asdict``."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def info_to_json(info: AdapterInfo) -> str:
    f = info.file
    data = {
        "file": {"path": f.path, "size": f.size, "mtime": f.mtime, "fingerprint": f.fingerprint},
        "layout": {
            "kind": info.layout.kind,
            "rank": info.layout.rank,
            "alpha": info.layout.alpha,
            "n_unet": len(info.layout.unet_modules),
            "n_text": len(info.layout.text_encoder_modules),
            "n_unrecognised": len(info.layout.unrecognised),
        },
        "base_model": _flat(info.base_model),
        "metadata": _flat(info.metadata),
        "hashes": _flat(info.hashes) if info.hashes else None,
        "warnings": list(info.warnings),
    }
    return dumps(data)


def info_from_json(text: str) -> AdapterInfo:
    """Rebuild an :class:`AdapterInfo` without tensors; module lists are empty (counts lost)."""
    data = json.loads(text)
    f = data["file"]
    lay = data["layout"]
    return AdapterInfo(
        file=AdapterFile(f["path"], f["size"], f["mtime"], f["fingerprint"], {}, {}),
        layout=Layout(lay["kind"], lay["rank"], lay["alpha"], (), (), ()),
        base_model=_tuples(BaseModel, data["base_model"]),
        metadata=_tuples(AdapterMetadata, data["metadata"]),
        hashes=_tuples(Hashes, data["hashes"]) if data.get("hashes") else None,
        warnings=tuple(data.get("warnings", ())),
    )


def record_to_json(record: AdapterRecord) -> str:
    return dumps(_flat(record))


def record_from_json(text: str, **override: Any) -> AdapterRecord:
    """An :class:`AdapterRecord` from its JSON; ``override`` sets e.g. id and cluster."""
    data = json.loads(text)
    data.update(override)
    record = _tuples(AdapterRecord, data)
    if not record.concept_kind:  # stored before kinds existed: classified once, here
        record = dataclasses.replace(record, concept_kind=classify_record(record))
    return record
