"""What each ``Script`` method of ``scripts/pixtention.py`` does, WebUI-independent.

Picks the flow (A1111 or Forge) per job, turns raw hook args into ``WebuiArgs`` (a bad API value
becomes a one-line error in the job's infotext and the console, and PixTention stays off for
that job), and detaches on any failure inside a hook.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pixtention.webui import settings
from pixtention.webui.a1111 import A1111Flow
from pixtention.webui.args import ArgsError, WebuiArgs, parse_args
from pixtention.webui.forge import ForgeFlow
from pixtention.webui.jobs import Job
from pixtention.webui.runtime import Runtime
from pixtention.webui.ui import BuiltUi, UiActions, build
from pixtention.webui.views import status_html, suggestions_html

ERROR_KEY = "PixTention error"
MORE = 5  # relevant adapters listed under the picks, not applied


def console(message: str) -> None:
    """One line in the WebUI's console, where its own messages go."""
    text = message if message.startswith("PixTention") else f"PixTention: {message}"
    print(text, file=sys.stderr, flush=True)


def _detach_on_error(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: ScriptHooks, p: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, p, *args, **kwargs)
        except BaseException:
            job = self.runtime.job_for(p)
            if job is not None:
                job.detach()
            raise

    return guarded


class ScriptHooks:
    def __init__(self, runtime: Runtime, *, every_sampling_hook: bool = True) -> None:
        self.runtime = runtime
        self.every_sampling_hook = every_sampling_hook

    def flow(self, p: Any) -> A1111Flow:
        cls = ForgeFlow if hasattr(p.sd_model, "forge_objects") else A1111Flow
        return cls(self.runtime, every_sampling_hook=self.every_sampling_hook)

    def defaults(self) -> WebuiArgs:
        opts = getattr(self.runtime.shared, "opts", None)
        return WebuiArgs(
            k=int(settings.read(opts, "pixtention_default_k")),
            threshold=float(settings.read(opts, "pixtention_default_threshold")),
        )

    # -- UI ---------------------------------------------------------------------------------

    def ui(self, is_img2img: bool, input_accordion: Callable[..., Any] | None) -> BuiltUi:
        tab = "img2img" if is_img2img else "txt2img"
        actions = UiActions(
            suggest=self.suggest_html, status=self.status_html, rebuild=self.rebuild
        )
        return build(tab, self.defaults(), actions, input_accordion=input_accordion)

    def suggest_html(self, tab: str, prompt: str, *values: Any) -> str:
        try:
            args = parse_args(values)
        except ArgsError as error:
            return suggestions_html(tab, prompt, [], note=str(error))
        family = None
        model = getattr(self.runtime.shared, "sd_model", None)
        if model is not None:
            from pixtention.webui.a1111 import base_family

            family = base_family(model)
        service = self.runtime.service
        try:
            picks = service.suggest(prompt, args, base_model=family)
            ranked = service.rank(prompt, args, base_model=family, k=args.k + MORE)
        except Exception as error:  # shown in the table: the user sees why nothing is suggested
            return suggestions_html(tab, prompt, [], note=f"Suggestions failed: {error}")
        note = ""
        if service.library() is None:
            note = "The library is not indexed yet."
        picked = {p.name for p in picks}
        more = [s for s in ranked if s.name not in picked][:MORE]
        return suggestions_html(tab, prompt, picks, note=note, more=more)

    def status_html(self) -> str:
        return status_html(self.runtime.service.status())

    def rebuild(self) -> str:
        self.runtime.service.start_index()
        return self.status_html()

    # -- generation -------------------------------------------------------------------------

    @_detach_on_error
    def process(self, p: Any, values: Sequence[Any]) -> None:
        try:
            args = parse_args(values)
        except ArgsError as error:
            # One line, not a traceback: the image is made without PixTention and says why.
            p.extra_generation_params[ERROR_KEY] = str(error)
            console(f"{error}; this image is made without PixTention")
            self.runtime.clean_up(self.flow(p).unet(p))
            return
        job = self.flow(p).process(p, args)
        self.runtime.start_job(p, job)

    def _job(self, p: Any) -> Job | None:
        return self.runtime.job_for(p)

    @_detach_on_error
    def before_process_batch(self, p: Any, batch_number: int, prompts: list[str]) -> None:
        job = self._job(p)
        if job is not None:
            self.flow(p).before_process_batch(p, job, batch_number, prompts)

    @_detach_on_error
    def process_batch(self, p: Any, prompts: list[str]) -> None:
        job = self._job(p)
        if job is not None:
            self.flow(p).process_batch(p, job, prompts)

    @_detach_on_error
    def before_every_sampling(self, p: Any) -> None:
        job = self._job(p)
        if job is not None:
            self.flow(p).before_every_sampling(p, job)

    @_detach_on_error
    def postprocess_batch(self, p: Any) -> None:
        job = self._job(p)
        if job is not None:
            self.flow(p).postprocess_batch(p, job)

    def postprocess(self, p: Any, processed: Any) -> None:
        job = self._job(p)
        if job is None:
            return
        try:
            self.flow(p).postprocess(p, job, processed)
        finally:
            job.detach()
            job.release(p)
            self.runtime.end_job(p)
