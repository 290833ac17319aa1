"""Last (files run in name order): after every request of the suite, the WebUI's console holds
no traceback and no error report (the WebUIs' ``errors.report`` prints ``*** Error …``) —
PixTention's own problems are one plain line each."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_console_free_of_tracebacks(webui):
    console = webui.console()
    assert "Startup time:" in console
    lines = console.splitlines()
    found = [i for i, line in enumerate(lines) if "Traceback" in line or "*** Error" in line]
    assert not found, "\n".join(lines[found[0] : found[0] + 40])
