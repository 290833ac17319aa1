"""Integrator: apply each picked adapter only inside its concept's region, in one UNet pass.

``attach(unet, adapters, config)`` hooks a UNet for one generation (a context manager);
``token_positions`` finds a phrase's context indices; ``render_masks``/``masks_png`` draw the
masks. The maths lives in pure modules (``masks``, ``gating``); ``session`` owns every hook.
"""

from pixtention.integrator.config import (
    GatedAdapter,
    IntegratorError,
    MaskConfig,
    RowLayout,
    match_uncond,
)
from pixtention.integrator.render import masks_png, render_masks
from pixtention.integrator.session import Session, attach, detach_all
from pixtention.integrator.targets import AttachReport
from pixtention.integrator.tokens import clip_chunks, subprompt_positions, token_positions

__all__ = [
    "AttachReport",
    "GatedAdapter",
    "IntegratorError",
    "MaskConfig",
    "RowLayout",
    "Session",
    "attach",
    "clip_chunks",
    "detach_all",
    "masks_png",
    "match_uncond",
    "render_masks",
    "subprompt_positions",
    "token_positions",
]
