"""``modules.extra_networks``: ``<name:args>`` prompt tags and the networks that act on them.

As in both WebUIs: ``parse_prompts`` strips every tag from every prompt and returns the first
prompt's tags for the whole batch; ``activate(p, data)`` calls each registered network (or alias)
named in ``data`` with its params, then every other registered network with ``[]`` (so it
unloads), then the scripts' ``after_extra_networks_activate``. Processing calls ``activate``
once per batch and again, with ``p.hr_extra_network_data``, before the hires pass.
"""

from __future__ import annotations

import re
from collections import defaultdict

from modules import errors

extra_network_registry: dict = {}
extra_network_aliases: dict = {}
re_extra_net = re.compile(r"<(\w+):([^>]+)>")


def initialize() -> None:
    extra_network_registry.clear()
    extra_network_aliases.clear()


def register_extra_network(extra_network) -> None:
    extra_network_registry[extra_network.name] = extra_network


def register_extra_network_alias(extra_network, alias: str) -> None:
    extra_network_aliases[alias] = extra_network


class ExtraNetworkParams:
    def __init__(self, items=None):
        self.items = items or []
        self.positional = []
        self.named = {}
        for item in self.items:
            parts = item.split("=", 2) if isinstance(item, str) else [item]
            if len(parts) == 2:
                self.named[parts[0]] = parts[1]
            else:
                self.positional.append(item)

    def __eq__(self, other):
        return self.items == other.items

    def __repr__(self):
        return f"ExtraNetworkParams(items={self.items!r})"


class ExtraNetwork:
    def __init__(self, name: str) -> None:
        self.name = name

    def activate(self, p, params_list) -> None:
        raise NotImplementedError

    def deactivate(self, p) -> None:
        raise NotImplementedError


def lookup_extra_networks(extra_network_data) -> dict:
    found: dict = {}
    for name, params in list((extra_network_data or {}).items()):
        network = extra_network_registry.get(name) or extra_network_aliases.get(name)
        if network is not None:
            found.setdefault(network, []).extend(params)
    return found


def activate(p, extra_network_data) -> None:
    activated = []
    for network, params in lookup_extra_networks(extra_network_data).items():
        try:
            network.activate(p, params)
            activated.append(network)
        except Exception as error:
            errors.display(
                error, f"activating extra network {network.name} with arguments {params}"
            )
    for name, network in extra_network_registry.items():
        if network in activated:
            continue
        try:
            network.activate(p, [])
        except Exception as error:
            errors.display(error, f"activating extra network {name}")
    if p.scripts is not None:
        p.scripts.after_extra_networks_activate(
            p,
            batch_number=p.iteration,
            prompts=p.prompts,
            seeds=p.seeds,
            subseeds=p.subseeds,
            extra_network_data=extra_network_data,
        )


def deactivate(p, extra_network_data) -> None:
    data = lookup_extra_networks(extra_network_data)
    for network in [*data, *(n for n in extra_network_registry.values() if n not in data)]:
        try:
            network.deactivate(p)
        except Exception as error:
            errors.display(error, f"deactivating extra network {network.name}")


def parse_prompt(prompt: str):
    res = defaultdict(list)

    def found(match):
        res[match.group(1)].append(ExtraNetworkParams(items=match.group(2).split(":")))
        return ""

    return re_extra_net.sub(found, prompt), res


def parse_prompts(prompts: list[str]):
    res = []
    extra_data = None
    for prompt in prompts:
        updated, parsed = parse_prompt(prompt)
        if extra_data is None:
            extra_data = parsed
        res.append(updated)
    return res, extra_data
