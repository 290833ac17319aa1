"""``modules.shared``: settings (``opts``), command-line options, the loaded model, job state."""

from __future__ import annotations

import argparse
from typing import Any


class OptionInfo:
    """One setting: default, label, component; ``section=(id, label)`` groups it in Settings."""

    def __init__(
        self,
        default=None,
        label="",
        component=None,
        component_args=None,
        onchange=None,
        section=None,
        refresh=None,
        comment_before="",
        comment_after="",
        infotext=None,
        restrict_api=False,
        category_id=None,
    ):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.refresh = refresh
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api
        self.category_id = category_id
        self.do_not_save = False

    def info(self, info: str) -> OptionInfo:
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def needs_reload_ui(self) -> OptionInfo:
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


def options_section(section_identifier, options_dict: dict[str, OptionInfo]):
    for value in options_dict.values():
        if len(section_identifier) == 2:
            value.section = section_identifier
        else:
            value.section = section_identifier[0:2]
            value.category_id = section_identifier[2]
    return options_dict


class Options:
    """``opts.key`` reads the saved value or the registered default; unknown keys raise."""

    def __init__(self) -> None:
        object.__setattr__(self, "data_labels", {})
        object.__setattr__(self, "data", {})

    def add_option(self, key: str, info: OptionInfo) -> None:
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def __getattr__(self, item: str) -> Any:
        data = object.__getattribute__(self, "data")
        labels = object.__getattribute__(self, "data_labels")
        if item in data:
            return data[item]
        if item in labels:
            return labels[item].default
        raise AttributeError(f"'Options' object has no attribute '{item}'")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.data_labels:
            self.data[key] = value
            return
        object.__setattr__(self, key, value)


class State:
    interrupted = False
    skipped = False
    job = ""
    job_count = 0
    sampling_step = 0
    sampling_steps = 0

    def interrupt(self) -> None:
        self.interrupted = True


options_templates: dict[str, OptionInfo] = {}
opts = Options()
cmd_opts = argparse.Namespace(
    lora_dir="models/Lora",
    api_auth=None,
    api=True,
    nowebui=False,
    pixtention_index_dir=None,
    pixtention_no_autoindex=True,
)
state = State()
sd_model: Any = None
