"""``modules.errors``: what the WebUI does with an exception it catches in a hook or callback.

As in both WebUIs: ``report`` prints the message (each line prefixed ``***``) and, with
``exc_info``, the whole indented traceback to stderr, then carries on; ``display`` prints the
exception with its traceback. Both keep the last few exceptions in ``exception_records`` (what the
WebUI's sysinfo shows). Nothing is collected silently: tests read the console (capfd).
"""

from __future__ import annotations

import sys
import textwrap
import traceback

exception_records: list[dict] = []


def record_exception() -> None:
    _, error, tb = sys.exc_info()
    if error is None:
        return
    if exception_records and exception_records[-1]["exception"] == str(error):
        return
    frames = [
        [f"{f.filename}, line {f.lineno}, {f.name}", f.line] for f in traceback.extract_tb(tb)
    ]
    exception_records.append({"exception": str(error), "traceback": frames})
    del exception_records[:-5]


def report(message: str, *, exc_info: bool = False) -> None:
    record_exception()
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        print(textwrap.indent(traceback.format_exc(), "    "), file=sys.stderr)
        print("---", file=sys.stderr)


def display(error: BaseException, task: str | None, *, full_traceback: bool = False) -> None:
    record_exception()
    print(f"{task or 'error'}: {type(error).__name__}", file=sys.stderr)
    print(*traceback.TracebackException.from_exception(error).format(), sep="", file=sys.stderr)
