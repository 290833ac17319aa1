"""Each toy-world training script still runs: a few tiny steps from scratch, loadable output."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from bench.toyworld import train_base, train_lora
from bench.toyworld.lora import load_kohya, lora_targets
from bench.toyworld.model import load_fixture
from pixtention.library import read_adapter
from pixtention.library.keymap import map_to_model
from pixtention.library.weights import load_weights

TINY = ["--batch", "2", "--log-every", "1"]


def run(script, argv: list[str]):
    """The script's ``train`` on parsed flags (``main`` would pin this process to one thread)."""
    return script.train(script.parser().parse_args([*argv, *TINY]))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """Two base steps from scratch, in a fresh folder."""
    out = tmp_path_factory.mktemp("base")
    run(train_base, ["--out", str(out), "--steps", "2"])
    return out


def test_the_base_script_writes_a_loadable_fp16_fixture(base_run) -> None:
    tensors = load_file(str(base_run / "base.safetensors"))
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    model = load_fixture(base_run / "base.safetensors")
    with torch.no_grad():
        out = model.unet(torch.zeros(1, 12, 16, 16), torch.tensor([10]), model.encode(["a"]))
    assert out.shape == (1, 12, 16, 16) and torch.isfinite(out).all()
    log = [json.loads(line) for line in (base_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["ground"] > 0 for r in log)


def test_a_resumed_run_equals_an_uninterrupted_one(base_run, tmp_path) -> None:
    run(train_base, ["--out", str(base_run), "--steps", "3"])  # resumes at step 2
    run(train_base, ["--out", str(tmp_path), "--steps", "3"])
    resumed = load_file(str(base_run / "base.safetensors"))
    straight = load_file(str(tmp_path / "base.safetensors"))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed)


def test_the_lora_script_writes_a_kohya_file_the_product_maps(base_run, tmp_path) -> None:
    base = base_run / "base.safetensors"
    args = ["--concept", "purple", "--base", str(base), "--out", str(tmp_path), "--steps", "2"]
    path = run(train_lora, args)
    assert path == tmp_path / "toy_purple_squares.safetensors"
    model = load_fixture(base)
    mapped = map_to_model(load_weights(path), model.unet.named_modules())
    assert not mapped.unmatched and not mapped.text_encoder
    assert set(mapped.targets) == set(lora_targets(model.unet))
    info = read_adapter(path)
    assert info.layout.kind == "lora" and info.layout.rank == 4
    assert info.base_model.family == "sd1"
    sidecar = json.loads(path.with_suffix(".civitai.info").read_text())
    assert sidecar["trainedWords"] == ["purple"] and sidecar["model"]["type"] == "LORA"
    lora, targets = load_kohya(path, model.unet)
    assert any(up.weight.abs().sum() > 0 for up in lora.up)  # two steps moved the zero init
    x = (torch.randn(1, 12, 16, 16), torch.tensor([500]), model.encode(["a purple square"]))
    with torch.no_grad():
        plain = model.unet(*x)
        with lora.applied(targets):
            changed = model.unet(*x)
    assert not torch.equal(plain, changed)
    assert torch.equal(plain, model.unet(*x).detach())  # hooks gone after the block
