"""The catalog's SQLite schema, as the migrations that build it, one version at a time."""

from __future__ import annotations

from pixtention.curator.keywords import SCHEMA as KEYWORD_SCHEMA

SCHEMA_VERSION = 3

# Migration N brings a catalog from schema N-1 to N. Append, never edit, once released.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE files (
            path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            sidecars TEXT NOT NULL, fingerprint TEXT, status TEXT NOT NULL, error TEXT)""",
        """CREATE TABLE adapters (
            path BLOB PRIMARY KEY, fingerprint TEXT NOT NULL, name TEXT NOT NULL,
            title TEXT NOT NULL, base_family TEXT NOT NULL, base_variant TEXT,
            kind TEXT NOT NULL, rank INTEGER, preview BLOB NOT NULL,
            info TEXT NOT NULL, record TEXT NOT NULL, doc_digest TEXT NOT NULL)""",
        "CREATE INDEX adapters_document ON adapters (fingerprint, doc_digest)",
        "CREATE INDEX adapters_name ON adapters (name)",
        """CREATE TABLE captions (
            fingerprint TEXT NOT NULL, captioner TEXT NOT NULL, caption TEXT NOT NULL,
            PRIMARY KEY (fingerprint, captioner))""",
        """CREATE TABLE embeddings (
            fingerprint TEXT NOT NULL, embedder TEXT NOT NULL, doc_digest TEXT NOT NULL,
            vector BLOB NOT NULL, PRIMARY KEY (fingerprint, embedder, doc_digest))""",
        """CREATE TABLE clusters (
            id INTEGER PRIMARY KEY, label TEXT NOT NULL, size INTEGER NOT NULL)""",
        """CREATE TABLE snapshot (
            row INTEGER PRIMARY KEY, cluster INTEGER NOT NULL, record TEXT NOT NULL)""",
    ),
    # 2: snapshot rows know their file, so a publish can replace only the rows that changed.
    2: (
        "ALTER TABLE snapshot ADD COLUMN path BLOB",
        "CREATE INDEX snapshot_path ON snapshot (path)",
    ),
    # 3: the full-text keyword index (SQLite FTS5), see pixtention.curator.keywords.
    3: KEYWORD_SCHEMA,
}
