"""Themes of the library: spherical k-means, an IVF index on the centroids, c-TF-IDF labels.

The IVF inner-product index's coarse quantizer holds the k-means centroids, so "score the
clusters, then the adapters inside the best ``nprobe`` of them" is a single ``index.search``.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import faiss
import numpy as np

from pixtention.curator.documents import is_gibberish_word
from pixtention.curator.store import atomic_write

MIN_ADAPTERS_TO_CLUSTER = 50  # below this one theme is more honest than noisy k-means
MAX_CLUSTERS = 1024
REFIT_FRACTION = 0.2
ONE_CLUSTER_LABEL = (
    "all adapters"  # re-cluster when adds + removals since the last fit exceed this share
)

_STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "without",
        "you",
        "your",
        "lora",
        "lycoris",
        "locon",
        "loha",
        "lokr",
        "model",
        "models",
        "version",
        "v1",
        "v2",
        "v3",
        "v4",
        "v5",
        "sd",
        "sdxl",
        "sd1",
        "sd15",
        "pony",
        "xl",
        "trigger",
        "triggers",
        "kind",
        "tags",
        "tag",
        "folder",
        "preview",
        "use",
        "used",
        "using",
        "best",
        "high",
        "quality",
        "style1",
        "weight",
        "strength",
        "trained",
        "training",
    )
)
_TOKEN = re.compile(r"[^\W\d_][^\W_]{2,}", re.UNICODE)


def choose_k(n: int) -> int:
    """k ≈ √n, one cluster below :data:`MIN_ADAPTERS_TO_CLUSTER`, at most :data:`MAX_CLUSTERS`."""
    if n < MIN_ADAPTERS_TO_CLUSTER:
        return 1
    return max(2, min(MAX_CLUSTERS, round(math.sqrt(n)), n // 10))


def fit_centroids(vectors: np.ndarray, k: int, *, seed: int = 1234) -> np.ndarray:
    """Spherical k-means (unit-norm centroids, cosine assignment) → (k, d) float32."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if k <= 1:
        mean = vectors.mean(axis=0, keepdims=True) if len(vectors) else vectors[:1]
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        if not len(mean) or float(norm[0, 0]) < 1e-12:
            mean = np.zeros((1, vectors.shape[1]), np.float32)
            mean[0, 0] = 1.0
            return mean
        return (mean / norm).astype(np.float32)
    nredo = 5 if len(vectors) <= 20_000 else 1  # small libraries: keep the best of 5 starts
    kmeans = faiss.Kmeans(
        vectors.shape[1], k, niter=20, nredo=nredo, spherical=True, seed=seed, verbose=False
    )
    kmeans.cp.max_points_per_centroid = 256  # subsample big libraries: 100k fits in seconds
    kmeans.cp.min_points_per_centroid = 1  # small themed libraries are fine; no warning
    kmeans.train(vectors)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def build_index(vectors: np.ndarray, centroids: np.ndarray) -> faiss.IndexIVFFlat:
    """IVF inner-product index whose lists are the given clusters; row i gets id i."""
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    d = centroids.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(centroids)
    index = faiss.IndexIVFFlat(quantizer, d, len(centroids), faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    quantizer.this.disown()  # the index now frees the quantizer
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    index.make_direct_map()  # so the vectors can be read back (Library.vectors)
    return index


def centroids_of(index: faiss.Index) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)


def vectors_of(index: faiss.Index) -> np.ndarray:
    return index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), "f4")


def assign(index: faiss.Index, vectors: np.ndarray) -> np.ndarray:
    """The cluster (inverted list) of each vector: its nearest centroid by inner product."""
    if not len(vectors):
        return np.zeros(0, dtype=np.int64)
    ivf = faiss.extract_index_ivf(index)
    _, ids = ivf.quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
    return ids[:, 0].astype(np.int64)


def needs_refit(n_now: int, n_at_fit: int, changes_since_fit: int, k_at_fit: int) -> bool:
    """Re-cluster when the library changed by more than :data:`REFIT_FRACTION` or k is off."""
    if n_at_fit <= 0 or k_at_fit <= 0:
        return True
    if choose_k(n_now) != k_at_fit and (k_at_fit == 1 or choose_k(n_now) == 1):
        return True
    return changes_since_fit > REFIT_FRACTION * max(n_at_fit, 1)


def _terms(text: str) -> list[str]:
    return [
        t
        for t in (m.lower() for m in _TOKEN.findall(text))
        if t not in _STOPWORDS and not is_gibberish_word(t)
    ]


def label_clusters(
    texts: Sequence[str], assignment: np.ndarray, k: int, *, n_terms: int = 3
) -> list[str]:
    """A label per cluster from its most distinctive terms, by class-based TF-IDF.

    c-TF-IDF (Grootendorst 2022, BERTopic): weight(t, c) = tf(t, c) · log(1 + A / f(t)), with
    tf the term's frequency in cluster c, f(t) its frequency over all clusters, A the mean number
    of words per cluster. Each term counts once per member so one verbose document cannot own
    its cluster's label; ties go to the term met first (titles come first in the text).
    """
    if k == 1:
        return [ONE_CLUSTER_LABEL]  # nothing to be distinctive against
    per_cluster = [Counter() for _ in range(k)]
    for text, c in zip(texts, assignment):
        if 0 <= c < k:
            per_cluster[int(c)].update(dict.fromkeys(_terms(text), 1))
    totals: Counter[str] = Counter()
    for counts in per_cluster:
        totals.update(counts)
    mean_words = sum(sum(c.values()) for c in per_cluster) / max(k, 1)
    labels = []
    for counts in per_cluster:
        size = sum(counts.values()) or 1
        scored = sorted(
            counts.items(),
            key=lambda kv: -(kv[1] / size) * math.log(1 + mean_words / totals[kv[0]]),
        )
        labels.append(" · ".join(term for term, _ in scored[:n_terms]) or "misc")
    return labels


def cluster_text(fields: Mapping[str, str]) -> str:
    """The words a cluster label may be made of: a document's title, kind, tags, folders."""
    return " ".join(fields.get(k, "") for k in ("title", "kind", "tags", "folders", "triggers"))


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_READ_FLAGS |= getattr(os, "O_CLOEXEC", 0)


def _open_regular(path: Path) -> int:
    """A descriptor of the regular file at ``path``, never reached through a link.

    Raises ``FileNotFoundError`` when it is absent and ``ValueError`` (with the reason) when
    something else stands there (a link, a folder, a FIFO).
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("it is a symbolic link, not followed") from None
        raise ValueError(f"it cannot be opened ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError("it is a folder" if stat.S_ISDIR(mode) else "it is not a regular file")
    return fd


def _digest_of(handle) -> str:
    h = hashlib.blake2b(digest_size=16)
    for block in iter(lambda: handle.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    with os.fdopen(_open_regular(path), "rb") as handle:
        return _digest_of(handle)


def write_index(index: faiss.Index, path: Path) -> str:
    """Write the index atomically (temporary file + ``os.replace``); return its digest."""
    digests = []

    def write(tmp: str) -> None:
        try:
            faiss.write_index(index, tmp)
        except RuntimeError as exc:  # faiss reports a failed fwrite (disk full) this way
            raise OSError(
                errno.ENOSPC, f"faiss cannot write the vector file ({_last(exc)})"
            ) from None
        digests.append(file_digest(Path(tmp)))

    atomic_write(path, write)
    return digests[0]


def verify_file(path: Path, digest: str) -> None:
    """Raise ``ValueError`` if the file's content is not what was written (bit rot, truncation)."""
    if digest and file_digest(path) != digest:
        raise ValueError("its checksum does not match the catalog")


def max_index_bytes(rows: int, dim: int) -> int:
    """A generous bound on an IVF-flat file of ``rows`` × ``dim`` vectors: centroids, codes, ids,
    list sizes, direct map and headers. A bigger file is not parsed."""
    return 4 * 1024 * 1024 + MAX_CLUSTERS * (dim * 4 + 64) + rows * (dim * 4 + 64)


def _last(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1][:200] if lines else type(exc).__name__


def read_index(
    path: Path, expected_rows: int, expected_dim: int, digest: str | None = None
) -> faiss.Index:
    """Read and check an index file; raises ``ValueError`` with the reason when it is unusable
    (``FileNotFoundError`` when it is absent).

    Never through a link, never more bytes than such an index takes, the digest (when given)
    checked before faiss parses a byte, and whatever faiss raises on a crafted file — including
    ``MemoryError`` from sizes it believes — turned into that ``ValueError``.
    """
    with os.fdopen(_open_regular(path), "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if expected_rows < 0 or expected_dim < 0:
            raise ValueError("the catalog's row count or dimension is negative")
        if size > max_index_bytes(expected_rows, expected_dim):
            raise ValueError(
                f"it is {size} bytes, more than an index of {expected_rows}×{expected_dim} "
                "vectors takes"
            )
        if digest is not None:
            if not digest or _digest_of(handle) != digest:
                raise ValueError("its checksum does not match the catalog")
            handle.seek(0)
        try:
            if hasattr(faiss, "PyCallbackIOReader"):
                index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
            else:  # older faiss: parse from memory (still never by path)
                data = np.frombuffer(handle.read(), dtype=np.uint8)
                index = faiss.deserialize_index(data)
        except (RuntimeError, MemoryError, ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"faiss cannot read it ({type(exc).__name__}: {_last(exc)})") from None
    if index.ntotal != expected_rows or index.d != expected_dim:
        raise ValueError(
            f"it holds {index.ntotal}×{index.d} vectors, the catalog expects "
            f"{expected_rows}×{expected_dim}"
        )
    try:
        faiss.extract_index_ivf(index)
    except RuntimeError:
        raise ValueError("it is not an IVF index") from None
    return index
