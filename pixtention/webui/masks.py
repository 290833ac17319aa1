"""Mask overlay pictures of recent generations, for the gallery and ``/pixtention/v1/masks``.

Bounded: only the last few jobs are kept in memory (PNG bytes), oldest dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class MaskStore:
    """PNG overlays keyed by (job id, image index in the job)."""

    def __init__(self, max_jobs: int = 8) -> None:
        self._max_jobs = max_jobs
        self._jobs: OrderedDict[str, dict[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, job: str, image: int, png: bytes) -> None:
        with self._lock:
            self._jobs.setdefault(job, {})[image] = png
            self._jobs.move_to_end(job)
            while len(self._jobs) > self._max_jobs:
                self._jobs.popitem(last=False)

    def png(self, job: str, image: int) -> bytes | None:
        with self._lock:
            return self._jobs.get(job, {}).get(image)

    def listing(self) -> list[dict[str, object]]:
        """Newest job first, each with the URL of every image's overlay."""
        with self._lock:
            jobs = list(self._jobs.items())
        return [
            {
                "job": job,
                "images": [
                    {"image": i, "url": f"/pixtention/v1/masks/{job}/{i}.png"} for i in sorted(pngs)
                ],
            }
            for job, pngs in reversed(jobs)
        ]
