"""Selector: from a prompt to the adapters it needs, each bound to the phrase it serves.

``select(prompt, library)`` returns :class:`Pick` objects (what is applied), ``rank(prompt,
library)`` :class:`Suggestion` objects (what is relevant, to pin from); ``apply_picks(prompt, picks)`` writes
their trigger words next to their phrases; ``parse_prompt`` reads WebUI prompt syntax.
``select`` is imported eagerly: it shares its name with its module, and a lazy export would be
shadowed by the submodule once anything imported it.
"""

from __future__ import annotations

from pixtention.lazy import lazy_exports
from pixtention.selector.select import select as select

_EXPORTS = {
    "Pick": "pixtention.selector.picks",
    "Suggestion": "pixtention.selector.picks",
    "rank": "pixtention.selector.select",
    "Evidence": "pixtention.selector.picks",
    "apply_picks": "pixtention.selector.triggers",
    "rewrite_prompt": "pixtention.selector.triggers",
    "parse_prompt": "pixtention.selector.prompt",
    "ParsedPrompt": "pixtention.selector.prompt",
    "Phrase": "pixtention.selector.prompt",
    "Scoring": "pixtention.selector.retrieval",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted([*_EXPORTS, "select"])
