"""LoRA file factory for tests and benchmarks: real kohya-format files of every layer kind.

``write_lora`` writes our own files (all kinds, SD1.5 / tiny-UNet / SDXL key names, realistic
``ss_*`` headers, sidecars, previews); ``lycoris_file`` writes files with ``lycoris-lora`` itself
on a live UNet and hands back its network so tests can compare against LyCORIS' own maths;
``write_synthetic_library`` writes thousands of tiny files with varied realistic headers.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from pixtention.library.sample import (
    kohya_stem,
    make_tensors,
    save_safetensors,
    sd15_text_encoder_modules,
    sd15_unet_modules,
    tensor_region_sha256,
)
from pixtention.library.sample_art import draw_preview
from pixtention.library.sample_themes import THEMES

KINDS = ("lora", "locon", "loha", "lokr", "ia3", "full", "dora", "peft")
TINY = {"model_channels": 32, "context_dim": 32}  # tests/rig/unet.py tiny_unet() defaults
SDXL_TSV = Path(__file__).with_name("sdxl_unet_modules.tsv")
_ATTENTION_PARTS = ("transformer_blocks", "proj_in", "proj_out")


def _selected(name: str, select: str) -> bool:
    if select == "all":
        return True
    if select == "cross_kv":
        return name.endswith(("attn2.to_k", "attn2.to_v"))
    if select == "attention":
        return any(part in name for part in _ATTENTION_PARTS) and "norm" not in name
    raise ValueError(f"unknown selection {select!r}")


def sd15_targets(
    *,
    model_channels: int = TINY["model_channels"],
    context_dim: int = TINY["context_dim"],
    select: str = "attention",
    naming: str = "kohya",
) -> dict[str, tuple[int, ...]]:
    """SD1.5-layout targets (tiny widths by default) as ``{key stem: weight shape}``.

    ``naming``: ``kohya`` (``lora_unet_down_blocks_0_…``), ``peft`` (``unet.down_blocks.0.…``),
    ``base_model`` (``base_model.model.down_blocks.0.…``) or ``dotted`` (bare diffusers names).
    ``select``: ``cross_kv``, ``attention`` or ``all`` (adds resnet and sampler convs).
    """
    prefix = {"peft": "unet.", "base_model": "base_model.model.", "dotted": ""}
    modules = sd15_unet_modules(model_channels, context_dim)
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in modules.items():
        if _selected(name, select):
            key = kohya_stem(name) if naming == "kohya" else prefix[naming] + name
            out[key] = shape
    return out


def model_targets(
    model: nn.Module, *, prefix: str = "lora_unet_", select: str = "attention"
) -> dict[str, tuple[int, ...]]:
    """Compvis-style kohya stems (as SDXL files use) for a live module tree's Linear/Conv2d."""
    out: dict[str, tuple[int, ...]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d) and _selected(name, select):
            out[prefix + name.replace(".", "_")] = tuple(module.weight.shape)
    return out


def sdxl_modules(tsv: Path = SDXL_TSV) -> dict[str, tuple[int, ...]]:
    """SDXL base UNet module paths (under ``diffusion_model``) → weight shapes, from the TSV."""
    modules: dict[str, tuple[int, ...]] = {}
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _type, shape = line.split("\t")
            modules[name] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    return modules


def sdxl_targets(*, select: str = "attention") -> dict[str, tuple[int, ...]]:
    """kohya SDXL stems (compvis spelling, ``lora_unet_input_blocks_4_1_…``) → shapes."""
    return {
        "lora_unet_" + name.replace(".", "_"): shape
        for name, shape in sdxl_modules().items()
        if _selected(name, select)
    }


def realistic_metadata(
    name: str, *, kind: str = "lora", rank: int = 4, alpha: float | None = 1.0, seed: int = 0
) -> dict[str, str]:
    """A kohya-style ``ss_*`` header for an SD1.5 adapter named ``name``."""
    rng = random.Random(f"{name}:{seed}")
    words = [w for w in name.replace("-", "_").split("_") if w]
    tags = {" ".join(words): rng.randint(20, 60)}
    for tag in rng.sample(_STYLES + _SUBJECTS, 4):
        tags[tag] = rng.randint(1, 30)
    lycoris = kind in ("loha", "lokr", "ia3", "full", "dora")
    return {
        "ss_output_name": name,
        "ss_network_module": "lycoris.kohya" if lycoris else "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha if alpha is not None else rank),
        "ss_network_args": json.dumps({"algo": kind}) if lycoris else "null",
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
        "ss_base_model_version": "sd_v1",
        "ss_resolution": "(512, 512)",
        "ss_num_train_images": str(rng.randint(20, 400)),
        "ss_training_comment": f"{' '.join(words)} adapter",
        "ss_training_started_at": str(1_690_000_000 + rng.randint(0, 10**7)),
        "ss_session_id": str(rng.randint(10**8, 10**9)),
        "ss_tag_frequency": json.dumps({f"10_{name}": tags}),
    }


def _write_sidecars(stem: Path, sidecars: Mapping[str, Any]) -> None:
    for suffix, content in sidecars.items():
        target = Path(f"{stem}{suffix}")
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_text(json.dumps(content, indent=2), encoding="utf-8")


def write_lora(
    path: str | Path,
    *,
    kind: str = "lora",
    modules: Mapping[str, tuple[int, ...]] | None = None,
    rank: int = 4,
    alpha: float | None = 1.0,
    metadata: Mapping[str, str] | None = None,
    realistic: bool = True,
    sidecars: Mapping[str, Any] | None = None,
    preview: bool = False,
    text_encoder: Mapping[str, tuple[int, ...]] | None = None,
    tucker: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float16,
) -> Path:
    """Write one adapter file and return its path.

    ``modules`` is ``{key stem: target weight shape}`` (default: the tiny SD1.5 UNet's attention
    modules, kohya names — or PEFT names for ``kind="peft"``; ``all`` modules for ``locon``).
    ``metadata`` overrides the generated ``ss_*`` header (``realistic=False`` starts empty).
    ``sidecars`` maps a suffix (``.json``, ``.civitai.info``, ``.txt``) to a dict (written as
    JSON), a str or bytes. ``preview`` adds ``name.preview.png``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown adapter kind {kind!r}; one of {KINDS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if modules is None:
        naming = "peft" if kind == "peft" else "kohya"
        modules = sd15_targets(select="all" if kind == "locon" else "attention", naming=naming)
    generator = torch.Generator().manual_seed(seed)
    targets = {**modules, **(text_encoder or {})}
    tensors = make_tensors(
        kind, targets, rank=rank, alpha=alpha, generator=generator, dtype=dtype, tucker=tucker
    )
    header = realistic_metadata(path.stem, kind=kind, rank=rank, alpha=alpha, seed=seed)
    header = header if realistic else {}
    header = {**header, **(metadata or {})}
    if realistic:
        header.setdefault("sshs_model_hash", tensor_region_sha256(tensors))
    save_safetensors(path, tensors, header)
    stem = path.with_suffix("")
    _write_sidecars(stem, sidecars or {})
    if preview:
        theme = THEMES[seed % len(THEMES)]
        draw_preview(theme, seed=seed).save(Path(f"{stem}.preview.png"))
    return path


def sd15_text_encoder_targets(count: int = 2) -> dict[str, tuple[int, ...]]:
    """The first ``count`` SD1.5 text-encoder stems (``lora_te_…``) with their shapes."""
    return dict(list(sd15_text_encoder_modules().items())[:count])


@contextlib.contextmanager
def lycoris_file(
    path: str | Path,
    model: nn.Module,
    *,
    algo: str = "lora",
    rank: int = 4,
    alpha: float = 2.0,
    preset: str = "full",
    prefix: str = "lora_unet",
    seed: int = 0,
    **kwargs: Any,
) -> Iterator[Any]:
    """Write a ``lycoris-lora`` file for ``model`` and yield the applied LyCORIS network.

    Parameters LyCORIS initialises to zero are re-randomised so every delta is non-zero; the
    model's modules are restored on exit. Extra ``kwargs`` go to ``create_lycoris`` (e.g.
    ``use_tucker=True``, ``conv_dim=2``, ``factor=4``, ``dora_wd=True``).
    """
    from lycoris import LycorisNetwork, create_lycoris

    old_prefix = LycorisNetwork.LORA_PREFIX
    LycorisNetwork.LORA_PREFIX = prefix
    try:
        torch.manual_seed(seed)
        network = create_lycoris(
            model, 1.0, linear_dim=rank, linear_alpha=alpha, algo=algo, preset=preset, **kwargs
        )
    finally:
        LycorisNetwork.LORA_PREFIX = old_prefix
    network.apply_to()
    try:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in network.named_parameters():
                if "dora_scale" not in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
        network.save_weights(str(path), torch.float32, {"ss_network_module": "lycoris.kohya"})
        yield network
    finally:
        network.restore()


# fmt: off
_STYLES = [
    "watercolor", "oil painting", "pixel art", "anime", "ink sketch", "vaporwave", "art nouveau",
    "ukiyo-e", "low poly", "claymation", "pencil drawing", "cel shading", "impressionism",
    "film noir", "synthwave", "gouache", "charcoal", "stained glass", "papercut", "isometric",
]
_SUBJECTS = [
    "dragon", "knight", "cat", "samurai", "robot", "witch", "mermaid", "astronaut", "fox",
    "vampire", "elf archer", "wolf", "phoenix", "pirate captain", "ninja", "owl", "golem",
    "fairy", "cyborg", "centaur", "castle", "forest", "desert city", "space station", "lighthouse",
    "gothic dress", "kimono", "goggles", "armor", "hoodie", "sword", "lantern", "motorcycle",
]
_MODIFIERS = ["red", "golden", "ancient", "neon", "frozen", "tiny", "giant", "haunted", "royal",
              "steampunk", "cyberpunk", "autumn", "winter", "celestial", "shadow"]
# fmt: on


def synthetic_header(index: int, *, seed: int = 0) -> dict[str, str]:
    """A varied, realistic kohya header for synthetic library number ``index`` (bench)."""
    rng = random.Random(f"{seed}:{index}")
    subject, style = rng.choice(_SUBJECTS), rng.choice(_STYLES)
    modifier = rng.choice(_MODIFIERS)
    focus = rng.choice(("subject", "style"))
    name = f"{modifier} {subject}" if focus == "subject" else f"{style} style"
    slug = f"{name.replace(' ', '_')}_{index}"
    tags = {name: rng.randint(30, 80), subject: rng.randint(5, 40), style: rng.randint(1, 30)}
    tags.update({rng.choice(_SUBJECTS): rng.randint(1, 10) for _ in range(3)})
    header = realistic_metadata(slug, rank=rng.choice((4, 8, 16, 32)), seed=seed)
    header["ss_tag_frequency"] = json.dumps({f"{rng.randint(1, 20)}_{slug}": tags})
    header["ss_training_comment"] = f"{name}, {style}, trigger: {slug.split('_')[0]}{index % 97}"
    return header


def write_synthetic_library(
    folder: str | Path, count: int, *, seed: int = 0, per_folder: int = 500
) -> list[Path]:
    """``count`` tiny adapter files (one rank-1 module each) with ``synthetic_header``s."""
    root = Path(folder)
    stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    tensors = {
        f"{stem}.lora_down.weight": torch.zeros(1, 768, dtype=torch.float16),
        f"{stem}.lora_up.weight": torch.zeros(320, 1, dtype=torch.float16),
    }
    paths = []
    for index in range(count):
        header = synthetic_header(index, seed=seed)
        directory = root / f"batch_{index // per_folder:04d}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{header['ss_output_name']}.safetensors"
        tensors_i = {k: v + (index % 251) / 1000 for k, v in tensors.items()}
        save_file(tensors_i, str(path), metadata=header)
        paths.append(path)
    return paths
