"""PixTention's always-on script: a thin shell over ``pixtention.webui``.

The WebUI executes this file by path (not as part of a package), so the extension root is put
on ``sys.path`` for ``import pixtention`` (A1111 only prepends it while loading). Only the
``Script`` subclass lives here: every class in this namespace that subclasses ``Script`` would be
registered, so nothing else is imported by name.
"""

from __future__ import annotations

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from modules import script_callbacks, scripts, shared  # noqa: E402

from pixtention.webui.hooks import ScriptHooks  # noqa: E402
from pixtention.webui.runtime import get_runtime  # noqa: E402

try:
    from modules.ui_components import InputAccordion
except ImportError:  # WebUIs before 1.7: a plain accordion with a checkbox inside
    InputAccordion = None

RUNTIME = get_runtime(shared)
HOOKS = ScriptHooks(
    RUNTIME,
    every_sampling_hook=hasattr(scripts.ScriptRunner, "process_before_every_sampling"),
)

script_callbacks.on_cfg_denoiser(RUNTIME.on_cfg_denoiser, name="pixtention")
script_callbacks.on_app_started(RUNTIME.on_app_started, name="pixtention")
script_callbacks.on_ui_settings(RUNTIME.on_ui_settings, name="pixtention")
script_callbacks.on_script_unloaded(RUNTIME.on_script_unloaded, name="pixtention")


class PixTentionScript(scripts.Script):
    sorting_priority = 15  # Forge: place it near the other regional tools

    def title(self):
        return "PixTention"

    def show(self, is_img2img):
        return scripts.AlwaysVisible if not is_img2img else False

    def ui(self, is_img2img):
        built = HOOKS.ui(is_img2img, InputAccordion)
        self.infotext_fields = built.infotext_fields
        self.paste_field_names = built.paste_field_names
        return built.components

    def process(self, p, *args):
        HOOKS.process(p, args)

    def before_process_batch(self, p, *args, batch_number=0, prompts=None, **kwargs):
        HOOKS.before_process_batch(p, batch_number, prompts if prompts is not None else p.prompts)

    def process_batch(self, p, *args, prompts=None, **kwargs):
        HOOKS.process_batch(p, prompts if prompts is not None else p.prompts)

    def process_before_every_sampling(self, p, *args, **kwargs):
        HOOKS.before_every_sampling(p)

    def postprocess_batch(self, p, *args, **kwargs):
        HOOKS.postprocess_batch(p)

    def postprocess(self, p, processed, *args):
        HOOKS.postprocess(p, processed)
