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
