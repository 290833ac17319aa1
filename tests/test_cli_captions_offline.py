"""Issue 15 item 4: the first index never silently waits on a ~1 GB captioning download.

Offline (``HF_HUB_OFFLINE``) and not cached: captions are off at once, said in one line that
names the model and its download size, with no hub call at all. A model in the local cache loads
without touching the network even when offline mode is not set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pixtention.cli import main, models
from pixtention.curator import captioner as captioner_module
from pixtention.curator.captioner import (
    DEFAULT_CAPTIONER,
    DOWNLOAD_SIZES,
    CaptionerError,
    TransformersCaptioner,
)
from tests.test_curator_captioner import tiny_blip  # noqa: F401 (fixture)
from tests.test_curator_fixtures import HashEmbedder, write_lora

REPO = Path(__file__).resolve().parents[1]


def _no_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any transformers loader call fail loudly; returns the list of attempted loads."""
    import transformers

    calls: list[str] = []

    def refuse(*args, **kwargs):
        calls.append(str(args[:1]))
        raise AssertionError("a hub loader was called")

    for name in ("AutoConfig", "BlipProcessor", "BlipForConditionalGeneration"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", refuse)
    return calls


def test_offline_and_not_cached_says_what_and_how_big_without_any_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = _no_hub(monkeypatch)
    monkeypatch.setattr(captioner_module, "in_hub_cache", lambda repo: False)
    with pytest.raises(CaptionerError) as caught:
        TransformersCaptioner().load()
    message = str(caught.value)
    assert calls == []
    assert DEFAULT_CAPTIONER in message and DOWNLOAD_SIZES[DEFAULT_CAPTIONER] in message
    assert "offline" in message and "--no-captions" in message


def test_unreachable_hub_is_one_probe_and_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode not set, but no network: one quick probe, then captions off; no retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = _no_hub(monkeypatch)
    probes: list[float] = []

    def unreachable(timeout: float = 5.0) -> str:
        probes.append(timeout)
        return "cannot reach https://huggingface.co (Name or service not known)"

    monkeypatch.setattr(captioner_module, "in_hub_cache", lambda repo: False)
    monkeypatch.setattr(captioner_module, "hub_unreachable", unreachable)
    with pytest.raises(CaptionerError, match="cannot reach") as caught:
        TransformersCaptioner().load()
    assert len(probes) == 1 and calls == []
    assert "HF_HUB_OFFLINE=1" in str(caught.value) and "990 MB" in str(caught.value)


def test_a_download_is_announced_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    said: list[str] = []
    calls = _no_hub(monkeypatch)
    monkeypatch.setattr(captioner_module, "in_hub_cache", lambda repo: False)
    monkeypatch.setattr(captioner_module, "hub_unreachable", lambda timeout=5.0: None)
    with pytest.raises(CaptionerError):  # the refused loader stands in for the download
        TransformersCaptioner(notify=said.append).load()
    assert len(said) == 1 and "downloading" in said[0] and "990 MB" in said[0]
    assert len(calls) == 1  # announced first, then the (refused) load


def test_index_offline_says_captions_off_once_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(captioner_module, "in_hub_cache", lambda repo: False)
    monkeypatch.setattr(models, "embedder", lambda spec=None, device="cpu": HashEmbedder())
    for i in range(3):
        write_lora(tmp_path / "Lora" / f"l{i}.safetensors", seed=i, preview=True)
    store = tmp_path / "store"
    assert main(["index", str(tmp_path / "Lora"), "--store", str(store), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["adapters"] == 3
    caption_lines = [line for line in err.splitlines() if "caption" in line]
    assert len(caption_lines) == 1, err
    assert "captions off" in caption_lines[0] and "990 MB" in caption_lines[0]
    assert "Traceback" not in err and "Retry" not in err


def _as_hub_cache(model_folder: str, cache: Path, repo: str) -> None:
    """Lay ``model_folder``'s files out as the Hugging Face cache holds a downloaded repo."""
    commit = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for path in Path(model_folder).iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())


def test_a_cached_model_loads_without_touching_the_network(tiny_blip, tmp_path: Path) -> None:  # noqa: F811
    """Offline mode off and no network: a cached model must load with no connection attempt
    (transformers otherwise asks the hub whether the cached files are current first)."""
    cache, repo = tmp_path / "hub", "pixtention-test/tiny-blip"
    _as_hub_cache(tiny_blip, cache, repo)
    script = textwrap.dedent(
        f"""
        import socket
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(args[:1])
            raise OSError("no network in this test")
        socket.getaddrinfo = refuse
        socket.socket.connect = lambda self, *a: refuse(*a)
        from pixtention.curator.captioner import TransformersCaptioner
        TransformersCaptioner({repo!r}).load()
        print(len(attempts))
        """
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["HF_HUB_CACHE"] = str(cache)
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0", done.stderr[-2000:]
