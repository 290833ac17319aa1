"""Document frequencies read once, when the keyword index opens, give what asking FTS5's
vocabulary table for each prompt's words gave: the same frequencies and, to the bit, the same
scores."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pixtention.selector.lexical import LexicalIndex, _quoted
from pixtention.selector.retrieval import idf_with_prior

WEIGHTS = (3.0, 2.0, 1.0)
WORDS = ["ab", "cd", "ef", "gh", "ij", "kl"]
CORPORA = st.lists(
    st.tuples(*[st.lists(st.sampled_from(WORDS), max_size=6)] * 3), min_size=1, max_size=12
)
QUERIES = st.lists(st.sampled_from([*WORDS, "zz"]), max_size=6)


def _index(docs) -> LexicalIndex:
    return LexicalIndex.in_memory([tuple(" ".join(c) for c in doc) for doc in docs])


def _vocabulary_df(index: LexicalIndex, term: str) -> int:
    """The term's documents as FTS5's vocabulary table counts them, asked now."""
    row = index._conn.execute("SELECT doc FROM keywords_vocab WHERE term = ?", (term,)).fetchone()
    return int(row[0]) if row else 0


def _per_word_scores(index: LexicalIndex, terms, prior: float, limit: int) -> np.ndarray:
    """BM25 as the keyword side computed it before, each word's frequency asked at query time."""
    out = np.zeros(index.size, dtype=np.float32)
    df = {t: n for t in terms if (n := _vocabulary_df(index, t))}
    useful = sorted(df, key=df.__getitem__)  # the corpora's words are never too common
    w = ", ".join(f"{x:.6g}" for x in WEIGHTS)
    base = f"SELECT rowid, -bm25(keywords, {w}) FROM keywords WHERE keywords MATCH ?"
    for term in useful:
        sql, args = base, (_quoted(term),)
        if df[term] > limit:
            sql, args = base + " ORDER BY 2 DESC LIMIT ?", (_quoted(term), limit)
        rows = index._conn.execute(sql, args).fetchall()
        if rows:
            found = np.array(rows, dtype=np.float64)
            gain = idf_with_prior(df[term], index.n_docs, prior) / index.fts_idf(df[term])
            ids = found[:, 0].astype(np.int64)
            np.add.at(out, ids, (found[:, 1] * gain).astype(np.float32))
    return np.maximum(out, 0.0)


@settings(max_examples=40, deadline=None)
@given(CORPORA, QUERIES)
def test_document_frequencies_are_the_vocabulary_tables(docs, query) -> None:
    index = _index(docs)
    want = {t: n for t in query if (n := _vocabulary_df(index, t))}
    assert index.doc_freqs(query) == want


@settings(max_examples=40, deadline=None)
@given(CORPORA, QUERIES, st.sampled_from([1, 3, 100]))
def test_scores_are_those_of_frequencies_asked_per_query(docs, query, limit) -> None:
    index = _index(docs)
    for prior in (0.0, 100.0):
        got = index.scores(query, WEIGHTS, prior, limit)
        np.testing.assert_array_equal(got, _per_word_scores(index, query, prior, limit))
