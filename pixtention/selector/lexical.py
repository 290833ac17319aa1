"""Keyword search for the selector: SQLite FTS5 bm25() over each adapter's full text.

A library opened from a store queries the catalog's keyword index (:mod:`pixtention.curator.
keywords`) through its own read-only connection: every query is one read of the last committed
state, so an index run writing meanwhile is never seen half done. Rows map to this library's
records by path, read once; a row published after the library was opened, or an adapter the
library does not hold, is simply not found, and never named as another adapter. A library with
no store (``Library.from_records``) or a store indexed before the keyword index existed gets an
in-memory FTS5 table built from its records' own text, queried the same way.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pixtention.curator import keywords
from pixtention.curator.catalog_file import display_text, sqlite_uri
from pixtention.curator.records import AdapterRecord
from pixtention.curator.store import CATALOG_NAME
from pixtention.selector.retrieval import idf_with_prior

# Distinct query words searched, the rarest first: the rarer words carry the score, and each word
# is one FTS5 query. On 1,000 dev prompts at 8.7k adapters, 24 against 64: suggestions' R@3
# 0.129 vs 0.127, MRR 0.116 vs 0.114, search p95 10.2 vs 14.3 ms CPU (long prompts' many words).
MAX_TERMS = 24
# Words more than COMMON_SHARE of the documents hold (at most MAX_COMMON_DF, at least
# MIN_COMMON_DF: in a small library every word is common) are not searched: FTS5 scores each
# posting (about 1.2 µs), and on the dev split leaving them out ranked better (R@3 of the keyword
# side alone 0.117 at 3 %, 0.109 at 10 %; 4.0 against 10.4 ms a query at 8.7k adapters).
COMMON_SHARE = 0.03
MAX_COMMON_DF = 1000
MIN_COMMON_DF = 64


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _record_row(record: AdapterRecord) -> tuple[str, str, str]:
    """The text a record itself holds, as the three columns of the keyword index."""
    fields = record.fields
    name = "\n".join(
        dict.fromkeys(x for x in (record.title, record.name, fields.get("folders")) if x)
    )
    tags = ", ".join(dict.fromkeys((*record.tags, *record.triggers)))
    return display_text(name), display_text(tags), display_text(record.document)


def _memory_index(rows: Iterable[tuple[str, str, str]]) -> sqlite3.Connection:
    """An in-memory keyword index of (name, tags, body) rows; row i is record i."""
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    for statement in keywords.SCHEMA[2:]:  # the FTS5 table and its vocabulary
        conn.execute(statement)
    conn.execute("BEGIN")  # one transaction: 100k rows in seconds, not minutes
    conn.executemany(
        "INSERT INTO keywords (rowid, name, tags, body) VALUES (?, ?, ?, ?)",
        ((i, *row) for i, row in enumerate(rows)),
    )
    conn.execute("COMMIT")
    return conn


def _store_index(store: os.PathLike[str], records: Sequence[AdapterRecord]):
    """(connection, row id → record id) over the store's keyword index, or None when the store
    has none (indexed before it existed) or cannot be read."""
    uri = sqlite_uri(Path(store) / CATALOG_NAME, mode="ro")
    try:
        conn = sqlite3.connect(
            uri, uri=True, timeout=30.0, check_same_thread=False, isolation_level=None
        )
    except sqlite3.Error:
        return None
    try:
        if not keywords.has_keywords(conn):
            conn.close()
            return None
        by_path = {r.path: r.id for r in records}
        rows = {i: by_path[p] for i, p in keywords.published_rows(conn) if p in by_path}
    except sqlite3.Error:
        conn.close()
        return None
    if len(set(rows.values())) < len(records):  # a store not yet re-indexed after an update
        conn.close()
        return None
    return conn, rows


class LexicalIndex:
    """FTS5 keyword search over one library; thread-safe (one connection, one lock)."""

    def __init__(self, conn: sqlite3.Connection, rows: dict[int, int] | None, size: int) -> None:
        self._conn = conn
        self.size = size  # records in the library
        # FTS row id → record id (-1: a row this library does not hold)
        if rows is None:
            self._table = np.arange(size, dtype=np.int64)
        else:
            self._table = np.full(max(rows, default=-1) + 1, -1, dtype=np.int64)
            self._table[list(rows)] = list(rows.values())
        self._lock = threading.Lock()
        with self._lock:
            self.n_docs, self._df = self._read_counts(conn)
        weakref.finalize(self, conn.close)

    @staticmethod
    def _read_counts(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
        """The documents, and term → documents holding it, in one read (counts of the same
        committed rows).

        Read once, when the index opens: FTS5's vocabulary table counts a word's documents by
        walking its postings, so looking a prompt's words up cost most for its common ones
        ("girl"): 0.5/1.1 ms mean/p95 a never-seen dev prompt at 10k adapters, 3.1/6.6 ms at
        100k (the dev library scaled as ``bench/selector_latency.py`` does). Read whole, the
        table is 42.6k words (3.6 MB) at 10k, read in 0.06-0.16 s, and 142k (11.7 MB) at 100k,
        0.3-0.8 s.
        """
        conn.execute("BEGIN")
        try:
            n_docs = int(conn.execute("SELECT COUNT(*) FROM keywords").fetchone()[0])
            return n_docs, dict(conn.execute("SELECT term, doc FROM keywords_vocab").fetchall())
        finally:
            conn.execute("COMMIT")

    @classmethod
    def for_library(cls, library) -> LexicalIndex:
        """The store's keyword index when it has one for every record, else one in memory."""
        records = library.records
        store = getattr(library, "store", None)
        found = _store_index(store, records) if store is not None and len(records) else None
        if found is not None:
            return cls(found[0], found[1], len(records))
        return cls.in_memory([_record_row(r) for r in records])

    @classmethod
    def in_memory(cls, rows: Sequence[tuple[str, str, str]]) -> LexicalIndex:
        """An index of (name, tags, body) rows held in memory; row i is record i."""
        return cls(_memory_index(rows), None, len(rows))

    def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        """Documents holding each term (terms no document holds are left out)."""
        df = self._df
        return {t: n for t in terms if (n := df.get(t))}

    def rare_idf(self) -> float:
        """FTS5's idf of a word only one document holds."""
        return math.log(max(self.n_docs - 0.5, 1.5) / 1.5) or 1e-6

    def fts_idf(self, df: int) -> float:
        """The idf FTS5's bm25() gives a word ``df`` documents hold (floored like FTS5's)."""
        idf = math.log((self.n_docs - df + 0.5) / (df + 0.5)) if self.n_docs else 0.0
        return idf if idf > 0 else 1e-6

    def scores(
        self, terms: Iterable[str], weights: Sequence[float], prior_docs: float, limit: int
    ) -> np.ndarray:
        """Okapi BM25 of every record, (size,) float32: FTS5 bm25() per word (its term
        frequency saturation, length normalisation and column ``weights`` for name, tags and
        body), each word's idf swapped for :func:`~.retrieval.idf_with_prior`.

        FTS5's own idf is floored at zero for a word half the documents hold, which in a small
        library is most words ("knight" in two of three adapters); the prior keeps them. BM25 is
        a sum over the query's words, so one query per word adds up to the whole. Per word only
        the ``limit`` best documents count, and common words (see :data:`COMMON_SHARE`) not at
        all.
        """
        out = np.zeros(self.size, dtype=np.float32)
        df = self.doc_freqs([t for t in terms if t])
        cap = max(MIN_COMMON_DF, min(COMMON_SHARE * self.n_docs, MAX_COMMON_DF))
        useful = sorted((t for t, n in df.items() if n <= cap), key=df.__getitem__)[:MAX_TERMS]
        if not useful or limit <= 0:
            return out
        w = ", ".join(f"{float(x):.6g}" for x in weights)
        base = f"SELECT rowid, -bm25(keywords, {w}) FROM keywords WHERE keywords MATCH ?"
        with self._lock:
            self._conn.execute("BEGIN")  # one read: every word sees the same committed rows
            try:
                self._add_terms(out, useful, df, base, prior_docs, limit)
            finally:
                self._conn.execute("COMMIT")
        return np.maximum(out, 0.0)

    def _add_terms(
        self,
        out: np.ndarray,
        useful: list[str],
        df: dict[str, int],
        base: str,
        prior_docs: float,
        limit: int,
    ) -> None:
        """Add each word's BM25 share to ``out`` (under the lock, inside one read)."""
        for term in useful:
            n = df[term]
            sql, args = base, (_quoted(term),)
            if n > limit:  # sorting costs more than scoring: only when it cuts
                sql, args = base + " ORDER BY 2 DESC LIMIT ?", (_quoted(term), limit)
            rows = self._conn.execute(sql, args).fetchall()
            if not rows:
                continue
            found = np.array(rows, dtype=np.float64)
            ids = self._record_ids(found[:, 0].astype(np.int64))
            keep = ids >= 0
            gain = idf_with_prior(n, self.n_docs, prior_docs) / self.fts_idf(n)
            np.add.at(out, ids[keep], (found[keep, 1] * gain).astype(np.float32))

    def _record_ids(self, rowids: np.ndarray) -> np.ndarray:
        """Record id of each FTS row id, -1 for a row this library does not hold."""
        table = self._table
        inside = (rowids >= 0) & (rowids < len(table))
        out = np.full(len(rowids), -1, dtype=np.int64)
        out[inside] = table[rowids[inside]]
        return out
