"""The toy world's diffusion model: SD1-layout ldm UNet at tiny width, schedule, sampler, I/O.

The UNet is the real ``ldm`` ``UNetModel`` A1111 runs (SD1 block layout: two ResBlocks per
level, attention at the first three levels and the middle, ``legacy=False``), so every module
path the Integrator hooks exists as in SD1.5. A lossless 2×2 pixel-unshuffle stands in for the
VAE (32×32×3 ↔ 16×16×12); SD1's noise schedule with v-prediction (epsilon stayed noise in the
probe). Fixtures are one fp16 safetensors file holding ``unet.*`` and ``text.*`` weights with
the build settings in its metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from ldm.modules.diffusionmodules.openaimodel import UNetModel
from safetensors.torch import load_file, save_file

from bench.toyworld.text import ToyTextEncoder, ToyTokenizer

FIXTURES = Path(__file__).with_name("fixtures")
BASE_FIXTURE = FIXTURES / "toyworld_base.safetensors"
TIMESTEPS = 1000


@dataclass(frozen=True)
class ToyConfig:
    """Build settings (stored in checkpoints and fixtures so they rebuild the same model)."""

    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    head_channels: int = 16
    context_dim: int = 64
    text_layers: int = 2


def build_unet(config: ToyConfig) -> UNetModel:
    """The SD1-layout ldm UNet on the 16×16×12 unshuffled latent."""
    return UNetModel(
        image_size=16,
        in_channels=12,
        out_channels=12,
        model_channels=config.model_channels,
        num_res_blocks=2,
        attention_resolutions=[4, 2, 1],
        channel_mult=list(config.channel_mult),
        num_head_channels=config.head_channels,
        use_spatial_transformer=True,
        transformer_depth=1,
        context_dim=config.context_dim,
        use_checkpoint=False,
        legacy=False,
    )


class ToyModel(torch.nn.Module):
    """UNet + text encoder + tokenizer: the pieces a WebUI would hand the Integrator."""

    def __init__(self, config: ToyConfig | None = None) -> None:
        super().__init__()
        self.config = config or ToyConfig()
        self.tokenizer = ToyTokenizer()
        self.unet = build_unet(self.config)
        self.text = ToyTextEncoder(
            len(self.tokenizer), self.config.context_dim, self.config.text_layers
        )

    def encode(self, captions: list[str]) -> torch.Tensor:
        return self.text(self.tokenizer.encode(captions))


def to_latent(images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 32, 32]`` → ``[B, 12, 16, 16]`` (the VAE stand-in, exact)."""
    return F.pixel_unshuffle(images, 2)


def to_image(latents: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(latents, 2)


def alphas_cumprod() -> torch.Tensor:
    """SD1's "scaled linear" schedule: betas linear in sqrt from 0.00085 to 0.012."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, TIMESTEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def v_loss_terms(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noised latents and the v-prediction target for timesteps ``t``."""
    a = abar[t].sqrt().view(-1, 1, 1, 1)
    s = (1 - abar[t]).sqrt().view(-1, 1, 1, 1)
    return a * x0 + s * noise, a * noise - s * x0


@torch.no_grad()
def sample(
    model: ToyModel,
    captions: list[str],
    *,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 4.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM (eta 0) with classifier-free guidance; returns images in [-1, 1] ``[B, 3, 32, 32]``.

    Cond and uncond rows run in one batch, cond rows first: the WebUI's order and the
    Integrator's default ``RowLayout.cond_then_uncond``.
    """
    abar = alphas_cumprod()
    n = len(captions)
    if noise is None:
        noise = torch.randn(n, 12, 16, 16, generator=torch.Generator().manual_seed(seed))
    context = model.encode(list(captions) + [""] * n)
    x = noise
    times = torch.linspace(TIMESTEPS - 1, 0, steps).round().long()
    for i, t in enumerate(times):
        tt = t.repeat(2 * n)
        v_c, v_u = model.unet(torch.cat([x, x]), tt, context=context).chunk(2)
        v = v_u + guidance * (v_c - v_u)
        a, s = abar[t].sqrt(), (1 - abar[t]).sqrt()
        x0 = a * x - s * v
        eps = s * x + a * v
        if i + 1 < steps:
            nxt = abar[times[i + 1]]
            x = nxt.sqrt() * x0 + (1 - nxt).sqrt() * eps
        else:
            x = x0
    return to_image(x).clamp(-1, 1)


def save_fixture(model: ToyModel, path: Path, extra: dict[str, str] | None = None) -> Path:
    """fp16 safetensors with ``unet.*``/``text.*`` weights and the config as metadata."""
    tensors = {f"unet.{k}": v for k, v in model.unet.state_dict().items()}
    tensors.update({f"text.{k}": v for k, v in model.text.state_dict().items()})
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in tensors.items()}
    meta = {"toyworld_config": json.dumps(asdict(model.config)), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def load_fixture(path: Path = BASE_FIXTURE) -> ToyModel:
    """The model a fixture holds, in fp32 eval mode."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        raw = json.loads(handle.metadata()["toyworld_config"])
    config = ToyConfig(**{**raw, "channel_mult": tuple(raw["channel_mult"])})
    model = ToyModel(config)
    tensors = load_file(str(path))
    model.unet.load_state_dict({k[5:]: v.float() for k, v in tensors.items() if k[:5] == "unet."})
    model.text.load_state_dict({k[5:]: v.float() for k, v in tensors.items() if k[:5] == "text."})
    return model.eval()
