"""Independent reference: files written by lycoris-lora, deltas checked against LyCORIS' own modules.

For every module LyCORIS wraps on the tiny ldm UNet, the output change of its wrapped layer
(``lora.forward(x) − lora.org_forward(x)``, LyCORIS' own maths) must equal the base layer's op
applied with the ΔW we rebuild from the saved file. Every stem must map onto the live UNet.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixtention.library.keymap import map_to_model
from pixtention.library.weights import delta_weight, load_weights
from tests.rig.factory import lycoris_file

CASES = [
    ("lora", "locon", {}),  # LyCORIS' "full" preset also wraps 3×3 convs: a LoCon file
    ("locon", "locon", {"conv_dim": 2, "conv_alpha": 1.0, "use_tucker": True}),
    ("loha", "loha", {}),
    ("loha", "loha", {"use_tucker": True}),
    ("lokr", "lokr", {"factor": 4}),
    ("lokr", "lokr", {"factor": 4, "use_tucker": True, "decompose_both": True}),
    ("lora", "dora", {"dora_wd": True}),
    ("loha", "dora", {"dora_wd": True, "wd_on_output": False}),
    ("ia3", "ia3", {}),
]


def _output_change_ours(module: torch.nn.Module, delta: torch.Tensor, x: torch.Tensor):
    if isinstance(module, torch.nn.Linear):
        return F.linear(x, delta)
    return F.conv2d(x, delta, None, module.stride, module.padding, module.dilation, module.groups)


def _probe(module: torch.nn.Module, generator: torch.Generator) -> torch.Tensor:
    if isinstance(module, torch.nn.Linear):
        return torch.randn(3, module.in_features, generator=generator)
    return torch.randn(1, module.in_channels, 8, 8, generator=generator)


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "kind", "options"), CASES)
def test_lycoris_file_deltas_match_lycoris_modules(tiny_unet, tmp_path, algo, kind, options):
    path = tmp_path / f"{algo}.safetensors"
    generator = torch.Generator().manual_seed(1)
    with lycoris_file(path, tiny_unet, algo=algo, rank=4, alpha=2.0, **options) as network:
        weights = load_weights(path)
        assert weights.kind == kind
        mapped = map_to_model(weights, tiny_unet.named_modules())
        assert mapped.unmatched == ()
        assert len(mapped.targets) == len(network.loras) == len(weights.unet)
        names = {id(module): name for name, module in tiny_unet.named_modules()}
        worst = 0.0
        for wrapped in network.loras:
            base = wrapped.org_module[0]
            ours = delta_weight(weights.unet[wrapped.lora_name], base.weight.detach())
            x = _probe(base, generator)
            with torch.no_grad():
                theirs = wrapped.forward(x) - wrapped.org_forward(x)
            change = _output_change_ours(base, ours, x)
            assert change.abs().max() > 0  # a zero delta would make the comparison empty
            worst = max(worst, float((change - theirs).abs().max()))
            assert mapped.targets[names[id(base)]].key == wrapped.lora_name
    assert worst <= 1e-5


def test_lycoris_scale_is_alpha_over_rank(tiny_unet, tmp_path):
    """A plain LoRA file: our LowRank scale is the stored alpha over the rank LyCORIS used."""
    path = tmp_path / "scale.safetensors"
    with lycoris_file(path, tiny_unet, algo="lora", rank=4, alpha=3.0, preset="attn-only"):
        weights = load_weights(path)
    scales = {delta.factors.scale for delta in weights.unet.values()}
    assert scales == {0.75}
    assert weights.rank == 4
