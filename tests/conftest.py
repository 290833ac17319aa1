"""Suite-wide set-up: no test may reach a model hub."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_unet():
    """One tiny real ldm UNet shared by read-only tests (copy it before mutating)."""
    from tests.rig.unet import tiny_unet as build

    return build()


# -- the end-to-end suite against real WebUIs (tests/real_webui/) --------------------------------
# Not part of the normal run: it unpacks and starts a real WebUI (minutes on a cold cache).
# `pytest tests/real_webui --real-webui a1111` (or forge, or a1111,forge) runs it.
_REAL_WEBUI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "real_webui")


def pytest_addoption(parser):
    parser.addoption(
        "--real-webui",
        action="store",
        default="",
        metavar="NAMES",
        help="run tests/real_webui against these real WebUIs (a1111, forge; comma separated)",
    )


def pytest_ignore_collect(collection_path, config):
    if str(collection_path).startswith(_REAL_WEBUI) and not config.getoption("--real-webui"):
        return True
    return None
