"""Vectors of the library's own vocabulary, so a new prompt embeds only its unfamiliar phrases.

Hobbyists prompt with the tags and trigger words their adapters were published with ("long
hair", "film grain", a LoRA's trigger): the 15.9k tag and trigger phrases of the 8.7k-adapter
dev library are 68 % of the distinct phrases of 300 real dev prompts, and with their vectors at
hand a never-seen prompt's select() at 10k adapters took 17.0/36.0 ms CPU p50/p95 against
23.4/47.4 (``bench selector --only latency``). The items are parsed the way a prompt is
(:func:`~pixtention.selector.query.distinct_phrases`), so a phrase typed like a tag is found by
its text; only the ``size`` items most adapters share are kept (384 floats each).

They are embedded once (15.9k items: 20 s on one thread) and kept beside the store in
``query-vocabulary.npz`` (keyed by the embedder and its query precision; read back in 0.1 s); a
new snapshot embeds only the items not in the file. The file is written atomically and never
through a symbolic link; a damaged one is rebuilt, and a read-only store keeps the vocabulary in
memory. Building runs in batches on the query thread (one torch thread), so a query arriving
meanwhile waits for one batch (about 50 ms) at most.

Vectors are those of a query-sized call at the query precision, the path a prompt's phrases
take. In float32 that is the vector of the phrase alone (within 3e-7); in bfloat16 a phrase's
vector already depends on which phrases share its call (up to 1e-3 per component, cosine
≥ 0.99998), whether it comes from here or from the prompt.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
import weakref
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pixtention.curator.precision import native_dtype
from pixtention.curator.store import WRITE_ERRNOS, atomic_write
from pixtention.selector.prompt import parse_prompt
from pixtention.selector.worker import on_query_thread

log = logging.getLogger("pixtention.selector")

FILE_NAME = "query-vocabulary.npz"
FORMAT = 1
# The whole vocabulary of the 8.7k-adapter dev library is 15.9k items (68 % of the dev prompts'
# phrases); its 5k most shared items cover 58 %, 10k 62 %. 20k items are 31 MB.
DEFAULT_SIZE = 20_000
BATCH_TEXTS = 32  # a batch is about a prompt's worth of phrases: a query waits ≤ one of them
BATCH_CHARS = 1_000
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class Vocabulary:
    """Phrase text → unit vector for one library; filled batch by batch, ``ready`` when done."""

    def __init__(self) -> None:
        self.key: dict = {}  # embedder id and class, query precision: what vectors depend on
        self.items = 0  # the library's items it holds (or will, once built)
        self.embedded = 0  # items embedded by this build (the rest came from the file)
        self.seconds = 0.0  # wall time of the build
        self.ready = threading.Event()
        self._vectors: dict[str, np.ndarray] = {}
        self._input_key: Callable[[str], str] | None = None  # the embedder's, see find
        self._by_key: dict[str, np.ndarray] = {}

    def get(self, text: str) -> np.ndarray | None:
        return self._vectors.get(text)

    def find(self, text: str) -> np.ndarray | None:
        """The vector of ``text``, or of an item the model reads alike ("Long Hair" for "long
        hair" with an uncased tokenizer: the same tokens, so the same vector). It spared 3.6 %
        of the tokens never-seen dev prompts embedded at 10k adapters."""
        vector = self._vectors.get(text)
        if vector is None and self._input_key is not None:
            vector = self._by_key.get(self._input_key(text))
        return vector

    def __len__(self) -> int:
        return len(self._vectors)

    def _add(self, texts: list[str], vectors) -> None:
        vectors = list(vectors)
        self._vectors.update(zip(texts, vectors))
        if self._input_key is not None:
            for text, vector in zip(texts, vectors):
                self._by_key.setdefault(self._input_key(text), vector)


_VOCABS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_DETACHED: weakref.WeakSet = weakref.WeakSet()


def lookup(library) -> Vocabulary | None:
    """The library's vocabulary (possibly still filling), or None when it was never warmed."""
    if library in _DETACHED:
        return None
    return _VOCABS.get(library)


@contextlib.contextmanager
def detached(library) -> Iterator[None]:
    """Queries inside ignore the library's vocabulary (to measure what it saves)."""
    _DETACHED.add(library)
    try:
        yield
    finally:
        _DETACHED.discard(library)


def library_items(library, size: int = DEFAULT_SIZE) -> list[str]:
    """The phrase texts of the records' tags and triggers, the ``size`` most adapters share."""
    from pixtention.selector.query import distinct_phrases  # query.py imports this module

    counts: Counter[str] = Counter()
    parsed: dict[str, list[str]] = {}
    for record in library.records:
        texts: set[str] = set()
        for item in (*record.triggers, *record.tags):
            if item not in parsed:
                parsed[item] = [p.text for p in distinct_phrases(parse_prompt(item))]
            texts.update(parsed[item])
        counts.update(texts)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [text for text, _ in ranked[:size]]


def warm(library, *, size: int = DEFAULT_SIZE, wait: bool = False) -> Vocabulary:
    """Make the library's vocabulary available to its queries; cheap when already under way.

    Without ``wait`` the build runs on a daemon thread and this returns at once: queries use
    what is built so far. Call it again after each index run or open (a new library object).
    """
    with _LOCK:
        vocab = _VOCABS.get(library)
        started = vocab is not None
        if not started:
            vocab = _VOCABS[library] = Vocabulary()
    if not started:
        if wait:
            _build(library, vocab, size)
        else:
            threading.Thread(target=_build, args=(library, vocab, size),
                             name="pixtention-vocabulary", daemon=True).start()  # fmt: skip
    elif wait:
        vocab.ready.wait()
    return vocab


def _key(library) -> dict:
    library.embed([])  # loads the model (and refuses a mismatched one)
    embedder = getattr(library, "_embedder", None)  # set by library.embed
    precision = native_dtype(embedder) if embedder is not None else "float32"
    return {
        "format": FORMAT,
        "embedder": library.embedder_id,
        "embedder_class": type(embedder).__qualname__,
        "precision": precision,
    }


def _build(library, vocab: Vocabulary, size: int) -> None:
    started = time.perf_counter()
    try:
        items = library_items(library, size)
        if not items:
            return  # nothing to embed (and an empty library may have no embedder at all)
        vocab.key = _key(library)
        vocab._input_key = getattr(getattr(library, "_embedder", None), "input_key", None)
        vocab.items = len(items)
        path = _path(library)
        stored = _load(path, vocab.key) if path is not None else {}
        known = [t for t in items if t in stored]
        vocab._add(known, [stored[t] for t in known])
        missing = [t for t in items if t not in stored]
        for batch in _batches(missing):
            vocab._add(batch, np.asarray(on_query_thread(library.embed, batch), np.float32))
            vocab.embedded += len(batch)
        if path is not None and (missing or len(stored) != len(known)):
            _save(path, vocab.key, items, vocab)
    except Exception as exc:  # the vocabulary only saves time: a failure must not stop queries
        log.warning("library vocabulary not built (%s: %s)", type(exc).__name__, exc)
    finally:
        vocab.seconds = time.perf_counter() - started
        vocab.ready.set()


def _batches(texts: list[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    chars = 0
    for text in texts:
        if batch and (len(batch) >= BATCH_TEXTS or chars + len(text) > BATCH_CHARS):
            yield batch
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        yield batch


def _path(library) -> Path | None:
    store = getattr(library, "store", None)
    return Path(store) / FILE_NAME if store is not None else None


def _load(path: Path, key: dict) -> dict[str, np.ndarray]:
    """The file's vectors when it was made with ``key``; {} when absent, stale or damaged."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        reason = "a symbolic link, not followed" if exc.errno == errno.ELOOP else exc.strerror
        log.warning("library vocabulary %s is unusable (%s); rebuilding it", path, reason)
        return {}
    try:
        with os.fdopen(fd, "rb") as f, np.load(f, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            vectors = np.asarray(data["vectors"])
        texts = meta["texts"]
        shape_ok = vectors.ndim == 2 and vectors.dtype == np.float32 and len(vectors) == len(texts)
        if not shape_ok or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts and vectors do not match")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors are not finite")
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("library vocabulary %s is damaged (%s); rebuilding it", path, exc)
        return {}
    if meta.get("key") != key:
        return {}  # made with another embedder or precision: its vectors do not apply
    return dict(zip(texts, vectors))


def _save(path: Path, key: dict, items: list[str], vocab: Vocabulary) -> None:
    texts = [t for t in items if vocab.get(t) is not None]
    vectors = np.stack([vocab.get(t) for t in texts]) if texts else np.zeros((0, 0), np.float32)
    meta = json.dumps({"key": key, "texts": texts}, ensure_ascii=False).encode("utf-8")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.frombuffer(meta, dtype=np.uint8), vectors=vectors)

    try:
        atomic_write(path, write)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        log.info("library vocabulary kept in memory: cannot write %s (%s)", path, exc.strerror)
