"""What the catalog keeps for one adapter that was read: the selector's record and its row."""

from __future__ import annotations

import dataclasses

from pixtention.curator.documents import Document, build_document, document_digest
from pixtention.curator.kinds import classify_record
from pixtention.curator.records import AdapterRecord
from pixtention.curator.serial import info_to_json, record_to_json
from pixtention.library.info import AdapterInfo


def adapter_record(info: AdapterInfo, doc: Document) -> AdapterRecord:
    """The selector's view of one adapter (id and cluster are set when a snapshot is made)."""
    meta = info.metadata
    record = AdapterRecord(
        id=-1,
        name=meta.name,
        path=info.file.path,
        fingerprint=info.file.fingerprint,
        short_hash=info.hashes.autov2 if info.hashes is not None else None,
        title=doc.fields.get("title", meta.title),
        category=doc.kind,
        base_family=info.base_model.family,
        base_variant=info.base_model.variant,
        kind=info.layout.kind,
        rank=info.layout.rank,
        triggers=doc.triggers,
        preferred_weight=meta.preferred_weight,
        weight_source=meta.weight_source,
        tags=tuple(meta.tags),
        document=doc.text,
        fields=dict(doc.fields),
    )
    return dataclasses.replace(record, concept_kind=classify_record(record))


def adapter_columns(info: AdapterInfo, caption: str | None) -> dict[str, object]:
    """The catalog row of one read adapter: its parsed info, record and document digest."""
    doc = build_document(info, [caption] if caption else ())
    record = adapter_record(info, doc)
    return {
        "fingerprint": info.file.fingerprint,
        "name": info.metadata.name,
        "title": record.title,
        "base_family": info.base_model.family,
        "base_variant": info.base_model.variant,
        "kind": info.layout.kind,
        "rank": info.layout.rank,
        "preview": info.metadata.previews[0] if info.metadata.previews else "",
        "info": info_to_json(info),
        "record": record_to_json(record),
        "doc_digest": document_digest(doc.text),
    }
