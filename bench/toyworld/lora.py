"""Rank-r LoRA on the toy UNet, written as a kohya SD1 file the product's reader maps.

The targets are what kohya's ``networks.lora`` trains on SD1 by default: every ``Linear`` and
1×1 ``Conv2d`` of the spatial transformers (attn1/attn2 q/k/v/out, the feed-forward, proj
in/out). Keys use SD1 kohya spelling (``lora_unet_down_blocks_0_attentions_0_…``: the diffusers
names, dots folded), which ``pixtention.library.keymap`` converts back to the ldm modules.
Deltas are added by forward hooks (``y + (α/r) · up(down(x))``) so the base stays untouched.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from pixtention.library.keymap import map_stems, stem_candidates
from pixtention.library.sample import save_safetensors

_PARTS = ("transformer_blocks", "proj_in", "proj_out")


def lora_targets(unet: nn.Module) -> dict[str, nn.Module]:
    """ldm module name → module, for the spatial transformers' Linear and 1×1 Conv2d."""
    out = {}
    for name, module in unet.named_modules():
        if not any(part in name.split(".") for part in _PARTS):
            continue
        if isinstance(module, nn.Linear) or (
            isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
        ):
            out[name] = module
    return out


def kohya_stem(ldm_name: str) -> str:
    """``input_blocks.1.1.proj_in`` → ``lora_unet_down_blocks_0_attentions_0_proj_in``."""
    diffusers = [c for c in stem_candidates(ldm_name) if c.startswith(("down_", "mid_", "up_"))]
    if not diffusers:
        raise ValueError(f"{ldm_name}: no SD1 diffusers spelling")
    return "lora_unet_" + diffusers[0]


class LoRA(nn.Module):
    """Down/up factors per target (kohya init: down random, up zero, so training starts at 0)."""

    def __init__(self, targets: Mapping[str, nn.Module], rank: int = 4, alpha: float = 4.0):
        super().__init__()
        self.rank, self.alpha = rank, alpha
        self.names = list(targets)
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for module in targets.values():
            if isinstance(module, nn.Linear):
                down = nn.Linear(module.in_features, rank, bias=False)
                up = nn.Linear(rank, module.out_features, bias=False)
            else:
                down = nn.Conv2d(module.in_channels, rank, 1, bias=False)
                up = nn.Conv2d(rank, module.out_channels, 1, bias=False)
            nn.init.zeros_(up.weight)
            self.down.append(down)
            self.up.append(up)

    @contextlib.contextmanager
    def applied(self, targets: Mapping[str, nn.Module], scale: float = 1.0) -> Iterator[None]:
        """Add the deltas to ``targets``' outputs while inside the block."""
        factor = scale * self.alpha / self.rank
        handles = []
        for name, down, up in zip(self.names, self.down, self.up):

            def hook(_m, inputs, output, down=down, up=up):
                return output + factor * up(down(inputs[0]))

            handles.append(targets[name].register_forward_hook(hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def tensors(self) -> dict[str, torch.Tensor]:
        """kohya keys: ``{stem}.lora_down.weight``, ``.lora_up.weight``, ``.alpha`` (fp16)."""
        out = {}
        for name, down, up in zip(self.names, self.down, self.up):
            stem = kohya_stem(name)
            out[f"{stem}.lora_down.weight"] = down.weight.detach().half().contiguous()
            out[f"{stem}.lora_up.weight"] = up.weight.detach().half().contiguous()
            out[f"{stem}.alpha"] = torch.tensor(self.alpha, dtype=torch.float16)
        return out


def kohya_header(
    name: str, *, rank: int, alpha: float, steps: int, captions: Mapping[str, int], comment: str
) -> dict[str, str]:
    """The ``ss_*`` metadata kohya's sd-scripts writes (the fields the Curator reads)."""
    return {
        "ss_output_name": name,
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_network_args": "null",
        "ss_sd_model_name": "toyworld_base.safetensors",
        "ss_base_model_version": "sd_v1",
        "ss_v2": "False",
        "ss_resolution": "(32, 32)",
        "ss_max_train_steps": str(steps),
        "ss_num_train_images": str(sum(captions.values())),
        "ss_training_comment": comment,
        "ss_tag_frequency": json.dumps({f"1_{name}": dict(captions)}),
    }


def save_kohya(
    path: Path, lora: LoRA, header: Mapping[str, str], sidecar: Mapping[str, object]
) -> Path:
    """Write ``path`` (safetensors) and ``path``'s ``.civitai.info`` sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(path, lora.tensors(), header)
    path.with_suffix(".civitai.info").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def load_kohya(path: Path, unet: nn.Module) -> tuple[LoRA, dict[str, nn.Module]]:
    """A saved toy LoRA back as modules, its stems mapped by the product's keymap."""
    tensors = load_file(str(path))
    stems = sorted({key.split(".")[0] for key in tensors})
    found, unmatched = map_stems(stems, [name for name, _ in unet.named_modules()])
    if unmatched:
        raise ValueError(f"{path.name}: {len(unmatched)} stems name no module: {unmatched[:3]}")
    live = dict(unet.named_modules())
    targets = {found[stem]: live[found[stem]] for stem in stems}
    first = tensors[f"{stems[0]}.lora_down.weight"]
    lora = LoRA(targets, rank=first.shape[0], alpha=float(tensors[f"{stems[0]}.alpha"]))
    with torch.no_grad():
        for stem, down, up in zip(stems, lora.down, lora.up):
            down.weight.copy_(tensors[f"{stem}.lora_down.weight"].view(down.weight.shape))
            up.weight.copy_(tensors[f"{stem}.lora_up.weight"].view(up.weight.shape))
    return lora, targets
