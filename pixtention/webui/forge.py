"""The hook flow on Forge 2: as on A1111, except where the UNet lives and how it is called.

Forge re-copies ``forge_objects`` from ``forge_objects_after_applying_lora`` right before every
``process_before_every_sampling``, and calls that hook twice for the hires pass (the first set of
patches is thrown away). So each call clones the UNet patcher, (re-)attaches the torch hooks on
its shared ``model.diffusion_model`` — re-attaching removes the previous hooks, which makes the
double call harmless — and sets a UNet function wrapper that reads ``cond_or_uncond`` for the
row layout of every call. Prompts tokenise through ``text_processing_engine``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pixtention.webui.a1111 import A1111Flow, TokenizeLine
from pixtention.webui.jobs import Job


class ForgeFlow(A1111Flow):
    name = "forge"

    def unet(self, p: Any) -> Any:
        return p.sd_model.forge_objects.unet.model.diffusion_model

    def tokenize_line(self, p: Any) -> TokenizeLine:
        model = p.sd_model
        engine = getattr(model, "text_processing_engine", None)
        if engine is None:
            engine = model.text_processing_engine_l  # SDXL: CLIP-L sees the same tokens
        return lambda text: [list(chunk.tokens) for chunk in engine.tokenize_line(text)[0]]

    def before_every_sampling(self, p: Any, job: Job) -> None:
        if not job.gated:
            return
        patcher = p.sd_model.forge_objects.unet.clone()
        self.install(p, job, patcher.model.diffusion_model)
        inner = patcher.model_options.get("model_function_wrapper")
        patcher.set_model_unet_function_wrapper(_row_wrapper(job, inner))
        p.sd_model.forge_objects.unet = patcher

    def row_layout(self, job: Job) -> Any:
        return None  # set per call by the wrapper below

    def on_cfg_denoiser(self, job: Job, params: Any) -> None:
        """Forge's wrapper says which rows are cond; steps are inferred from the timestep."""


def _row_wrapper(job: Job, inner: Callable[..., Any] | None) -> Callable[..., Any]:
    """A ``model_function_wrapper`` that tells the session each call's cond/uncond rows."""
    from pixtention.integrator.config import RowLayout

    def wrapper(apply_model: Callable[..., Any], args: dict[str, Any]) -> Any:
        session = job.session
        if session is not None:
            chunks = list(args["cond_or_uncond"])
            rows = int(args["input"].shape[0])
            per_chunk = rows // len(chunks)
            session.set_row_layout(
                RowLayout(
                    tuple(r % per_chunk for r in range(rows)),
                    tuple(chunks[r // per_chunk] == 0 for r in range(rows)),
                )
            )
        if inner is not None:
            return inner(apply_model, args)
        return apply_model(args["input"], args["timestep"], **args["c"])

    return wrapper
