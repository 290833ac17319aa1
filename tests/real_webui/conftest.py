"""Fixtures of the end-to-end suite: one real WebUI server per WebUI and session, and a client.

Runs only with ``--real-webui NAMES`` (see ``tests/conftest.py``). Progress lines go straight to
the terminal (not captured), so a CI log shows what a minutes-long set-up is doing.
"""

from __future__ import annotations

import time

import pytest

from tests.real_webui.client import Client, payload
from tests.real_webui.harness import SPECS, HarnessError, RealWebui


def pytest_generate_tests(metafunc):
    if "webui_name" in metafunc.fixturenames:
        names = [n.strip() for n in metafunc.config.getoption("--real-webui").split(",")]
        unknown = [n for n in names if n not in SPECS]
        if unknown:
            raise pytest.UsageError(f"--real-webui: unknown {unknown}; choose from {list(SPECS)}")
        metafunc.parametrize("webui_name", names, scope="session")


@pytest.fixture(scope="session")
def terminal(pytestconfig):
    """``say(text)`` printing past pytest's capture, and a runner with capture off."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    started = time.monotonic()

    def uncaptured(fn):
        if capman is None:
            return fn()
        with capman.global_and_fixture_disabled():
            return fn()

    def make_say(name: str):
        def say(text: str) -> None:
            line = f"[e2e {name} +{time.monotonic() - started:6.1f}s] {text}"
            uncaptured(lambda: print(line, flush=True))

        return say

    return make_say, uncaptured


@pytest.fixture(scope="session")
def webui(webui_name, terminal):
    """The running WebUI with PixTention installed (started once per WebUI and session)."""
    make_say, uncaptured = terminal
    server = RealWebui(webui_name, say=make_say(webui_name), run_unbuffered=uncaptured)
    try:
        server.prepare()
        server.start()
    except HarnessError as error:
        server.clean_up()
        pytest.fail(f"{webui_name}: {error}", pytrace=False)
    except BaseException:
        server.clean_up()
        raise
    server.client = Client(server)
    # The reference image, taken before any PixTention job has touched the model.
    server.baseline = server.client.txt2img(payload())
    yield server
    server.say("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in server.timings.items()))
    server.clean_up()


@pytest.fixture
def api(webui):
    return webui.client
