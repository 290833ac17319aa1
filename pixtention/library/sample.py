"""A small sample LoRA library, so the main command has something real to work on.

``write_sample(folder)`` writes sixty tiny adapters with the key names and shapes of real
SD1.5 (and one SDXL) LoRAs, kohya ``ss_*`` / ModelSpec headers, WebUI and Civitai sidecars and
PIL-drawn previews, themed and sorted into six theme folders — enough adapters for the indexer
to cluster them into themes. Ranks are 1–4 and only a few modules are targeted, so each file
stays a few dozen kilobytes. Deterministic for a seed. A marker file at the root tells a sample
folder (safe to write again) from a user's LoRA folder (never written into unasked).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save, save_file

from pixtention.library.sample_art import draw_preview
from pixtention.library.sample_themes import THEMES, Theme

SD15_CHANNELS = 320
SD15_CONTEXT = 768
MARKER = ".pixtention-sample"  # at the root of a folder ``write_sample`` wrote
SAMPLE_VERSION = "2"  # 2: sixty adapters in six themes (1: a dozen, one cluster)


def sd15_unet_modules(
    model_channels: int = SD15_CHANNELS, context_dim: int = SD15_CONTEXT
) -> dict[str, tuple[int, ...]]:
    """LoRA-targetable modules of the SD1.5 UNet, diffusers names → weight shapes.

    Derived from the diffusers ``UNet2DConditionModel`` layout (4 levels, 2 resnets down and 3
    up per level, cross-attention on the first three, 1×1-conv ``proj_in``/``proj_out`` as in
    SD1.x); channels scale with ``model_channels`` so the same names fit the tiny test UNet.
    """
    c = model_channels
    out_channels = [c, 2 * c, 4 * c, 4 * c]
    modules: dict[str, tuple[int, ...]] = {}

    def resnet(prefix: str, cin: int, cout: int) -> None:
        modules[f"{prefix}.conv1"] = (cout, cin, 3, 3)
        modules[f"{prefix}.time_emb_proj"] = (cout, 4 * c)
        modules[f"{prefix}.conv2"] = (cout, cout, 3, 3)
        if cin != cout:
            modules[f"{prefix}.conv_shortcut"] = (cout, cin, 1, 1)

    def attention(prefix: str, ch: int) -> None:
        modules[f"{prefix}.proj_in"] = (ch, ch, 1, 1)
        block = f"{prefix}.transformer_blocks.0"
        for attn, width in (("attn1", ch), ("attn2", context_dim)):
            modules[f"{block}.{attn}.to_q"] = (ch, ch)
            modules[f"{block}.{attn}.to_k"] = (ch, width)
            modules[f"{block}.{attn}.to_v"] = (ch, width)
            modules[f"{block}.{attn}.to_out.0"] = (ch, ch)
        modules[f"{block}.ff.net.0.proj"] = (8 * ch, ch)
        modules[f"{block}.ff.net.2"] = (ch, 4 * ch)
        modules[f"{prefix}.proj_out"] = (ch, ch, 1, 1)

    channels = c
    for i, cout in enumerate(out_channels):
        for j in range(2):
            resnet(f"down_blocks.{i}.resnets.{j}", channels if j == 0 else cout, cout)
            if i < 3:
                attention(f"down_blocks.{i}.attentions.{j}", cout)
        if i < 3:
            modules[f"down_blocks.{i}.downsamplers.0.conv"] = (cout, cout, 3, 3)
        channels = cout
    resnet("mid_block.resnets.0", channels, channels)
    attention("mid_block.attentions.0", channels)
    resnet("mid_block.resnets.1", channels, channels)
    reversed_channels = out_channels[::-1]
    previous = reversed_channels[0]
    for i, cout in enumerate(reversed_channels):
        skip_in = reversed_channels[min(i + 1, 3)]
        for j in range(3):
            cin = (previous if j == 0 else cout) + (skip_in if j == 2 else cout)
            resnet(f"up_blocks.{i}.resnets.{j}", cin, cout)
            if i > 0:
                attention(f"up_blocks.{i}.attentions.{j}", cout)
        if i < 3:
            modules[f"up_blocks.{i}.upsamplers.0.conv"] = (cout, cout, 3, 3)
        previous = cout
    return modules


def sd15_text_encoder_modules(layers: int = 12, width: int = 768) -> dict[str, tuple[int, ...]]:
    """kohya stems of the SD1.5 CLIP-L text encoder (``lora_te_…``) → weight shapes."""
    modules: dict[str, tuple[int, ...]] = {}
    for n in range(layers):
        prefix = f"lora_te_text_model_encoder_layers_{n}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            modules[f"{prefix}_self_attn_{proj}"] = (width, width)
        modules[f"{prefix}_mlp_fc1"] = (4 * width, width)
        modules[f"{prefix}_mlp_fc2"] = (width, 4 * width)
    return modules


def kohya_stem(diffusers_name: str) -> str:
    """SD1.x kohya spelling: ``lora_unet_`` + the diffusers name with dots folded."""
    return "lora_unet_" + diffusers_name.replace(".", "_")


# SDXL base cross-attention (compvis names as kohya writes SDXL files; context width 2048).
SDXL_MODULES: dict[str, tuple[int, ...]] = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k": (640, 2048),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_v": (640, 2048),
    "lora_unet_input_blocks_7_1_transformer_blocks_1_attn2_to_k": (1280, 2048),
    "lora_unet_output_blocks_0_1_transformer_blocks_3_attn2_to_v": (1280, 2048),
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": (1280, 1280),
}


def _factor(n: int, cap: int = 8) -> tuple[int, int]:
    """Split ``n`` as (small, n // small) with the largest divisor ≤ ``cap`` (LoKr halves)."""
    small = max(d for d in range(1, cap + 1) if n % d == 0)
    return small, n // small


def make_tensors(
    kind: str,
    targets: Mapping[str, tuple[int, ...]],
    *,
    rank: int,
    alpha: float | None,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float16,
    tucker: bool = False,
) -> dict[str, torch.Tensor]:
    """Random adapter tensors of one kind for ``{stem: target weight shape}``, kohya naming.

    Kinds: lora, locon (k×k convs get a full-kernel down or, with ``tucker``, a ``lora_mid``),
    loha, lokr, ia3, full, dora (LoRA + row-wise ``dora_scale``), peft (``lora_A``/``lora_B``;
    stems are used as written, so pass dotted names). Up factors are non-zero on purpose.
    """

    def rand(*shape: int, std: float = 0.05) -> torch.Tensor:
        return (torch.randn(shape, generator=generator) * std).to(dtype)

    tensors: dict[str, torch.Tensor] = {}
    for stem, shape in targets.items():
        out, inp, kernel = shape[0], shape[1], tuple(shape[2:])
        conv = bool(kernel)
        spatial = conv and kernel != (1, 1)
        r = min(rank, out, inp)
        if alpha is not None and kind not in ("ia3", "full"):
            tensors[f"{stem}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
        if kind in ("lora", "locon", "dora", "peft"):
            names = ("lora_A.weight", "lora_B.weight") if kind == "peft" else None
            down_name, up_name = names or ("lora_down.weight", "lora_up.weight")
            if tucker and spatial:
                tensors[f"{stem}.{down_name}"] = rand(r, inp, 1, 1, std=0.2)
                tensors[f"{stem}.lora_mid.weight"] = rand(r, r, *kernel, std=0.2)
            else:
                tensors[f"{stem}.{down_name}"] = rand(r, inp, *kernel, std=0.2)
            tensors[f"{stem}.{up_name}"] = rand(out, r, *((1, 1) if conv else ()))
            if kind == "dora":
                magnitude = torch.rand((out, *([1] * (len(shape) - 1))), generator=generator)
                tensors[f"{stem}.dora_scale"] = (magnitude + 0.5).to(dtype)
        elif kind == "loha":
            flat = inp * (kernel[0] * kernel[1] if conv else 1)
            for half in ("1", "2"):
                if tucker and spatial:
                    tensors[f"{stem}.hada_t{half}"] = rand(r, r, *kernel, std=0.3)
                    tensors[f"{stem}.hada_w{half}_a"] = rand(r, out, std=0.3)
                    tensors[f"{stem}.hada_w{half}_b"] = rand(r, inp, std=0.3)
                else:
                    tensors[f"{stem}.hada_w{half}_a"] = rand(out, r, std=0.3)
                    tensors[f"{stem}.hada_w{half}_b"] = rand(r, flat, std=0.3)
        elif kind == "lokr":
            (a, b), (c, d) = _factor(out), _factor(inp)
            tensors[f"{stem}.lokr_w1"] = rand(a, c, std=0.3)
            r2 = min(rank, b, d)
            if tucker and spatial:
                tensors[f"{stem}.lokr_t2"] = rand(r2, r2, *kernel, std=0.3)
                tensors[f"{stem}.lokr_w2_a"] = rand(r2, b, std=0.3)
                tensors[f"{stem}.lokr_w2_b"] = rand(r2, d, std=0.3)
            else:
                tensors[f"{stem}.lokr_w2_a"] = rand(b, r2, std=0.3)
                tensors[f"{stem}.lokr_w2_b"] = rand(r2, d, *kernel, std=0.3)
        elif kind == "ia3":
            tensors[f"{stem}.weight"] = rand(out, std=0.2)
            tensors[f"{stem}.on_input"] = torch.tensor(0, dtype=torch.int64)
        elif kind == "full":
            tensors[f"{stem}.diff"] = rand(*shape, std=0.01)
            tensors[f"{stem}.diff_b"] = rand(out, std=0.01)
        else:
            raise ValueError(f"unknown adapter kind {kind!r}")
    return tensors


def tensor_region_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the safetensors data region, as kohya stores it in ``sshs_model_hash``."""
    blob = save(dict(tensors))
    (length,) = struct.unpack("<Q", blob[:8])
    return hashlib.sha256(blob[8 + length :]).hexdigest()


def save_safetensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    """``save_file`` with a byte-stable header: safetensors writes metadata in hash order."""
    blob = save(dict(tensors), metadata=dict(metadata))
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keep the data region 8-byte aligned, as safetensors does
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + length :])


@dataclass(frozen=True)
class SampleFile:
    path: Path
    problem: str | None = None  # why a --broken file is unusable


def _metadata(theme: Theme, tensors: Mapping[str, torch.Tensor], index: int) -> dict[str, str]:
    sdxl = theme.base == "sdxl"
    module = "lycoris.kohya" if theme.kind in ("loha", "lokr") else "networks.lora"
    args = {"algo": theme.kind, "conv_dim": theme.rank} if module == "lycoris.kohya" else None
    args = {"conv_dim": theme.rank, "conv_alpha": 1} if theme.kind == "locon" else args
    digest = tensor_region_sha256(tensors)
    started = 1_700_000_000 + 86_400 * 17 * index
    metadata = {
        "ss_output_name": theme.name,
        "ss_network_module": module,
        "ss_network_dim": str(theme.rank),
        "ss_network_alpha": str(theme.alpha),
        "ss_sd_model_name": "sd_xl_base_1.0.safetensors"
        if sdxl
        else "v1-5-pruned-emaonly.safetensors",
        "ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v1",
        "ss_v2": "False",
        "ss_resolution": "(1024, 1024)" if sdxl else "(512, 512)",
        "ss_clip_skip": "2" if theme.category == "character" else "1",
        "ss_num_train_images": str(sum(count for _, count in theme.tags[:1]) * 2),
        "ss_num_epochs": "10",
        "ss_learning_rate": "0.0001",
        "ss_training_comment": theme.comment,
        "ss_training_started_at": str(started),
        "ss_session_id": str(1_000_000 + 7919 * index),
        "ss_tag_frequency": json.dumps({f"10_{theme.name}": dict(theme.tags)}),
        "sshs_model_hash": digest,
    }
    if args:
        metadata["ss_network_args"] = json.dumps(args)
    if theme.modelspec:
        metadata.update(
            {
                "modelspec.sai_model_spec": "1.0.0",
                "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"
                if sdxl
                else "stable-diffusion-v1/lora",
                "modelspec.title": theme.title,
                "modelspec.description": theme.comment,
                "modelspec.trigger_phrase": ", ".join(theme.triggers),
                "modelspec.tags": ", ".join(tag for tag, _ in theme.tags[:5]),
                "modelspec.usage_hint": f"Use at weight {theme.weight}",
                "modelspec.hash_sha256": "0x" + digest,
            }
        )
    return metadata


def _targets(theme: Theme, unet: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    if theme.base == "sdxl":
        return dict(SDXL_MODULES)
    targets = {kohya_stem(name): unet[name] for name in theme.modules}
    if theme.text_encoder:
        te = sd15_text_encoder_modules()
        targets |= {stem: te[stem] for stem in list(te)[: theme.text_encoder]}
    return targets


def _sidecars(theme: Theme, stem: Path) -> None:
    if theme.user_json:
        user = {
            "description": theme.comment,
            "activation text": ", ".join(theme.triggers),
            "preferred weight": theme.weight,
            "sd version": "SDXL" if theme.base == "sdxl" else "SD1",
            "notes": f"sample adapter ({theme.category})",
        }
        stem.with_suffix(".json").write_text(json.dumps(user, indent=2), encoding="utf-8")
    if theme.civitai:
        info = {
            "id": 100_000 + len(theme.name) * 97,
            "modelId": 50_000 + len(theme.title) * 31,
            "name": "v1.0",
            "baseModel": "SDXL 1.0" if theme.base == "sdxl" else "SD 1.5",
            "trainedWords": list(theme.triggers),
            "description": f"<p>{theme.html}</p>",
            "model": {"name": theme.title, "type": "LORA", "tags": [t for t, _ in theme.tags[:4]]},
            "images": [{"meta": {"prompt": theme.example_prompt}}],
        }
        stem.with_suffix(".civitai.info").write_text(json.dumps(info, indent=2), encoding="utf-8")
    if theme.txt:
        stem.with_suffix(".txt").write_text(theme.comment + "\n", encoding="utf-8")


def _write_broken(folder: Path, generator: torch.Generator) -> list[SampleFile]:
    broken = folder / "broken"
    broken.mkdir(parents=True, exist_ok=True)
    files: list[SampleFile] = []
    pickle_path = broken / "old_style_lora.pt"
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(1, 4)}, pickle_path)
    files.append(SampleFile(pickle_path, "pickle format (.pt): never unpickled"))
    truncated = broken / "interrupted_download.safetensors"
    blob = save({"lora_unet_a.lora_down.weight": torch.randn(4, 320, generator=generator)})
    truncated.write_bytes(blob[: len(blob) // 2])
    files.append(SampleFile(truncated, "truncated safetensors"))
    embedding = broken / "textual_inversion_embedding.safetensors"
    save_file({"emb_params": torch.randn(2, 768, generator=generator)}, str(embedding))
    files.append(SampleFile(embedding, "a safetensors file that is not a LoRA"))
    empty = broken / "empty.safetensors"
    empty.write_bytes(b"")
    files.append(SampleFile(empty, "empty file"))
    return files


def write_sample(
    folder: str | Path,
    *,
    broken: bool = False,
    seed: int = 0,
    themes: Sequence[Theme] = THEMES,
) -> list[SampleFile]:
    """Write the sample library under ``folder``; returns every file written (adapters first).

    ``themes`` picks a part of it (``sample_themes.FIRST_DOZEN``: the dozen the selector's
    hand-made benchmark was written for).
    """
    root = Path(folder)
    generator = torch.Generator().manual_seed(seed)
    unet = sd15_unet_modules()
    written: list[SampleFile] = []
    for index, theme in enumerate(themes):
        directory = root / theme.folder
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{theme.name}.safetensors"
        tensors = make_tensors(
            theme.kind,
            _targets(theme, unet),
            rank=theme.rank,
            alpha=theme.alpha,
            generator=generator,
            tucker=theme.tucker,
        )
        save_safetensors(path, tensors, _metadata(theme, tensors, index))
        _sidecars(theme, path.with_suffix(""))
        preview = path.with_suffix(".preview.png" if index % 3 else ".png")
        draw_preview(theme, seed=seed + index).save(preview)
        written.append(SampleFile(path))
    if broken:
        written.extend(_write_broken(root, generator))
    (root / MARKER).write_text(f"PixTention sample library {SAMPLE_VERSION}\n", encoding="utf-8")
    return written


def sample_version(folder: str | Path) -> str | None:
    """The sample version ``folder`` was written with, or None if it is not a sample library."""
    try:
        text = (Path(folder) / MARKER).read_text(encoding="utf-8")
    except OSError:
        return None
    return text.split()[-1] if text.split() else ""
