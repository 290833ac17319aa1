"""``modules.scripts``: the Script base class and the runner that calls hooks in the real order.

Hook exceptions are reported and swallowed, as in the WebUI; ``ordered_scripts`` only calls
scripts that override a hook. ``api_script_args`` is the API's ``alwayson_scripts`` handling:
defaults from a fresh ``ui()`` call, request values copied over, shorter lists keep defaults.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import gradio as gr

from modules import errors


class AlwaysVisible:
    pass


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_image(self, p, pp, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_hr(self, p, *args):
        pass

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"


HOOKS = (
    "setup",
    "before_process",
    "process",
    "before_process_batch",
    "after_extra_networks_activate",
    "process_batch",
    "process_before_every_sampling",
    "before_hr",
    "postprocess_batch",
    "postprocess",
)


class ScriptRunner:
    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.selectable_scripts: list[Script] = []
        self.alwayson_scripts: list[Script] = []
        self.titles: list[str] = []
        self.infotext_fields: list[tuple[Any, Any]] = []
        self.paste_field_names: list[str] = []
        self.inputs: list[Any] = [None]
        self.is_img2img = False

    def initialize_scripts(self, is_img2img: bool, script_classes) -> None:
        self.is_img2img = is_img2img
        for script_class in script_classes:
            script = script_class()
            script.filename = inspect.getfile(script_class)
            script.is_img2img = is_img2img
            script.is_txt2img = not is_img2img
            visibility = script.show(is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)

    def create_script_ui(self) -> None:
        """Call every always-on script's ``ui()`` (inside the caller's ``gr.Blocks``)."""
        for script in self.alwayson_scripts:
            with gr.Group(visible=script.alwayson):
                self.create_script_ui_inner(script)

    def create_script_ui_inner(self, script: Script) -> None:
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        controls = script.ui(script.is_img2img)
        if controls is None:
            return
        script.name = script.title().lower()
        self.inputs += controls
        script.args_to = len(self.inputs)
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names

    def ordered_scripts(self, method_name: str) -> list[Script]:
        base = getattr(Script, method_name)
        return [s for s in self.alwayson_scripts if getattr(type(s), method_name, base) is not base]

    def _run(self, method_name: str, p, *extra, **kwargs) -> None:
        for script in self.ordered_scripts(method_name):
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                getattr(script, method_name)(p, *extra, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {method_name}: {script.filename}", exc_info=True)

    def setup_scrips(self, p, *, is_ui=True) -> None:
        self._run("setup", p)

    def before_process(self, p) -> None:
        self._run("before_process", p)

    def process(self, p) -> None:
        self._run("process", p)

    def before_process_batch(self, p, **kwargs) -> None:
        self._run("before_process_batch", p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs) -> None:
        self._run("after_extra_networks_activate", p, **kwargs)

    def process_batch(self, p, **kwargs) -> None:
        self._run("process_batch", p, **kwargs)

    def process_before_every_sampling(self, p, **kwargs) -> None:
        self._run("process_before_every_sampling", p, **kwargs)

    def before_hr(self, p) -> None:
        self._run("before_hr", p)

    def postprocess_batch(self, p, images, **kwargs) -> None:
        self._run("postprocess_batch", p, images=images, **kwargs)

    def postprocess(self, p, processed) -> None:
        self._run("postprocess", p, processed)


class ApiError(Exception):
    """What the API turns into an HTTP 422."""


def default_script_args(runner: ScriptRunner) -> list[Any]:
    """As ``Api.init_default_script_args``: each script's ``ui()`` in a throw-away Blocks."""
    last = max((s.args_to for s in runner.alwayson_scripts), default=1)
    args: list[Any] = [None] * last
    args[0] = 0
    with gr.Blocks():
        for script in runner.alwayson_scripts:
            controls = script.ui(script.is_img2img)
            if controls:
                args[script.args_from : script.args_to] = [c.value for c in controls]
    return args


def api_script_args(runner: ScriptRunner, alwayson_scripts: dict[str, dict[str, Any]]):
    """As ``Api.init_script_args``: defaults, then each named script's request args over them."""
    script_args = default_script_args(runner)
    titles = [s.title().lower() for s in runner.scripts]
    for name, request in alwayson_scripts.items():
        if name.lower() not in titles:
            raise ApiError(f"Script '{name}' not found")
        script = runner.scripts[titles.index(name.lower())]
        if not script.alwayson:
            raise ApiError("Cannot have a selectable script in the always on scripts params")
        values = request.get("args", [])
        for idx in range(0, min(script.args_to - script.args_from, len(values))):
            script_args[script.args_from + idx] = values[idx]
    return script_args
