"""``modules.extra_networks``: ``<name:args>`` tags are stripped from prompts before encoding."""

from __future__ import annotations

import re
from collections import defaultdict

re_extra_net = re.compile(r"<(\w+):([^>]+)>")


class ExtraNetworkParams:
    def __init__(self, items=None):
        self.items = items or []
        self.positional = [i for i in self.items if "=" not in i]
        self.named = dict(i.split("=", 1) for i in self.items if "=" in i)

    def __eq__(self, other):
        return self.items == other.items

    def __repr__(self):
        return f"ExtraNetworkParams(items={self.items!r})"


def parse_prompt(prompt: str):
    res = defaultdict(list)

    def found(match):
        res[match.group(1)].append(ExtraNetworkParams(items=match.group(2).split(":")))
        return ""

    return re_extra_net.sub(found, prompt), res


def parse_prompts(prompts: list[str]):
    """Strip every prompt; like the WebUI, the first prompt's tags count for the whole batch."""
    res = []
    extra_data = None
    for prompt in prompts:
        updated, parsed = parse_prompt(prompt)
        if extra_data is None:
            extra_data = parsed
        res.append(updated)
    return res, extra_data
