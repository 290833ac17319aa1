"""A tiny random SD1 checkpoint that A1111 loads with the config written beside it.

A1111 builds a checkpoint's model from a ``.yaml`` next to it, so a few-MB model serves: the
``ldm`` UNet of SD1 at 32 channels (the shapes ``tests/rig/factory.py`` writes LoRAs for), a
2-layer CLIP text model 32 wide, a small VAE that keeps the 8× down-sampling A1111 hard-codes,
all in the original single-file key layout (``model.diffusion_model.*``,
``cond_stage_model.transformer.*``, ``first_stage_model.*``, plus the noise schedule).

The model is built by ``ldm`` itself from the same yaml, so the keys are exactly those A1111
expects; this runs in the WebUI's venv with A1111's ``repositories/stable-diffusion-stability-ai``
on ``PYTHONPATH``. ``FrozenCLIPEmbedder`` loads ``from_pretrained(version)``: ``version`` is a
local folder holding a tiny CLIP config and the CLIP tokenizer files (built offline from
open-clip's BPE vocabulary), so nothing reaches a model hub.

Made for a random model: ldm zero-initialises output convs (left at zero the UNet output is 0 and
no attention or LoRA change could show), and CLIP LayerNorm biases of 0 make A1111's "Original"
emphasis divide by a zero mean; every all-zero parameter is re-randomised.

    python -m tests.real_webui.a1111_checkpoint OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Bump when the model or its initialisation changes (callers key their cache on this file).
LAYOUT_VERSION = 1
NAME = f"pixtention-tiny-sd1-v{LAYOUT_VERSION}"
WIDTH = 32  # UNet model_channels and CLIP width = the UNet's context_dim

CLIP_CONFIG = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "vocab_size": 49408,
    "hidden_size": WIDTH,
    "intermediate_size": 2 * WIDTH,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
    "projection_dim": WIDTH,
    "torch_dtype": "float32",
}
TOKENIZER_CONFIG = {
    "model_max_length": 77,
    "do_lower_case": True,
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "tokenizer_class": "CLIPTokenizer",
}
SPECIAL_TOKENS = {
    k: TOKENIZER_CONFIG[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")
}


def config_yaml(clip_dir: Path) -> str:
    """The model config A1111 reads beside the checkpoint (v1-inference.yaml, scaled down)."""
    return f"""model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 8
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: 0.18215
    use_ema: False
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 8
        in_channels: 4
        out_channels: 4
        model_channels: {WIDTH}
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_head_channels: 8
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: {WIDTH}
        use_checkpoint: False
        legacy: False
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 64
          in_channels: 3
          out_ch: 3
          ch: 32
          ch_mult: [ 1, 1, 1, 1 ]
          num_res_blocks: 1
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
      params:
        version: {json.dumps(str(clip_dir))}
"""


def write_clip_folder(folder: Path) -> Path:
    """config.json and the tokenizer files of the tiny CLIP text model (no weights: the
    checkpoint carries them, and A1111 then builds the model from the config alone)."""
    from tests.rig.tokenizer import write_clip_tokenizer_files

    write_clip_tokenizer_files(folder)
    (folder / "config.json").write_text(json.dumps(CLIP_CONFIG, indent=2), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS), encoding="utf-8")
    return folder


def build_state_dict(yaml_path: Path, seed: int):
    """The whole ``LatentDiffusion`` state dict, built by ldm from the yaml (random weights)."""
    import torch
    import transformers
    from ldm.util import instantiate_from_config
    from omegaconf import OmegaConf

    def from_config(version, *args, **kwargs):  # no weights on disk: build from the config
        return transformers.CLIPTextModel(transformers.CLIPTextConfig.from_pretrained(version))

    transformers.CLIPTextModel.from_pretrained = from_config
    import ldm.modules.encoders.modules as encoders

    encoders.CLIPTextModel.from_pretrained = from_config
    torch.manual_seed(seed)
    model = instantiate_from_config(OmegaConf.load(yaml_path).model)
    generator = torch.Generator().manual_seed(seed + 1)
    layer_norm_biases = ("layer_norm1.bias", "layer_norm2.bias", "final_layer_norm.bias")
    with torch.no_grad():
        for name, param in model.named_parameters():
            zero = param.numel() and not param.any()
            if zero or name.endswith(layer_norm_biases):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def write_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """Write ``NAME.safetensors``, ``NAME.yaml`` and the ``NAME-clip/`` folder into ``out_dir``;
    returns the checkpoint path. Atomic: the checkpoint appears last, under its final name."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    clip_dir = write_clip_folder(out_dir / f"{NAME}-clip")
    yaml_path = out_dir / f"{NAME}.yaml"
    yaml_path.write_text(config_yaml(clip_dir), encoding="utf-8")
    state = build_state_dict(yaml_path, seed)
    path = out_dir / f"{NAME}.safetensors"
    partial = out_dir / f".{NAME}.{os.getpid()}.partial"
    try:
        save_file(
            state, str(partial), metadata={"format": "pt", "pixtention": f"tiny SD1, seed {seed}"}
        )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = write_checkpoint(args.out_dir, seed=args.seed)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
