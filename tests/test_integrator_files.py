"""Real adapter files end to end: LyCORIS writes them, the library reads and maps them, the
session gates them — a full mask must reproduce LyCORIS' own forward on the same model."""

from __future__ import annotations

import copy

import pytest
import torch

from pixtention.integrator import GatedAdapter, MaskConfig, attach
from pixtention.library.keymap import map_to_model
from pixtention.library.weights import load_weights
from tests.rig.factory import lycoris_file
from tests.test_integrator_rig import hook_count, unet_inputs

CASES = [
    ("lora", {}),
    ("lora", {"use_tucker": True, "conv_dim": 4, "conv_alpha": 2.0}),
    ("loha", {}),
    ("lokr", {"factor": 4}),
    ("full", {}),
    ("ia3", {}),
    ("lora", {"dora_wd": True}),
]


@pytest.mark.parametrize(
    ("algo", "extra"), CASES, ids=[f"{a}{'-' + '-'.join(e) if e else ''}" for a, e in CASES]
)
def test_a_full_mask_reproduces_lycoris(tiny_unet, tmp_path, algo: str, extra: dict) -> None:
    model = copy.deepcopy(tiny_unet)
    inputs = unet_inputs(seed=3)
    path = tmp_path / f"{algo}.safetensors"
    with torch.no_grad():
        base = model(*inputs)
        with lycoris_file(path, model, algo=algo, rank=4, alpha=2.0, **extra):
            reference = model(*inputs)
    mapped = map_to_model(load_weights(path), model.named_modules())
    assert mapped.targets and not mapped.unmatched
    adapter = GatedAdapter(algo, mapped, 1.0, ((2,),))
    with torch.no_grad(), attach(model, [adapter], MaskConfig()) as session:
        session.set_masks(torch.ones(1, 8, 8))
        gated = model(*inputs)
        session.set_masks(torch.zeros(1, 8, 8))
        off = model(*inputs)
    assert (reference - base).abs().max() > 1e-3
    assert torch.allclose(gated, reference, atol=2e-4), float((gated - reference).abs().max())
    assert torch.equal(off, base)
    assert hook_count(model) == 0
