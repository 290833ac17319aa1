"""``modules.processing``: a txt2img job through the script hooks in the WebUI's order.

A1111 1.10 order: before_process → setup_prompts → process → per batch: before_process_batch
(raw prompts) → extra-network tags stripped → after_extra_networks_activate → process_batch
(stripped prompts) → conds → ``p.sample`` (process_before_every_sampling right before the
sampler; again before the hires pass, after before_hr) → decode → postprocess_batch → infotexts;
then postprocess. Like the WebUI there is no ``finally``: an exception escaping sampling skips
postprocess. With a Forge model (``sd_model.forge_objects``) the Forge differences apply: the
UNet patcher is reset from ``forge_objects_after_applying_lora`` right before every
process_before_every_sampling, which runs twice for the hires pass, and the UNet is called
through the patcher (``cond_or_uncond`` in its wrapper).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from PIL import Image

from modules import extra_networks, infotext_utils, script_callbacks, shared


class StableDiffusionProcessingTxt2Img:
    def __init__(
        self,
        *,
        sd_model,
        prompt,
        negative_prompt="",
        seed=1,
        batch_size=1,
        n_iter=1,
        steps=4,
        cfg_scale=5.0,
        width=64,
        height=64,
        enable_hr=False,
        hr_scale=2.0,
        hr_second_pass_steps=2,
        denoising_strength=0.6,
        scripts=None,
        script_args=None,
    ):
        self.sd_model = sd_model
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.seed = seed
        self.subseed = -1
        self.subseed_strength = 0.0
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.steps = steps
        self.cfg_scale = cfg_scale
        self.width = width
        self.height = height
        self.enable_hr = enable_hr
        self.hr_scale = hr_scale
        self.hr_second_pass_steps = hr_second_pass_steps
        self.denoising_strength = denoising_strength
        self.scripts = scripts
        self.script_args = list(script_args or [])
        self.extra_generation_params: dict[str, Any] = {}
        self.sampler_name = "Euler"
        self.all_prompts: list[str] = []
        self.all_negative_prompts: list[str] = []
        self.all_seeds: list[int] = []
        self.all_subseeds: list[int] = []
        self.prompts = None
        self.negative_prompts = None
        self.seeds = None
        self.subseeds = None
        self.iteration = 0
        self.extra_network_data = None
        self.is_hr_pass = False
        self.hr_prompts = None
        self.c = None
        self.uc = None

    @property
    def is_forge(self) -> bool:
        return hasattr(self.sd_model, "forge_objects")

    def setup_prompts(self) -> None:
        count = self.batch_size * self.n_iter
        prompts = self.prompt if isinstance(self.prompt, list) else [self.prompt] * count
        self.all_prompts = list(prompts)
        self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        self.all_seeds = [self.seed + i for i in range(len(self.all_prompts))]
        self.all_subseeds = [-1] * len(self.all_prompts)

    def sample(
        self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts
    ):
        shape = (len(seeds), 4, self.height // 8, self.width // 8)
        x = torch.stack(
            [torch.randn(shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds]
        )
        if self.is_forge:
            self.sd_model.forge_objects = (
                self.sd_model.forge_objects_after_applying_lora.shallow_copy()
            )
        self.scripts.process_before_every_sampling(
            self, x=x, noise=x, c=conditioning, uc=unconditional_conditioning
        )
        samples = euler(self, x, conditioning, unconditional_conditioning, self.steps, start=0)
        if not self.enable_hr:
            return samples
        self.is_hr_pass = True
        size = (
            math.ceil(samples.shape[2] * self.hr_scale),
            math.ceil(samples.shape[3] * self.hr_scale),
        )
        upscaled = torch.nn.functional.interpolate(samples, size=size, mode="bilinear")
        self.scripts.before_hr(self)
        if self.is_forge:  # Forge calls it once before the reset (thrown away) and once after
            self.scripts.process_before_every_sampling(
                self, x=upscaled, noise=upscaled, c=conditioning, uc=unconditional_conditioning
            )
            self.sd_model.forge_objects = (
                self.sd_model.forge_objects_after_applying_lora.shallow_copy()
            )
        self.scripts.process_before_every_sampling(
            self, x=upscaled, noise=upscaled, c=conditioning, uc=unconditional_conditioning
        )
        steps = self.hr_second_pass_steps
        return euler(
            self,
            upscaled,
            conditioning,
            unconditional_conditioning,
            steps,
            start=int(steps * (1 - self.denoising_strength)),
        )


def sigmas_for(steps: int) -> torch.Tensor:
    return torch.cat(
        [torch.exp(torch.linspace(math.log(14.6), math.log(0.03), steps)), torch.zeros(1)]
    )


class CFGDenoiser:
    """A1111: cond rows then uncond rows in one call, split when their lengths differ."""

    def __init__(self, p) -> None:
        self.p = p
        self.step = 0
        self.total_steps = 0

    def unet(self, x, sigma, context):
        c_in = 1 / torch.sqrt(sigma**2 + 1)
        t = (sigma * 60).clamp(max=999)
        eps = self.p.sd_model.model.diffusion_model(
            x * c_in[:, None, None, None], t, context=context
        )
        return x - eps * sigma[:, None, None, None]

    def __call__(self, x, sigma, uncond, cond, cond_scale):
        batch = x.shape[0]
        x_in = torch.cat([x, x])
        sigma_in = torch.cat([sigma, sigma])
        params = script_callbacks.CFGDenoiserParams(
            x_in,
            None,
            sigma_in,
            shared.state.sampling_step,
            shared.state.sampling_steps,
            cond,
            uncond,
            self,
        )
        script_callbacks.cfg_denoiser_callback(params)
        x_in, sigma_in, cond, uncond = params.x, params.sigma, params.text_cond, params.text_uncond
        if cond.shape[1] == uncond.shape[1]:
            out = self.unet(x_in, sigma_in, torch.cat([cond, uncond]))
        else:
            out = torch.cat(
                [
                    self.unet(x_in[:batch], sigma_in[:batch], cond),
                    self.unet(x_in[batch:], sigma_in[batch:], uncond),
                ]
            )
        self.step += 1
        return out[batch:] + (out[:batch] - out[batch:]) * cond_scale


class ForgeCFGDenoiser(CFGDenoiser):
    """Forge: the callback sees the un-doubled batch; the patcher runs cond/uncond chunks."""

    def __call__(self, x, sigma, uncond, cond, cond_scale):
        import forge_backend

        params = script_callbacks.CFGDenoiserParams(
            x,
            None,
            sigma,
            shared.state.sampling_step,
            shared.state.sampling_steps,
            cond,
            uncond,
            self,
        )
        script_callbacks.cfg_denoiser_callback(params)
        patcher = self.p.sd_model.forge_objects.unet
        c_in = 1 / torch.sqrt(sigma**2 + 1)
        t = (sigma * 60).clamp(max=999)
        eps_c, eps_u = forge_backend.calc_cond_uncond_batch(
            patcher, x * c_in[:, None, None, None], t, params.text_cond, params.text_uncond
        )
        self.step += 1
        s = sigma[:, None, None, None]
        return (x - eps_u * s) + ((x - eps_c * s) - (x - eps_u * s)) * cond_scale


def euler(p, x, cond, uncond, steps: int, *, start: int) -> torch.Tensor:
    sigmas = sigmas_for(steps)[start:]
    denoiser = ForgeCFGDenoiser(p) if p.is_forge else CFGDenoiser(p)
    denoiser.total_steps = len(sigmas) - 1
    shared.state.sampling_steps = len(sigmas) - 1
    x = x * sigmas[0]
    with torch.no_grad():
        for i in range(len(sigmas) - 1):
            shared.state.sampling_step = i
            sigma = sigmas[i].expand(x.shape[0])
            denoised = denoiser(x, sigma, uncond, cond, p.cfg_scale)
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


class Processed:
    def __init__(self, p, images, infotexts) -> None:
        self.images = images
        self.infotexts = infotexts
        self.prompt = p.prompt
        self.all_prompts = p.all_prompts
        self.extra_generation_params = p.extra_generation_params
        self.info = infotexts[0] if infotexts else ""


def create_infotext(
    p,
    all_prompts,
    all_seeds,
    all_subseeds,
    comments=None,
    iteration=0,
    position_in_batch=0,
    use_main_prompt=False,
    index=None,
    all_negative_prompts=None,
):
    if index is None:
        index = position_in_batch + iteration * p.batch_size
    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts
    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "CFG scale": p.cfg_scale,
        "Seed": all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        **p.extra_generation_params,
    }
    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**locals())
        except Exception:
            from modules import errors

            errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
            generation_params[key] = None
    text = ", ".join(
        k if k == v else f"{k}: {infotext_utils.quote(v)}"
        for k, v in generation_params.items()
        if v is not None
    )
    negative = (
        f"\nNegative prompt: {all_negative_prompts[index]}" if all_negative_prompts[index] else ""
    )
    return f"{all_prompts[index]}{negative}\n{text}".strip()


def process_images(p) -> Processed:
    p.scripts.before_process(p)
    return process_images_inner(p)


def process_images_inner(p) -> Processed:
    p.setup_prompts()
    p.scripts.process(p)
    images, infotexts = [], []
    for n in range(p.n_iter):
        p.iteration = n
        rows = slice(n * p.batch_size, (n + 1) * p.batch_size)
        p.prompts = p.all_prompts[rows]
        p.negative_prompts = p.all_negative_prompts[rows]
        p.seeds = p.all_seeds[rows]
        p.subseeds = p.all_subseeds[rows]
        if p.is_forge:
            p.sd_model.forge_objects = p.sd_model.forge_objects_original.shallow_copy()
        p.scripts.before_process_batch(
            p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds
        )
        p.prompts, p.extra_network_data = extra_networks.parse_prompts(p.prompts)
        if p.is_forge:
            p.sd_model.forge_objects_after_applying_lora = p.sd_model.forge_objects.shallow_copy()
        p.scripts.after_extra_networks_activate(
            p,
            batch_number=n,
            prompts=p.prompts,
            seeds=p.seeds,
            subseeds=p.subseeds,
            extra_network_data=p.extra_network_data,
        )
        p.scripts.process_batch(
            p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds
        )
        p.c = p.sd_model.get_learned_conditioning(p.prompts)
        p.uc = p.sd_model.get_learned_conditioning(p.negative_prompts)
        samples = p.sample(
            conditioning=p.c,
            unconditional_conditioning=p.uc,
            seeds=p.seeds,
            subseeds=p.subseeds,
            subseed_strength=p.subseed_strength,
            prompts=p.prompts,
        )
        decoded = p.sd_model.decode_first_stage(samples)
        batch_images = [to_image(x) for x in decoded]
        p.scripts.postprocess_batch(p, batch_images, batch_number=n)
        for i, image in enumerate(batch_images):
            images.append(image)
            infotexts.append(
                create_infotext(
                    p, p.all_prompts, p.all_seeds, p.all_subseeds, iteration=n, position_in_batch=i
                )
            )
    processed = Processed(p, images, infotexts)
    p.scripts.postprocess(p, processed)
    return processed


def to_image(x: torch.Tensor) -> Image.Image:
    array = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array)
