"""Real adapter files end to end: LyCORIS writes them, the library reads and maps them, the
session gates them — a full mask must reproduce LyCORIS' own forward on the same model.

Both sides run in float64. In float32 they differ by up to ~1e-5 (the ``full`` case): LyCORIS
merges ``W + ΔW`` before one GEMM while the session adds ``x ΔWᵀ`` to ``x Wᵀ``, and each
rounding difference is amplified through ~280 adapted modules. In float64 what is left is what
the file itself fixes in float32 (``diff = W' − W`` rounded, ΔW rebuilt from fp32 factors):
≤ 1.1e-6 measured, so 1e-5 still catches a formula off by a few parts in 1e5.
"""

from __future__ import annotations

import copy

import ldm.modules.attention as ldm_attention
import pytest
import torch
from ldm.modules.diffusionmodules.util import GroupNorm32

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


def float64_unet(unet: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> torch.nn.Module:
    """A float64 copy of the ldm UNet. ldm pins three things to float32 (the timestep
    embedding, ``GroupNorm32`` and the attention logits); here they follow the input's dtype."""
    monkeypatch.setattr(ldm_attention, "_ATTN_PRECISION", "fp64")
    monkeypatch.setattr(GroupNorm32, "forward", torch.nn.GroupNorm.forward)
    model = copy.deepcopy(unet).double()
    model.dtype = torch.float64
    model.time_embed.register_forward_pre_hook(lambda module, args: (args[0].double(),))
    return model


@pytest.mark.parametrize(
    ("algo", "extra"), CASES, ids=[f"{a}{'-' + '-'.join(e) if e else ''}" for a, e in CASES]
)
def test_a_full_mask_reproduces_lycoris(
    tiny_unet, tmp_path, monkeypatch, algo: str, extra: dict
) -> None:
    model = float64_unet(tiny_unet, monkeypatch)
    x, t, ctx = unet_inputs(seed=3)
    inputs = (x.double(), t, ctx.double())
    path = tmp_path / f"{algo}.safetensors"
    with torch.no_grad():
        base = model(*inputs)
        with lycoris_file(path, model, algo=algo, rank=4, alpha=2.0, **extra) as network:
            network.double()  # some LyCORIS modules are made in float32 whatever the model
            reference = model(*inputs)
    mapped = map_to_model(load_weights(path), model.named_modules())
    assert mapped.targets and not mapped.unmatched
    adapter = GatedAdapter(algo, mapped, 1.0, ((2,),))
    before = hook_count(model)
    with torch.no_grad(), attach(model, [adapter], MaskConfig()) as session:
        session.set_masks(torch.ones(1, 8, 8))
        gated = model(*inputs)
        session.set_masks(torch.zeros(1, 8, 8))
        off = model(*inputs)
    assert gated.dtype == torch.float64
    assert (reference - base).abs().max() > 1e-3
    assert (gated - reference).abs().max() <= 1e-5, float((gated - reference).abs().max())
    assert torch.equal(off, base)
    assert hook_count(model) == before
