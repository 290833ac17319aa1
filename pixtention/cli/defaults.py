"""The CLI's defaults are the WebUI's: one set of numbers, read from the WebUI's argument spec.

``pixtention.webui.args`` is plain data (no gradio, no WebUI modules), so reading it costs
nothing; whoever recalibrates a default changes it there and both front ends follow.
"""

from __future__ import annotations

from pixtention.webui.args import MODES, WebuiArgs

_WEBUI = WebuiArgs()
K: int = _WEBUI.k
CLUSTERS: int = _WEBUI.clusters
THRESHOLD: float = _WEBUI.threshold
PER_PHRASE: int = _WEBUI.per_phrase
MODE: str = _WEBUI.mode

__all__ = ["CLUSTERS", "K", "MODE", "MODES", "PER_PHRASE", "THRESHOLD"]


class SelectorDefault:
    """A default owned by the selector, imported only when shown (``--help``) or used."""

    def __init__(self, name: str) -> None:
        self.name = name

    def value(self) -> int:
        from pixtention.selector import probe

        return int(getattr(probe, self.name))

    def __str__(self) -> str:
        try:
            return str(self.value())
        except ImportError:  # --help in a Python without numpy still prints
            return f"the selector's {self.name}"


def resolve(value: object) -> int:
    """A parsed option's value, with a :class:`SelectorDefault` looked up."""
    if isinstance(value, SelectorDefault):
        return value.value()
    return int(str(value))
