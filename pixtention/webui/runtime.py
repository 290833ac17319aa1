"""What lives as long as the WebUI process: the library service, mapped adapters, mask pictures,
the jobs in flight, and the callbacks the script registers.

One instance per process (``get_runtime``), kept across "Reload UI" (this module stays in
``sys.modules`` while the script file is re-executed), so the index thread and caches survive
and a reload can detach whatever a job left behind.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import weakref
from collections import OrderedDict
from typing import Any

from pixtention.webui import settings
from pixtention.webui.jobs import Job
from pixtention.webui.masks import MaskStore
from pixtention.webui.service import LibraryService

_ADAPTER_CACHE = 16


class Runtime:
    def __init__(self, shared: Any, service: LibraryService | None = None) -> None:
        self.shared = shared
        self.masks = MaskStore()
        self._service = service
        self._lock = threading.Lock()
        self._adapters: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._hashes: dict[str, str] = {}  # fingerprint → AutoV2 of picked files
        # Keyed by identity: the WebUIs' processing classes are dataclasses, hence unhashable.
        # The weak reference drops a job whose ``p`` died without ``postprocess`` (a failed job).
        self._jobs: dict[int, tuple[weakref.ref[Any], Job]] = {}
        self._jobs_lock = threading.RLock()  # re-entrant: ``forget`` may run inside a GC pass

    # -- the library ------------------------------------------------------------------------

    @property
    def service(self) -> LibraryService:
        with self._lock:
            if self._service is None:
                opts, cmd_opts = self.shared.opts, self.shared.cmd_opts
                lora_dir = getattr(cmd_opts, "lora_dir", None) or "models/Lora"
                self._service = LibraryService(
                    lora_dir,
                    settings.index_dir(opts, cmd_opts, lora_dir),
                    captions=bool(settings.read(opts, "pixtention_captions")),
                    index_options=_index_options(opts),
                )
            return self._service

    def mapped_adapter(self, pick: Any, unet: Any, job: Job) -> Any:
        """The pick's UNet deltas keyed by ``unet``'s module names (cached), or None + a note."""
        from pixtention.library.errors import LibraryError
        from pixtention.library.keymap import map_to_model
        from pixtention.library.weights import load_weights

        key = (pick.fingerprint or pick.path, id(unet))
        with self._lock:
            if key in self._adapters:
                self._adapters.move_to_end(key)
                return self._adapters[key]
        try:
            mapped = map_to_model(load_weights(pick.path), unet.named_modules())
        except LibraryError as error:
            job.note(f"{pick.name}: {error.reason}")
            return None
        except Exception as error:  # e.g. the file changed since indexing: skip it, say so
            job.note(f"{pick.name}: could not be loaded ({type(error).__name__}: {error})")
            return None
        if not mapped.targets:
            job.note(f"{pick.name}: none of its modules exist in this model; skipped")
            return None
        if mapped.unmatched:
            job.note(f"{pick.name}: {len(mapped.unmatched)} keys match no module of this model")
        with self._lock:
            self._adapters[key] = mapped
            while len(self._adapters) > _ADAPTER_CACHE:
                self._adapters.popitem(last=False)
        return mapped

    def with_hash(self, pick: Any) -> Any:
        """``pick`` with its AutoV2 short hash, hashed once per file per process when the
        index did not record one: infotexts name the exact file, so a replay finds it."""
        if pick.short_hash:
            return pick
        from pixtention.library.errors import LibraryError
        from pixtention.library.hashes import file_hashes

        key = pick.fingerprint or pick.path
        with self._lock:
            short = self._hashes.get(key)
        if short is None:
            try:
                short = file_hashes(pick.path).autov2
            except LibraryError:
                return pick
            with self._lock:
                self._hashes[key] = short
        return dataclasses.replace(pick, short_hash=short)

    # -- jobs -------------------------------------------------------------------------------

    def start_job(self, p: Any, job: Job) -> None:
        key = id(p)

        def forget(_ref: Any) -> None:
            with self._jobs_lock:
                entry = self._jobs.get(key)
                if entry is not None and entry[0] is _ref:
                    del self._jobs[key]

        with self._jobs_lock:
            self._jobs[key] = (weakref.ref(p, forget), job)

    def job_for(self, p: Any) -> Job | None:
        if p is None:
            return None
        with self._jobs_lock:
            entry = self._jobs.get(id(p))
        return entry[1] if entry is not None and entry[0]() is p else None

    def end_job(self, p: Any) -> None:
        with self._jobs_lock:
            entry = self._jobs.get(id(p))
            if entry is not None and entry[0]() is p:
                del self._jobs[id(p)]

    def _all_jobs(self) -> list[Job]:
        with self._jobs_lock:
            return [job for _, job in self._jobs.values()]

    def clean_up(self, unet: Any) -> None:
        """Before a job: remove hooks any earlier job failed to remove."""
        from pixtention.integrator.session import detach_all

        for job in self._all_jobs():
            job.detach()
        detach_all(unet)

    def publish_masks(self, job: Job, processed: Any) -> None:
        """Mask overlays: kept for ``/pixtention/v1/masks``; added to the gallery if asked."""
        if not job.masks:
            return
        from pixtention.integrator.render import masks_png, render_masks

        images = list(getattr(processed, "images", []))
        first = int(getattr(processed, "index_of_first_image", 0))
        for index in sorted(job.masks):
            names = job.mask_names[index]
            base = images[first + index] if first + index < len(images) else None
            picture = render_masks(job.masks[index], names, image=base)
            self.masks.put(job.id, index, masks_png(job.masks[index], names, image=base))
            if job.args.show_masks:
                processed.images.append(picture)
                infotexts = getattr(processed, "infotexts", None)
                if isinstance(infotexts, list) and len(infotexts) > first + index:
                    infotexts.append(infotexts[first + index])

    # -- callbacks --------------------------------------------------------------------------

    def on_cfg_denoiser(self, params: Any) -> None:
        denoiser = getattr(params, "denoiser", None)
        job = self.job_for(getattr(denoiser, "p", None))
        if job is not None:
            from pixtention.webui.a1111 import A1111Flow
            from pixtention.webui.forge import ForgeFlow

            flow = ForgeFlow(self) if job.flow == "forge" else A1111Flow(self)
            flow.on_cfg_denoiser(job, params)

    def on_app_started(self, demo: Any, app: Any) -> None:
        from pixtention.webui.routes import build_router, route_credentials, routes_enabled

        cmd_opts = self.shared.cmd_opts
        if routes_enabled(cmd_opts):
            try:
                credentials = route_credentials(cmd_opts)
            except (OSError, ValueError) as error:
                print(f"PixTention: REST routes not mounted: {error}", file=sys.stderr)
            else:
                app.include_router(build_router(self.service, self.masks, credentials=credentials))
        no_autoindex = getattr(self.shared.cmd_opts, "pixtention_no_autoindex", False)
        if settings.read(self.shared.opts, "pixtention_autoindex") and not no_autoindex:
            self.service.start_index()

    def on_ui_settings(self) -> None:
        import gradio as gr

        settings.register(self.shared, gr)

    def on_script_unloaded(self) -> None:
        for job in self._all_jobs():
            job.detach()


def _index_options(opts: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"device": settings.read(opts, "pixtention_device")}
    for key, option in (("embedder", "pixtention_embedder"), ("captioner", "pixtention_captioner")):
        value = settings.read(opts, option)
        if value:
            options[key] = value
    return options


_RUNTIME: Runtime | None = None


def get_runtime(shared: Any) -> Runtime:
    """The process-wide runtime (created on first use)."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = Runtime(shared)
    return _RUNTIME


def reset_runtime(runtime: Runtime | None = None) -> None:
    """Replace the process-wide runtime (tests point it at their own folder)."""
    global _RUNTIME
    _RUNTIME = runtime
