"""The state of one generation, from the first hook to ``postprocess``.

A ``Job`` holds the parsed args, the picks of each image, the integrator session of the current
batch and the guard that detaches it when sampling fails. The hook flows (``a1111.py``,
``forge.py``) fill it in; nothing here knows which WebUI it runs in.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pixtention.webui import infotext
from pixtention.webui.args import WebuiArgs

_MISSING = object()
_COUNTER = itertools.count(1)


@dataclass
class Job:
    """One generation; image indices are global (``batch_number × batch_size + row``)."""

    args: WebuiArgs
    flow: str  # "a1111" | "forge"
    id: str = field(default_factory=lambda: f"{next(_COUNTER)}-{uuid.uuid4().hex[:8]}")
    picks: dict[int, list[Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    batch_start: int = 0
    batch_size: int = 0
    gated: list[Any] = field(default_factory=list)  # GatedAdapters of the current batch
    session: Any = None
    masks: dict[int, Any] = field(default_factory=dict)  # image → masks [K, h, w] (cpu)
    mask_names: dict[int, tuple[str, ...]] = field(default_factory=dict)
    taken_tags: set[str] = field(default_factory=set)  # ``<lora:…>`` names PixTention applies
    cond_rows: int | None = None  # from on_cfg_denoiser (A1111)
    text_uncond: Any = None
    _saved_sample: Any = _MISSING

    def batch_picks(self) -> list[list[Any]]:
        """Picks of each image of the current batch, in row order."""
        return [self.picks.get(self.batch_start + i, []) for i in range(self.batch_size)]

    def keep_applied_picks(self) -> None:
        """Drop from the current batch's picks every one that is not gated on its image (its
        phrase was not found, or its file could not be loaded): what the infotext names ran."""
        for row in range(self.batch_size):
            image = self.batch_start + row
            self.picks[image] = [
                pick
                for pick in self.picks.get(image, [])
                if any(g.name == pick.name and g.positions[row] for g in self.gated)
            ]

    def infotext_value(self, index: int | None) -> str | None:
        """The ``PixTention`` infotext value of image ``index`` (None: nothing to record)."""
        if not self.args.enabled:
            return None
        picks = self.picks.get(index or 0, [])
        return infotext.encode(self.args, picks, self.notes)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    # -- the session of the current batch ---------------------------------------------------

    def detach(self) -> None:
        """Remove every hook of this job (safe to call any number of times)."""
        session, self.session = self.session, None
        if session is not None:
            session.detach()

    def keep_masks(self) -> None:
        """Copy the current batch's masks out of the session before it is detached."""
        session = self.session
        if session is None or not session.adapters:
            return
        masks = session.masks()
        for row in range(min(self.batch_size, masks.shape[0])):
            own = [k for k, adapter in enumerate(session.adapters) if adapter.positions[row]]
            if own:
                self.masks[self.batch_start + row] = masks[row, own]
                self.mask_names[self.batch_start + row] = tuple(session.names[k] for k in own)

    # -- failure guard ----------------------------------------------------------------------

    def guard_sampling(self, p: Any) -> None:
        """Detach when sampling raises: the WebUI skips ``postprocess`` then (no ``finally``).

        Wraps ``p.sample`` on this processing object only (never a class); ``release`` puts
        back whatever was there before.
        """
        if self._saved_sample is not _MISSING:
            return
        self._saved_sample = p.__dict__.get("sample", None)
        original: Callable[..., Any] = p.sample

        def sample(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            except BaseException:
                self.detach()
                raise

        p.sample = sample

    def release(self, p: Any) -> None:
        saved, self._saved_sample = self._saved_sample, _MISSING
        if saved is _MISSING:
            return
        if saved is None:
            p.__dict__.pop("sample", None)
        else:
            p.sample = saved


class InfotextValue:
    """A per-image ``extra_generation_params`` value (the WebUI calls it with ``index=``)."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def __call__(self, **kwargs: Any) -> str | None:
        return self._job.infotext_value(image_index(kwargs))

    def __str__(self) -> str:  # WebUIs before callables were supported print the first image's
        return self._job.infotext_value(0) or ""


def image_index(create_infotext_locals: dict[str, Any]) -> int:
    """The job-wide image number of an infotext call (the WebUI passes its ``locals()``).

    Inside the batch loop the WebUIs pass the position in the *batch* as ``index`` with the
    batch's own prompt list; afterwards (``Processed``, hires) the job-wide position with
    ``p.all_prompts``. The grid's text (``use_main_prompt``) is the first image's.
    """
    kw = create_infotext_locals
    if kw.get("use_main_prompt"):
        return 0
    index = int(kw.get("index") or 0)
    p = kw.get("p")
    if p is None or kw.get("all_prompts") is getattr(p, "all_prompts", None):
        return index
    return int(getattr(p, "iteration", 0) or 0) * int(getattr(p, "batch_size", 1) or 1) + index


def unique_adapters(batch: Sequence[Sequence[Any]]) -> list[Any]:
    """Every distinct pick (by fingerprint) of a batch, first occurrence first."""
    seen: dict[str, Any] = {}
    for picks in batch:
        for pick in picks:
            seen.setdefault(pick.fingerprint or pick.path, pick)
    return list(seen.values())
