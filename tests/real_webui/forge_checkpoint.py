"""A random full-size SD1.5 checkpoint that Forge 2 recognises and loads.

Forge does not read a config beside the checkpoint: it recognises the model from key names and
tensor shapes (``huggingface_guess``) and builds it from its bundled configs, so a tiny model is
refused. This writes the original (``ldm``) single-file layout of SD1.5 — UNet under
``model.diffusion_model.``, VAE under ``first_stage_model.``, CLIP-L under
``cond_stage_model.transformer.text_model.`` — with random fp16 weights (1.07 G parameters,
2.13 GB), deterministic for a seed, one tensor at a time so memory stays at the largest tensor.

Scales keep every activation finite and the images varied: conv and linear weights are normal
with std ``1/sqrt(fan_in)`` (activations stay near unit variance through the residual stacks),
biases zero, norms identity, embeddings small as in CLIP's own initialisation. Nothing is
zero-initialised, so a LoRA delta always reaches the output and shows as a pixel difference.

    python -m tests.real_webui.forge_checkpoint OUT.safetensors [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

# Bump when the layout or the initialisation changes, so callers can key their cache on it.
LAYOUT_VERSION = 2
DEFAULT_NAME = f"pixtention-random-sd15-v{LAYOUT_VERSION}.safetensors"

# (key, shape, init): init is "w" (normal, std 1/sqrt(fan_in)), "0" (zeros), "1" (ones) or a
# float (normal with that std).
Entry = tuple[str, tuple[int, ...], str | float]

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer.text_model."


def _linear(out: list[Entry], name: str, cout: int, cin: int, *, bias: bool = True) -> None:
    out.append((f"{name}.weight", (cout, cin), "w"))
    if bias:
        out.append((f"{name}.bias", (cout,), "0"))


def _conv(out: list[Entry], name: str, cout: int, cin: int, kernel: int) -> None:
    out.append((f"{name}.weight", (cout, cin, kernel, kernel), "w"))
    out.append((f"{name}.bias", (cout,), "0"))


def _norm(out: list[Entry], name: str, channels: int) -> None:
    out.append((f"{name}.weight", (channels,), "1"))
    out.append((f"{name}.bias", (channels,), "0"))


def _unet_resblock(out: list[Entry], name: str, cin: int, cout: int, emb: int) -> None:
    _norm(out, f"{name}.in_layers.0", cin)
    _conv(out, f"{name}.in_layers.2", cout, cin, 3)
    _linear(out, f"{name}.emb_layers.1", cout, emb)
    _norm(out, f"{name}.out_layers.0", cout)
    _conv(out, f"{name}.out_layers.3", cout, cout, 3)
    if cin != cout:
        _conv(out, f"{name}.skip_connection", cout, cin, 1)


def _unet_transformer(out: list[Entry], name: str, ch: int, context: int) -> None:
    _norm(out, f"{name}.norm", ch)
    _conv(out, f"{name}.proj_in", ch, ch, 1)
    block = f"{name}.transformer_blocks.0"
    for attn, width in (("attn1", ch), ("attn2", context)):
        _linear(out, f"{block}.{attn}.to_q", ch, ch, bias=False)
        _linear(out, f"{block}.{attn}.to_k", ch, width, bias=False)
        _linear(out, f"{block}.{attn}.to_v", ch, width, bias=False)
        _linear(out, f"{block}.{attn}.to_out.0", ch, ch)
    _linear(out, f"{block}.ff.net.0.proj", 8 * ch, ch)  # GEGLU: value and gate halves
    _linear(out, f"{block}.ff.net.2", ch, 4 * ch)
    for norm in ("norm1", "norm2", "norm3"):
        _norm(out, f"{block}.{norm}", ch)
    _conv(out, f"{name}.proj_out", ch, ch, 1)


def unet_layout(model_channels: int = 320, context_dim: int = 768) -> list[Entry]:
    """The ldm ``UNetModel`` of SD1.x: channel_mult 1,2,4,4, 2 res blocks, attention at 1,2,4."""
    c, mult, emb = model_channels, (1, 2, 4, 4), 4 * model_channels
    out: list[Entry] = []
    _linear(out, f"{UNET}time_embed.0", emb, c)
    _linear(out, f"{UNET}time_embed.2", emb, emb)
    _conv(out, f"{UNET}input_blocks.0.0", c, 4, 3)
    skips, ch, index = [c], c, 1
    for level, m in enumerate(mult):
        for _ in range(2):
            name = f"{UNET}input_blocks.{index}"
            _unet_resblock(out, f"{name}.0", ch, m * c, emb)
            ch = m * c
            if level < 3:
                _unet_transformer(out, f"{name}.1", ch, context_dim)
            skips.append(ch)
            index += 1
        if level < 3:
            _conv(out, f"{UNET}input_blocks.{index}.0.op", ch, ch, 3)
            skips.append(ch)
            index += 1
    _unet_resblock(out, f"{UNET}middle_block.0", ch, ch, emb)
    _unet_transformer(out, f"{UNET}middle_block.1", ch, context_dim)
    _unet_resblock(out, f"{UNET}middle_block.2", ch, ch, emb)
    index = 0
    for level in reversed(range(4)):
        for i in range(3):
            name = f"{UNET}output_blocks.{index}"
            _unet_resblock(out, f"{name}.0", ch + skips.pop(), mult[level] * c, emb)
            ch = mult[level] * c
            part = 1
            if level < 3:
                _unet_transformer(out, f"{name}.1", ch, context_dim)
                part = 2
            if level > 0 and i == 2:
                _conv(out, f"{name}.{part}.conv", ch, ch, 3)
            index += 1
    _norm(out, f"{UNET}out.0", ch)
    _conv(out, f"{UNET}out.2", 4, ch, 3)
    return out


def _vae_resblock(out: list[Entry], name: str, cin: int, cout: int) -> None:
    _norm(out, f"{name}.norm1", cin)
    _conv(out, f"{name}.conv1", cout, cin, 3)
    _norm(out, f"{name}.norm2", cout)
    _conv(out, f"{name}.conv2", cout, cout, 3)
    if cin != cout:
        _conv(out, f"{name}.nin_shortcut", cout, cin, 1)


def _vae_mid(out: list[Entry], name: str, ch: int) -> None:
    _vae_resblock(out, f"{name}.block_1", ch, ch)
    _norm(out, f"{name}.attn_1.norm", ch)
    for part in ("q", "k", "v", "proj_out"):
        _conv(out, f"{name}.attn_1.{part}", ch, ch, 1)
    _vae_resblock(out, f"{name}.block_2", ch, ch)


def vae_layout() -> list[Entry]:
    """The ldm ``AutoencoderKL`` of SD1.x (ch 128, ch_mult 1,2,4,4, 2 res blocks, z 4)."""
    c, mult = 128, (1, 2, 4, 4)
    out: list[Entry] = []
    enc = f"{VAE}encoder"
    _conv(out, f"{enc}.conv_in", c, 3, 3)
    ch = c
    for level, m in enumerate(mult):
        for j in range(2):
            _vae_resblock(out, f"{enc}.down.{level}.block.{j}", ch, m * c)
            ch = m * c
        if level < 3:
            _conv(out, f"{enc}.down.{level}.downsample.conv", ch, ch, 3)
    _vae_mid(out, f"{enc}.mid", ch)
    _norm(out, f"{enc}.norm_out", ch)
    _conv(out, f"{enc}.conv_out", 8, ch, 3)
    dec = f"{VAE}decoder"
    _conv(out, f"{dec}.conv_in", ch, 4, 3)
    _vae_mid(out, f"{dec}.mid", ch)
    for level in reversed(range(4)):
        for j in range(3):
            _vae_resblock(out, f"{dec}.up.{level}.block.{j}", ch, mult[level] * c)
            ch = mult[level] * c
        if level > 0:
            _conv(out, f"{dec}.up.{level}.upsample.conv", ch, ch, 3)
    _norm(out, f"{dec}.norm_out", ch)
    _conv(out, f"{dec}.conv_out", 3, ch, 3)
    _conv(out, f"{VAE}quant_conv", 8, 8, 1)
    _conv(out, f"{VAE}post_quant_conv", 4, 4, 1)
    return out


def clip_layout(layers: int = 12, width: int = 768, vocab: int = 49408) -> list[Entry]:
    """The transformers ``CLIPTextModel`` of CLIP ViT-L/14 (the SD1.x text encoder)."""
    out: list[Entry] = [
        (f"{CLIP}embeddings.token_embedding.weight", (vocab, width), 0.02),
        (f"{CLIP}embeddings.position_embedding.weight", (77, width), 0.01),
    ]
    for n in range(layers):
        layer = f"{CLIP}encoder.layers.{n}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(out, f"{layer}.self_attn.{proj}", width, width)
        _norm(out, f"{layer}.layer_norm1", width)
        _linear(out, f"{layer}.mlp.fc1", 4 * width, width)
        _linear(out, f"{layer}.mlp.fc2", width, 4 * width)
        _norm(out, f"{layer}.layer_norm2", width)
    # The final norm's bias is small and random, as a trained one is, not zeros: with zeros
    # every token's embedding has a zero mean, and the WebUI's emphasis ("Original": z ·
    # mean(z) / mean(z · multipliers)) divides zero by zero whenever float rounding makes a
    # chunk's mean exactly 0 (black images for a long prompt on session 10's machine).
    out.append((f"{CLIP}final_layer_norm.weight", (width,), "1"))
    out.append((f"{CLIP}final_layer_norm.bias", (width,), 0.05))
    return out


def sd15_layout() -> list[Entry]:
    """Every tensor of the checkpoint, sorted by key (the order they are written in)."""
    return sorted(unet_layout() + vae_layout() + clip_layout())


def _tensor(name: str, shape: tuple[int, ...], init: str | float, seed: int) -> torch.Tensor:
    if init == "0":
        return torch.zeros(shape, dtype=torch.float16)
    if init == "1":
        return torch.ones(shape, dtype=torch.float16)
    std = 1.0 / math.sqrt(math.prod(shape[1:])) if init == "w" else float(init)
    # One generator per tensor, seeded from its name: values do not depend on write order.
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return (torch.randn(shape, generator=generator) * std).to(torch.float16)


def _header(layout: list[Entry], metadata: dict[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, shape, _init in layout:
        size = 2 * math.prod(shape)
        header[name] = {
            "dtype": "F16",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)  # the data starts 8-byte aligned


def iter_tensors(seed: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, fp16 tensor) in file order, one at a time."""
    for name, shape, init in sd15_layout():
        yield name, _tensor(name, shape, init, seed)


def write_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write the checkpoint to ``path`` (atomically: a partial write never has that name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = sd15_layout()
    metadata = {
        "format": "pt",
        "pixtention": f"random SD1.5 layout v{LAYOUT_VERSION}, seed {seed}, not a trained model",
    }
    header = _header(layout, metadata)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as file:
            file.write(struct.pack("<Q", len(header)))
            file.write(header)
            for _name, tensor in iter_tensors(seed):
                file.write(tensor.numpy().tobytes())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the .safetensors file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    path = write_checkpoint(args.out, seed=args.seed)
    size = path.stat().st_size / 1e9
    print(f"wrote {path} ({size:.2f} GB) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
