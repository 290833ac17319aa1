"""HTML fragments the UI shows: the suggestion table and the index status line.

Pure string functions (escaped), so they are tested without a browser. The buttons carry
``data-pixtention-*`` attributes that ``javascript/pixtention.js`` acts on; no Gradio-internal
classes are involved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from pixtention.webui.service import IndexStatus


def suggestions_html(
    tab: str, prompt: str, picks: Sequence[Any], note: str = "", more: Sequence[Any] = ()
) -> str:
    """The live suggestion table for ``prompt`` (one row per pick, with its actions), then the
    relevant adapters that were not picked (``more``, ``select.rank``), each with a Pin."""
    if not prompt.strip():
        body = '<p class="pixtention-empty">Type a prompt to see suggestions.</p>'
    elif not picks:
        body = f'<p class="pixtention-empty">{escape(note or "No adapter fits this prompt.")}</p>'
    else:
        rows = "".join(_row(pick) for pick in picks)
        body = (
            '<table class="pixtention-table"><thead><tr><th>Adapter</th><th>Phrase</th>'
            "<th>Score</th><th>Weight</th><th>Triggers</th><th>Theme</th><th>Alternates</th>"
            "<th></th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
        if note:
            body += f'<p class="pixtention-note">{escape(note)}</p>'
    if prompt.strip() and more:
        body += _more(more)
    return (
        f'<div class="pixtention-suggestions" data-pixtention-tab="{escape(tab)}" '
        f'data-pixtention-prompt="{escape(prompt)}">{body}</div>'
    )


def _row(pick: Any) -> str:
    triggers = ", ".join(pick.triggers)
    data = {
        "name": pick.name,
        "hash": pick.short_hash or "",
        "weight": f"{pick.weight:g}",
        "phrase": pick.phrase or "",
        "triggers": triggers,
    }
    attrs = " ".join(f'data-pixtention-{key}="{escape(value)}"' for key, value in data.items())
    actions = "".join(
        f'<button type="button" class="pixtention-action" data-pixtention-action="{action}" '
        f'{attrs} title="{escape(hint)}">{label}</button>'
        for action, label, hint in (
            ("add", "Add", "add <lora:…> and its trigger words to the prompt"),
            ("pin", "Pin", "always use this adapter"),
            ("exclude", "Exclude", "never pick this adapter"),
        )
    )
    kind = getattr(pick, "concept_kind", "")
    scope = " (whole image)" if getattr(pick, "scope", "phrase") == "prompt" else ""
    alternates = ", ".join(f"{a.name} {a.score:.2f}" for a in getattr(pick, "alternates", ()))
    return (
        f'<tr data-pixtention-row="{escape(pick.name)}">'
        f'<td title="{escape(pick.path)}">{escape(pick.name)}'
        + (f' <span class="pixtention-kind">{escape(kind)}</span>' if kind else "")
        + "</td>"
        f"<td>{escape(pick.phrase or '—')}{scope}</td>"
        f"<td>{pick.score:.2f}</td><td>{pick.weight:g}</td>"
        f"<td>{escape(triggers)}</td><td>{escape(pick.cluster_label)}</td>"
        f'<td class="pixtention-alternates" title="next ranked for this phrase">'
        f"{escape(alternates or '—')}</td>"
        f'<td class="pixtention-actions">{actions}</td></tr>'
    )


def _more(more: Sequence[Any]) -> str:
    """Relevant adapters not applied (a character the prompt does not name, a phrase another
    adapter took): pinning one applies it."""
    items = "".join(
        f'<li data-pixtention-more="{escape(s.name)}">{escape(s.name)} '
        + (
            f'<span class="pixtention-kind">{escape(s.concept_kind)}</span> '
            if s.concept_kind
            else ""
        )
        + f"{s.score:.2f} "
        f'<button type="button" class="pixtention-action" data-pixtention-action="pin" '
        f'data-pixtention-name="{escape(s.name)}" title="always use this adapter">Pin</button></li>'
        for s in more
    )
    return (
        '<div class="pixtention-more"><span title="relevant to the prompt but not applied; pin '
        'one to use it">Also relevant, not applied:</span>'
        f'<ul class="pixtention-more-list">{items}</ul></div>'
    )


def status_html(status: IndexStatus) -> str:
    """Index status with a progress bar; ``data-pixtention-busy`` tells the JS to keep polling."""
    busy = status.state == "indexing"
    if busy:
        eta = f", about {status.eta:.0f} s left" if status.eta else ""
        text = f"Indexing ({status.stage}) {status.done}/{status.total}{eta}"
    elif status.state == "ready":
        text = f"{status.adapters} adapters indexed"
    elif status.state == "missing":
        text = status.error or "No Lora folder"
    elif status.state in ("error", "cancelled"):
        text = f"Index {status.state}: {status.error}"
    else:
        text = "Not indexed yet: press Rebuild index"
    percent = round(status.fraction * 100 if busy else (100 if status.state == "ready" else 0))
    payload = escape(json.dumps(status.to_dict()))
    return (
        f'<div class="pixtention-status" data-pixtention-busy="{"1" if busy else "0"}" '
        f'data-pixtention-state="{escape(status.state)}" data-pixtention-status="{payload}">'
        f'<div class="pixtention-progress"><div class="pixtention-progress-bar" '
        f'style="width:{percent}%"></div></div>'
        f'<span class="pixtention-status-text">{escape(text)}</span></div>'
    )
