"""Forge 2's backend surface: the model object, the UNet patcher and the CFG sampling function.

- ``ForgeDiffusionEngine`` (``p.sd_model``) is a plain object, not a torch module: no
  ``cond_stage_model`` (None) and no ``model``; ``text_processing_engine`` tokenises;
  ``is_sd1``/``is_sd2``/``is_sdxl``/``is_sd3`` are set (an SD1.5 model here) and there is no
  ``is_flux``. ``forge_objects``, ``forge_objects_original`` and
  ``forge_objects_after_applying_lora`` are ``ForgeObjects`` whose ``unet`` is a ``UnetPatcher``.
- ``UnetPatcher.clone()`` shares the ``KModel`` and deep-copies ``model_options``; the sampler
  calls ``model_options["model_function_wrapper"]`` when set, else ``KModel.apply_model``, which
  takes sigma as its timestep, scales the input, runs ``diffusion_model`` and returns denoised.
- ``sampling_function_inner`` is Forge's CFG: at CFG 1 (unless ``disable_cfg1_optimization``)
  uncond is not run at all. ``calc_cond_uncond_batch`` lists cond then uncond, then batches every
  chunk that can be concatenated with the first in **reverse** order — uncond rows first,
  ``cond_or_uncond == [1, 0]`` — and cross-attention contexts of different lengths concatenate
  when the longer is at most 4× the shorter: each is repeated along the tokens to their least
  common multiple (77 and 154 → one call over 154 tokens), otherwise they run as separate calls.
"""

from __future__ import annotations

import copy
import math

import torch
from stand_in_models import TextProcessing

from tests.rig.unet import tiny_unet

COND, UNCOND = 0, 1


class KModel(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.diffusion_model = unet

    def apply_model(self, x, t, c_crossattn=None, transformer_options=None, **kwargs):
        sigma = t
        c_in = 1 / torch.sqrt(sigma**2 + 1)
        timestep = (sigma * 60).clamp(max=999)  # the stand-in's sigma → timestep
        eps = self.diffusion_model(x * c_in[:, None, None, None], timestep, context=c_crossattn)
        return x - eps * sigma[:, None, None, None]


class UnetPatcher:
    def __init__(self, model: KModel) -> None:
        self.model = model
        self.model_options: dict = {"transformer_options": {}}
        self.lora_patches: dict = {}
        self.object_patches: dict = {}

    def clone(self) -> UnetPatcher:
        n = UnetPatcher(self.model)
        n.lora_patches = self.lora_patches.copy()
        n.object_patches = self.object_patches.copy()
        n.model_options = copy.deepcopy(self.model_options)
        return n

    def set_model_unet_function_wrapper(self, unet_wrapper_function) -> None:
        self.model_options["model_function_wrapper"] = unet_wrapper_function

    def set_transformer_option(self, k, v) -> None:
        self.model_options["transformer_options"][k] = v


class ForgeObjects:
    def __init__(self, unet, clip=None, vae=None, clipvision=None) -> None:
        self.unet = unet
        self.clip = clip
        self.vae = vae
        self.clipvision = clipvision

    def shallow_copy(self) -> ForgeObjects:
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class ForgeDiffusionEngine:
    """``p.sd_model`` on Forge (an SD1.5 ``StableDiffusion`` engine)."""

    def __init__(self, unet: torch.nn.Module, text: TextProcessing) -> None:
        self.current_lora_hash = str([])
        self.tiling_enabled = False
        self.first_stage_model = None
        self.cond_stage_model = None
        self.use_distilled_cfg_scale = False
        self.text_processing_engine = text
        self.forge_objects = ForgeObjects(UnetPatcher(KModel(unet)))
        self.forge_objects_original = self.forge_objects.shallow_copy()
        self.forge_objects_after_applying_lora = self.forge_objects.shallow_copy()
        self.is_sd1, self.is_sd2, self.is_sdxl, self.is_sd3 = True, False, False, False

    def get_learned_conditioning(self, prompts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.text_processing_engine(prompts)

    def decode_first_stage(self, latent: torch.Tensor) -> torch.Tensor:
        rgb = torch.sigmoid(latent[:, :3])
        return torch.nn.functional.interpolate(rgb, scale_factor=8, mode="nearest")


def build_forge_model(seed: int = 0) -> ForgeDiffusionEngine:
    return ForgeDiffusionEngine(tiny_unet(seed=seed), TextProcessing(32, seed))


def _can_concat(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape == b.shape:
        return True
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        return False
    lcm = a.shape[1] * b.shape[1] // math.gcd(a.shape[1], b.shape[1])
    return lcm // min(a.shape[1], b.shape[1]) <= 4


def calc_cond_uncond_batch(model: KModel, cond, uncond, x_in, timestep, model_options):
    """Denoised ``(cond, uncond)``; ``uncond=None`` runs cond only (uncond comes back zero)."""
    out = {COND: torch.zeros_like(x_in), UNCOND: torch.zeros_like(x_in)}
    to_run = [(cond, COND)] + ([(uncond, UNCOND)] if uncond is not None else [])
    while to_run:
        first = to_run[0][0]
        batch = [i for i, (context, _) in enumerate(to_run) if _can_concat(context, first)]
        batch.reverse()
        chunks = [to_run.pop(i) for i in batch]
        cond_or_uncond = [kind for _, kind in chunks]
        length = 1
        for context, _ in chunks:
            length = length * context.shape[1] // math.gcd(length, context.shape[1])
        context = torch.cat([c.repeat(1, length // c.shape[1], 1) for c, _ in chunks])
        input_x = torch.cat([x_in] * len(chunks))
        timestep_ = torch.cat([timestep] * len(chunks))
        transformer_options = dict(model_options.get("transformer_options", {}))
        transformer_options["cond_or_uncond"] = cond_or_uncond[:]
        transformer_options["sigmas"] = timestep
        c = {"c_crossattn": context, "transformer_options": transformer_options}
        wrapper = model_options.get("model_function_wrapper")
        if wrapper is not None:
            args = {
                "input": input_x,
                "timestep": timestep_,
                "c": c,
                "cond_or_uncond": cond_or_uncond,
            }
            output = wrapper(model.apply_model, args).chunk(len(chunks))
        else:
            output = model.apply_model(input_x, timestep_, **c).chunk(len(chunks))
        for kind, chunk in zip(cond_or_uncond, output):
            out[kind] += chunk
    return out[COND], out[UNCOND]


def sampling_function_inner(model, x, timestep, uncond, cond, cond_scale, model_options):
    if math.isclose(cond_scale, 1.0) and not model_options.get("disable_cfg1_optimization", False):
        uncond = None
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond, x, timestep, model_options)
    return uncond_pred + (cond_pred - uncond_pred) * cond_scale
