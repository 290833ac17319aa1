"""Tiny real LDM UNets (the ``ldm`` package A1111 uses, from ``stable-diffusion-sdkit``).

SD1.5 block layout (num_res_blocks=2, channel_mult=[1, 2, 4, 4], attention at the first three
levels) at a small width, so tests exercise the exact module tree the WebUI hooks into.
"""

from __future__ import annotations

import torch
from ldm.modules.diffusionmodules.openaimodel import UNetModel

SD15_LAYOUT = dict(
    in_channels=4,
    out_channels=4,
    num_res_blocks=2,
    attention_resolutions=[4, 2, 1],
    channel_mult=[1, 2, 4, 4],
    use_spatial_transformer=True,
    transformer_depth=1,
    use_checkpoint=False,
    legacy=False,
)


def rerandomise_zero_parameters(model: torch.nn.Module, generator: torch.Generator) -> None:
    """ldm zero-initialises output convs; left at zero, no delta could ever show in the output."""
    with torch.no_grad():
        for param in model.parameters():
            if param.numel() and not param.any():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)


def tiny_unet(
    *, model_channels: int = 32, context_dim: int = 32, head_channels: int = 8, seed: int = 0
) -> UNetModel:
    """A tiny SD1.5-layout ldm UNet in eval mode, fp32, deterministic for ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = UNetModel(
        image_size=8,
        model_channels=model_channels,
        context_dim=context_dim,
        num_head_channels=head_channels,
        **SD15_LAYOUT,
    )
    rerandomise_zero_parameters(model, generator)
    return model.eval()


def sd15_unet(seed: int = 0) -> UNetModel:
    """The full-size SD1.5 UNet architecture with random weights (for benchmarks)."""
    torch.manual_seed(seed)
    model = UNetModel(
        image_size=64, model_channels=320, context_dim=768, num_heads=8, **SD15_LAYOUT
    )
    rerandomise_zero_parameters(model, torch.Generator().manual_seed(seed))
    return model.eval()
