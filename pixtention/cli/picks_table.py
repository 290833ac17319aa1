"""The ``suggest`` table: one row per pick and its evidence, within :data:`WIDTH` columns.

A terminal of about 100 columns is the narrowest common one (a split pane, a laptop); the old
126-column table wrapped every row there. Only the completed prompt may run longer: it is meant
to be copied whole.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from pixtention.library.display import terminal_safe

WIDTH = 100
_COLUMNS = (("adapter", 22), ("phrase", 22), ("triggers", 16), ("theme", 16))
_MARKS = {"pinned": " (pin)", "user": " (tag)"}  # auto picks carry no mark


def _cell(text: str, width: int) -> str:
    text = terminal_safe(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def _theme(label: str, width: int) -> str:
    """A cluster label ("style · styles · background") cut at a whole part when it is long."""
    shown = ""
    for part in label.split(" · "):
        joined = f"{shown} · {part}" if shown else part
        if len(joined) > width:
            break
        shown = joined
    return shown or _cell(label, width)


def pick_rows(picks: Sequence[Any]) -> list[str]:
    """Header, rule and one line per pick."""
    (_, name_w), (_, phrase_w), (_, trig_w), (_, theme_w) = _COLUMNS
    header = (
        f"{'#':>2}  {'adapter':<{name_w}} {'score':>5} {'weight':>6}  "
        f"{'phrase':<{phrase_w}} {'triggers':<{trig_w}} {'theme':<{theme_w}}"
    )
    lines = [header, "-" * len(header)]
    for i, p in enumerate(picks, 1):
        name = _cell(p.name, name_w - len(_MARKS.get(p.source, ""))) + _MARKS.get(p.source, "")
        lines.append(
            f"{i:>2}  {name:<{name_w}} {p.score:>5.2f} {p.weight:>6.2f}  "
            f"{_cell(p.phrase or '(whole prompt)', phrase_w):<{phrase_w}} "
            f"{_cell(', '.join(p.triggers), trig_w):<{trig_w}} "
            f"{_theme(p.cluster_label, theme_w):<{theme_w}}"
        )
    return [line.rstrip() for line in lines]


def evidence_lines(picks: Sequence[Any]) -> list[str]:
    """Why each pick was made: its kind, the document fields that share words with the
    prompt, and the next ranked adapters for its phrase."""
    lines: list[str] = []
    for p in picks:
        matched = "; ".join(f"{m.field}: {', '.join(m.terms)}" for m in p.evidence.matched)
        about = f"{p.concept_kind}{', whole image' if p.scope == 'prompt' else ''}"
        others = ", ".join(f"{a.name} {a.score:.2f}" for a in p.alternates)
        said = "; ".join(
            part
            for part in (
                f"({about})" if p.concept_kind else "",
                f"matched {matched}" if matched else "",
                f"alternates {others}" if others else "",
            )
            if part
        )
        if said:
            lines += textwrap.wrap(
                f"{terminal_safe(p.name)}: {said}",
                WIDTH,
                initial_indent="    ",
                subsequent_indent="      ",
            )
    return lines


def _suggestion(s: Any) -> str:
    return f"{terminal_safe(s.name)} {s.score:.2f}" + (
        f" ({s.concept_kind})" if s.concept_kind else ""
    )


def more_lines(more: Sequence[Any]) -> list[str]:
    """Relevant adapters that were not picked (``select.rank``), for the user to pin."""
    if not more:
        return []
    text = "also relevant, not applied (--pin NAME to use one): "
    text += ", ".join(_suggestion(s) for s in more)
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ")


def ranked_rows(ranked: Sequence[Any]) -> list[str]:
    """``suggest --ranked``: one line per suggestion, best first."""
    (_, name_w), (_, phrase_w) = _COLUMNS[:2]
    header = f"{'#':>2}  {'adapter':<{name_w}} {'score':>5}  {'kind':<10} {'phrase':<{phrase_w}}"
    lines = [header, "-" * len(header)]
    for i, s in enumerate(ranked, 1):
        lines.append(
            f"{i:>2}  {_cell(s.name, name_w):<{name_w}} {s.score:>5.2f}  "
            f"{_cell(s.concept_kind or '?', 10):<10} {_cell(s.phrase or '(whole prompt)', phrase_w)}"
        )
    return [line.rstrip() for line in lines]


def table(picks: Sequence[Any], completed_prompt: str, more: Sequence[Any] = ()) -> str:
    """The whole ``suggest`` output for a non-empty list of picks (and the relevant adapters
    not picked, ``more``)."""
    lines = pick_rows(picks) + evidence_lines(picks) + more_lines(more)
    lines += ["", "prompt with triggers:", terminal_safe(completed_prompt)]
    return "\n".join(lines)
