"""Which adapters a query scores: clusters first, within a budget counted in adapters.

Scoring is exact (every query row against every candidate), so its cost is rows × candidates;
the budget caps the candidates, not the clusters, because cluster sizes vary tenfold. Each row
of the query (the prompt, each phrase) probes its own nearest clusters, rank by rank in turn
(every row's nearest, then every row's second …): a phrase's best adapter is almost always
among that phrase's nearest neighbours, and the phrase that names a concept is rarely the one
whose clusters the whole prompt points to. Measured on 8.7k real Civitai adapters
(``bench/selector.py``), centroid similarity ranks the cluster of a phrase's best adapter
poorly (median 6th, 90th percentile 37th of 93), so a probe of a few clusters loses recall,
while probing rank by rank over all rows reaches far sooner. The default budget is
:data:`DEFAULT_BUDGET` adapters (about 20 clusters there), set for latency: at 10k adapters
select()'s p95 was 27 ms with 2,048, 32 ms with 4,096 and 34 ms with 8,192 (one query
thread, measured interleaved), and the cost is per candidate (scores, sorting), not only the
rows × candidates product. On 3,000 prompts the shipped hybrid, whose lexical top hits are
always scored, kept 1.00 of flat R@3 at 2,048 and 4,096; dense search alone kept 0.97–1.01
(a few prompts of ~150 hits either way, run to run). Splitting clusters into cells of 32–64
adapters, or probing by phrase-weighted similarity, did not help it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixtention.selector.retrieval import cosine

DEFAULT_BUDGET = 2048  # adapters scored exactly per query (plus the lexical top hits)


@dataclass(frozen=True)
class ClusterIndex:
    """Cluster centres and members as flat arrays: members of cluster c are
    ``ids[offsets[c]:offsets[c + 1]]``."""

    centroids: np.ndarray  # (C, d) unit rows
    ids: np.ndarray  # (N,) adapter ids grouped by cluster
    offsets: np.ndarray  # (C + 1,)

    @classmethod
    def build(cls, centroids: np.ndarray, assignment: np.ndarray) -> ClusterIndex:
        n_clusters = max(len(centroids), int(assignment.max()) + 1 if len(assignment) else 0)
        order = np.argsort(assignment, kind="stable")
        counts = np.bincount(assignment, minlength=n_clusters)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(np.asarray(centroids, dtype=np.float32), order.astype(np.int64), offsets)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


def probe_order(sims: np.ndarray) -> np.ndarray:
    """Clusters in probing order for query rows with centroid similarities ``sims`` (R, C):
    each cluster once, in order of its best rank over the rows (ties: the earlier row)."""
    order = np.argsort(-sims, axis=1, kind="stable")  # (R, C): each row's clusters, best first
    flat = order.T.ravel()  # rank 0 of every row, then rank 1 of every row …
    clusters, first = np.unique(flat, return_index=True)
    return clusters[np.argsort(first, kind="stable")]


def probe(
    index: ClusterIndex, queries: np.ndarray, clusters: int, budget: int = DEFAULT_BUDGET
) -> np.ndarray:
    """Adapter ids to score: clusters in :func:`probe_order` while the adapters covered stay
    within ``budget``, and at least the first ``clusters`` of them."""
    if len(index.centroids) == 0:
        return np.zeros(0, dtype=np.int64)
    sims = cosine(np.atleast_2d(queries), index.centroids)
    order = probe_order(sims)
    covered = np.cumsum(index.sizes[order])
    keep = (np.arange(len(order)) < clusters) | (covered <= budget)
    chosen = order[keep]
    if not len(chosen):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([index.ids[index.offsets[c] : index.offsets[c + 1]] for c in chosen])
