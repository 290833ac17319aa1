"""``modules.processing``: a txt2img job through the script hooks in the WebUI's order.

The processing classes are ``@dataclass``es, as in both WebUIs, hence unhashable (``hash(p)``
raises TypeError: key by identity). Per batch, in A1111 1.10 and Forge 2 alike:

1. prompts sliced from ``all_prompts``; before_process_batch (raw prompts, tags still in);
2. ``parse_extra_network_prompts``: tags stripped from ``p.prompts``; with hires fix,
   ``p.hr_prompts`` is re-sliced from the untouched ``all_hr_prompts`` and its tags parsed into
   ``p.hr_extra_network_data``;
3. ``extra_networks.activate(p, p.extra_network_data)``: the built-in Lora loads the tagged
   networks globally, then after_extra_networks_activate;
4. process_batch; conds; the infotext of image 0 (the WebUI's ``params.txt``);
5. ``p.sample``: process_before_every_sampling right before the sampler; for the hires pass
   ``is_hr_pass``, ``activate(p, p.hr_extra_network_data)``, hires conds from ``hr_prompts``,
   before_hr, process_before_every_sampling, sampling;
6. decode, postprocess_batch, each image's infotext; after the last batch, postprocess.

Like the WebUI there is no ``finally``: an exception escaping sampling skips postprocess.
``create_infotext`` gets, for image ``i`` of a batch, the batch's prompts and ``index=i`` (its
position in the batch, not in the job), and calls a callable ``extra_generation_params`` value
with its locals. ``Processed.js()`` is what the API returns as ``info``: ``json.dumps`` with
``default=lambda o: None``, so a value still callable there becomes null.

With a Forge model (``sd_model.forge_objects``): ``forge_objects`` is reset from
``forge_objects_original`` at each batch and copied from ``forge_objects_after_applying_lora``
after activation and right before every process_before_every_sampling (which runs twice for the
hires pass: once before that copy, thrown away, once after); the UNet runs through the patcher
(``forge_backend``: uncond rows first, contexts of different lengths repeated into one call, no
uncond at CFG 1); uncond is not even encoded at CFG 1, and the hires pass uses ``hr_cfg``
(default 1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from modules import extra_networks, infotext_utils, script_callbacks, shared


@dataclass(repr=False)
class StableDiffusionProcessing:
    sd_model: Any = None
    prompt: Any = ""
    negative_prompt: Any = ""
    seed: int = 1
    subseed: int = -1
    subseed_strength: float = 0.0
    sampler_name: str = "Euler"
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 4
    cfg_scale: float = 5.0
    width: int = 64
    height: int = 64
    extra_generation_params: dict = None
    denoising_strength: float = None
    disable_extra_networks: bool = False
    comments: dict = None
    scripts: Any = None  # in the WebUI a property over ``scripts_value``
    script_args: Any = None

    is_hr_pass: bool = field(default=False, init=False)
    c: Any = field(default=None, init=False)
    uc: Any = field(default=None, init=False)
    all_prompts: list = field(default=None, init=False)
    all_negative_prompts: list = field(default=None, init=False)
    all_seeds: list = field(default=None, init=False)
    all_subseeds: list = field(default=None, init=False)
    iteration: int = field(default=0, init=False)
    main_prompt: str = field(default=None, init=False)
    main_negative_prompt: str = field(default=None, init=False)
    prompts: list = field(default=None, init=False)
    negative_prompts: list = field(default=None, init=False)
    seeds: list = field(default=None, init=False)
    subseeds: list = field(default=None, init=False)
    extra_network_data: dict = field(default=None, init=False)
    is_api: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.comments = {}
        self.extra_generation_params = self.extra_generation_params or {}
        self.script_args = self.script_args or []

    @property
    def is_forge(self) -> bool:
        return hasattr(self.sd_model, "forge_objects")

    def setup_prompts(self) -> None:
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]
        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    def setup_conds(self) -> None:
        if self.is_forge and self.cfg_scale == 1:
            self.uc = None
            print("Skipping unconditional conditioning when CFG = 1. Negative Prompts are ignored.")
        else:
            self.uc = self.sd_model.get_learned_conditioning(self.negative_prompts)
        self.c = self.sd_model.get_learned_conditioning(self.prompts)

    def parse_extra_network_prompts(self) -> None:
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def sample(
        self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts
    ):
        raise NotImplementedError

    def close(self) -> None:
        self.c = None
        self.uc = None


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    denoising_strength: float = 0.75
    hr_scale: float = 2.0
    hr_second_pass_steps: int = 2  # the WebUI's default is 0 (= steps); 2 keeps tests fast
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    hr_cfg: float = 1.0  # Forge only: the hires pass's CFG scale

    all_hr_prompts: list = field(default=None, init=False)
    all_hr_negative_prompts: list = field(default=None, init=False)
    hr_prompts: list = field(default=None, init=False)
    hr_negative_prompts: list = field(default=None, init=False)
    hr_extra_network_data: dict = field(default=None, init=False)
    hr_c: Any = field(default=None, init=False)
    hr_uc: Any = field(default=None, init=False)

    def setup_prompts(self) -> None:
        super().setup_prompts()
        if not self.enable_hr:
            return
        if self.hr_prompt == "":
            self.hr_prompt = self.prompt
        if self.hr_negative_prompt == "":
            self.hr_negative_prompt = self.negative_prompt
        count = self.batch_size * self.n_iter
        hr, hr_negative = self.hr_prompt, self.hr_negative_prompt
        self.all_hr_prompts = hr if isinstance(hr, list) else count * [hr]
        self.all_hr_negative_prompts = (
            hr_negative if isinstance(hr_negative, list) else count * [hr_negative]
        )

    def parse_extra_network_prompts(self) -> None:
        super().parse_extra_network_prompts()
        if self.enable_hr:
            rows = slice(self.iteration * self.batch_size, (self.iteration + 1) * self.batch_size)
            self.hr_prompts = self.all_hr_prompts[rows]
            self.hr_negative_prompts = self.all_hr_negative_prompts[rows]
            self.hr_prompts, self.hr_extra_network_data = extra_networks.parse_prompts(
                self.hr_prompts
            )

    def calculate_hr_conds(self) -> None:
        if self.is_forge and self.hr_cfg == 1:
            self.hr_uc = None
            print(
                "Skipping unconditional conditioning (HR pass) when CFG = 1. "
                "Negative Prompts are ignored."
            )
        else:
            self.hr_uc = self.sd_model.get_learned_conditioning(self.hr_negative_prompts)
        self.hr_c = self.sd_model.get_learned_conditioning(self.hr_prompts)

    def sample(
        self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts
    ):
        x = noise_for(seeds, (4, self.height // 8, self.width // 8))
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
        return self.sample_hr_pass(samples, seeds)

    def sample_hr_pass(self, samples, seeds):
        self.is_hr_pass = True
        size = (
            math.ceil(samples.shape[2] * self.hr_scale),
            math.ceil(samples.shape[3] * self.hr_scale),
        )
        samples = torch.nn.functional.interpolate(samples, size=size, mode="bilinear")
        noise = noise_for(seeds, tuple(samples.shape[1:]))
        if not self.disable_extra_networks:
            extra_networks.activate(self, self.hr_extra_network_data)
        self.calculate_hr_conds()
        self.scripts.before_hr(self)
        self.scripts.process_before_every_sampling(
            self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc
        )
        if self.is_forge:  # the patches set just now are thrown away; the hook runs again
            self.sd_model.forge_objects = (
                self.sd_model.forge_objects_after_applying_lora.shallow_copy()
            )
            self.scripts.process_before_every_sampling(
                self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc
            )
        steps = self.hr_second_pass_steps or self.steps
        start = int(steps * (1 - self.denoising_strength))
        samples = euler(self, samples, self.hr_c, self.hr_uc, steps, start=start)
        self.is_hr_pass = False
        return samples

    def close(self) -> None:
        super().close()
        self.hr_c = None
        self.hr_uc = None


def noise_for(seeds, shape) -> torch.Tensor:
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds]
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
    """Forge: the callback sees the un-doubled batch; ``sampling_function`` batches the rows."""

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
        if self.p.is_hr_pass:
            cond_scale = self.p.hr_cfg
        patcher = self.p.sd_model.forge_objects.unet
        denoised = forge_backend.sampling_function_inner(
            patcher.model,
            params.x,
            params.sigma,
            params.text_uncond,
            params.text_cond,
            cond_scale,
            patcher.model_options,
        )
        self.step += 1
        return denoised


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
    def __init__(
        self, p, images_list, seed=-1, info="", subseed=None, index_of_first_image=0, infotexts=None
    ):
        self.images = images_list
        self.prompt = p.prompt if not isinstance(p.prompt, list) else p.prompt[0]
        self.negative_prompt = p.negative_prompt
        self.seed = seed
        self.subseed = subseed
        self.info = info
        self.width = p.width
        self.height = p.height
        self.sampler_name = p.sampler_name
        self.cfg_scale = p.cfg_scale
        self.steps = p.steps
        self.batch_size = p.batch_size
        self.denoising_strength = getattr(p, "denoising_strength", None)
        self.extra_generation_params = p.extra_generation_params  # the same dict as ``p``'s
        self.index_of_first_image = index_of_first_image
        self.all_prompts = p.all_prompts or [self.prompt]
        self.all_negative_prompts = p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = p.all_seeds or [self.seed]
        self.all_subseeds = p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)

    def js(self) -> str:
        obj = {
            "prompt": self.all_prompts[0],
            "all_prompts": self.all_prompts,
            "negative_prompt": self.all_negative_prompts[0],
            "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed,
            "all_seeds": self.all_seeds,
            "subseed": self.subseed,
            "all_subseeds": self.all_subseeds,
            "width": self.width,
            "height": self.height,
            "sampler_name": self.sampler_name,
            "cfg_scale": self.cfg_scale,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "denoising_strength": self.denoising_strength,
            "extra_generation_params": self.extra_generation_params,
            "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts,
        }
        return json.dumps(obj, default=lambda o: None)

    def infotext(self, p, index: int) -> str:
        return create_infotext(
            p,
            self.all_prompts,
            self.all_seeds,
            self.all_subseeds,
            comments=[],
            position_in_batch=index % self.batch_size,
            iteration=index // self.batch_size,
        )


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
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size
    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts
    prompt_text = p.main_prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.main_negative_prompt if use_main_prompt else all_negative_prompts[index]
    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "CFG scale": p.cfg_scale,
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        "Denoising strength": p.extra_generation_params.get("Denoising strength"),
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
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt_text}{negative}\n{text}".strip()


def process_images(p) -> Processed:
    if p.scripts is not None:
        p.scripts.before_process(p)
    return process_images_inner(p)


def process_images_inner(p) -> Processed:
    p.setup_prompts()
    p.all_seeds = [
        int(p.seed) + (i if p.subseed_strength == 0 else 0) for i in range(len(p.all_prompts))
    ]
    p.all_subseeds = [int(p.subseed) + i for i in range(len(p.all_prompts))]
    if p.scripts is not None:
        p.scripts.process(p)
    images, infotexts = [], []
    for n in range(p.n_iter):
        p.iteration = n
        if p.is_forge:
            p.sd_model.forge_objects = p.sd_model.forge_objects_original.shallow_copy()
        rows = slice(n * p.batch_size, (n + 1) * p.batch_size)
        p.prompts = p.all_prompts[rows]
        p.negative_prompts = p.all_negative_prompts[rows]
        p.seeds = p.all_seeds[rows]
        p.subseeds = p.all_subseeds[rows]
        if p.scripts is not None:
            p.scripts.before_process_batch(
                p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds
            )
        p.parse_extra_network_prompts()
        if not p.disable_extra_networks:
            extra_networks.activate(p, p.extra_network_data)
        if p.is_forge:
            p.sd_model.forge_objects = p.sd_model.forge_objects_after_applying_lora.shallow_copy()
        if p.scripts is not None:
            p.scripts.process_batch(
                p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds
            )
        p.setup_conds()
        if n == 0:  # the WebUI writes this text to params.txt
            Processed(p, []).infotext(p, 0)
        samples = p.sample(
            conditioning=p.c,
            unconditional_conditioning=p.uc,
            seeds=p.seeds,
            subseeds=p.subseeds,
            subseed_strength=p.subseed_strength,
            prompts=p.prompts,
        )
        batch_images = [to_image(x) for x in p.sd_model.decode_first_stage(samples)]
        if p.scripts is not None:
            p.scripts.postprocess_batch(p, batch_images, batch_number=n)
        p.prompts = p.all_prompts[rows]
        p.negative_prompts = p.all_negative_prompts[rows]
        for i, image in enumerate(batch_images):
            text = create_infotext(
                p, p.prompts, p.seeds, p.subseeds, index=i, all_negative_prompts=p.negative_prompts
            )
            infotexts.append(text)
            image.info["parameters"] = text
            images.append(image)
    if not p.disable_extra_networks and p.extra_network_data:
        extra_networks.deactivate(p, p.extra_network_data)
    processed = Processed(
        p,
        images,
        seed=p.all_seeds[0],
        info=infotexts[0] if infotexts else "",
        subseed=p.all_subseeds[0],
        infotexts=infotexts,
    )
    if p.scripts is not None:
        p.scripts.postprocess(p, processed)
    return processed


def to_image(x: torch.Tensor) -> Image.Image:
    array = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array)
