"""``modules.errors``: the WebUI reports hook exceptions and carries on; we keep them for tests."""

from __future__ import annotations

import traceback

reported: list[str] = []


def report(message: str, *, exc_info: bool = False) -> None:
    text = message
    if exc_info:
        text += "\n" + traceback.format_exc()
    reported.append(text)
