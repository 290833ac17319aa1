"""Forge's patcher surface: ``forge_objects.unet`` is a ``UnetPatcher`` around a ``KModel``.

``clone()`` shares the torch model and deep-copies ``model_options``; the sampler calls the UNet
through ``model_options["model_function_wrapper"]`` when one is set, with ``cond_or_uncond``
telling which chunk of rows is cond (0) or uncond (1), as Forge's ``calc_cond_uncond_batch``.
"""

from __future__ import annotations

import copy

import torch
from stand_in_models import TextProcessing

from tests.rig.unet import tiny_unet


class KModel(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.diffusion_model = unet

    def apply_model(self, x, t, c_crossattn=None, transformer_options=None, **kwargs):
        return self.diffusion_model(x, t, context=c_crossattn)


class UnetPatcher:
    def __init__(self, model: KModel) -> None:
        self.model = model
        self.model_options: dict = {"transformer_options": {}}
        self.lora_patches: dict = {}
        self.object_patches: dict = {}

    def clone(self) -> UnetPatcher:
        n = UnetPatcher(self.model)
        n.model_options = copy.deepcopy(self.model_options)
        n.lora_patches = self.lora_patches.copy()
        n.object_patches = self.object_patches.copy()
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


class ForgeDiffusionEngine(torch.nn.Module):
    """``p.sd_model`` on Forge: no ``cond_stage_model``; ``text_processing_engine`` tokenises."""

    is_sdxl = False

    def __init__(self, unet: torch.nn.Module, text: TextProcessing) -> None:
        super().__init__()
        self.text_processing_engine = text
        self.cond_stage_model = None
        patcher = UnetPatcher(KModel(unet))
        self.forge_objects = ForgeObjects(patcher)
        self.forge_objects_original = self.forge_objects.shallow_copy()
        self.forge_objects_after_applying_lora = self.forge_objects.shallow_copy()

    def get_learned_conditioning(self, prompts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.text_processing_engine(prompts)

    def decode_first_stage(self, latent: torch.Tensor) -> torch.Tensor:
        rgb = torch.sigmoid(latent[:, :3])
        return torch.nn.functional.interpolate(rgb, scale_factor=8, mode="nearest")


def build_forge_model(seed: int = 0) -> ForgeDiffusionEngine:
    return ForgeDiffusionEngine(tiny_unet(seed=seed), TextProcessing(32, seed))


def calc_cond_uncond_batch(patcher: UnetPatcher, x, timestep, cond, uncond) -> tuple:
    """Run cond and uncond chunks, concatenated when their contexts have the same length."""
    options = patcher.model_options
    wrapper = options.get("model_function_wrapper")
    chunks = [(0, cond), (1, uncond)]
    groups = [chunks] if cond.shape[1] == uncond.shape[1] else [[chunks[0]], [chunks[1]]]
    out = {}
    for group in groups:
        cond_or_uncond = [kind for kind, _ in group]
        input_x = torch.cat([x] * len(group))
        context = torch.cat([ctx for _, ctx in group])
        t = torch.cat([timestep] * len(group))
        transformer_options = dict(options["transformer_options"])
        transformer_options["cond_or_uncond"] = cond_or_uncond[:]
        transformer_options["sigmas"] = t
        c = {"c_crossattn": context, "transformer_options": transformer_options}
        if wrapper is not None:
            output = wrapper(
                patcher.model.apply_model,
                {"input": input_x, "timestep": t, "c": c, "cond_or_uncond": cond_or_uncond},
            )
        else:
            output = patcher.model.apply_model(input_x, t, **c)
        for i, kind in enumerate(cond_or_uncond):
            out[kind] = output[i * x.shape[0] : (i + 1) * x.shape[0]]
    return out[0], out[1]
