"""The hook flow on AUTOMATIC1111 (≥ 1.6; attach point ``process_before_every_sampling`` ≥ 1.10).

- ``process``: parse args, clean up anything a failed job left, guard ``p.sample``;
- ``before_process_batch`` (raw prompts, tags still in): pick per image, insert trigger words,
  strip the ``<lora:…>`` tags of picked adapters so the built-in Lora extension leaves them;
- ``process_batch`` (tags stripped): token positions with the WebUI's own ``tokenize_line``,
  load and map the adapters; on WebUIs without ``process_before_every_sampling``, attach here;
- ``process_before_every_sampling``: attach (first pass) or re-attach with frozen masks (hires);
- ``on_cfg_denoiser``: step number and cond/uncond row bookkeeping;
- ``postprocess_batch`` / ``postprocess``: keep the masks, detach, show overlays.
``forge.py`` changes only where the UNet lives, how it is called and how prompts tokenise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from pixtention.webui.args import ArgsError, Pin, WebuiArgs, check_weight
from pixtention.webui.infotext import KEY
from pixtention.webui.jobs import InfotextValue, Job, unique_adapters

TokenizeLine = Callable[[str], list[list[int]]]
LORA_NETWORKS = ("lora", "lyco")  # the built-in Lora's extra-network names


class A1111Flow:
    name = "a1111"

    def __init__(self, runtime: Any, *, every_sampling_hook: bool = True) -> None:
        self.runtime = runtime
        self.every_sampling_hook = every_sampling_hook  # False on A1111 < 1.10

    # -- what differs between WebUIs --------------------------------------------------------

    def unet(self, p: Any) -> Any:
        return p.sd_model.model.diffusion_model

    def tokenize_line(self, p: Any) -> TokenizeLine:
        model = p.sd_model
        embedder = getattr(model, "cond_stage_model", None)
        if embedder is None or not hasattr(embedder, "tokenize_line"):
            embedder = model.conditioner.embedders[0]  # SDXL: CLIP-L sees the same tokens
        return lambda text: [list(chunk.tokens) for chunk in embedder.tokenize_line(text)[0]]

    def install(self, p: Any, job: Job, unet: Any) -> None:
        """Attach (or re-attach for a second pass) the job's adapters to ``unet``."""
        from pixtention.integrator.session import attach

        if job.session is None:
            job.session = attach(unet, job.gated, mask_config(job.args), total_steps=p.steps)
            job.session.set_row_layout(self.row_layout(job))
        else:
            job.session.reattach(unet, freeze=True)

    def row_layout(self, job: Job) -> Callable[[int, Any], Any]:
        """Rows of one UNet call → images, cond rows captured (from ``on_cfg_denoiser``)."""
        from pixtention.integrator.config import RowLayout

        def layout(rows: int, context: Any) -> RowLayout:
            images = job.batch_size
            n_cond = job.cond_rows or images
            repeat = max(1, n_cond // images)  # AND sub-prompts: rows grouped per image
            cond = [(r // repeat, r % repeat == 0) for r in range(n_cond)]
            uncond = [(r, False) for r in range(images)]
            if rows == n_cond + images:
                pairs = cond + uncond
            elif rows == images and _same(context, job.text_uncond):
                pairs = uncond
            elif rows == n_cond:
                pairs = cond
            else:  # an unknown split: keep images in order, capture nothing
                pairs = [(r % images, False) for r in range(rows)]
            return RowLayout(tuple(i for i, _ in pairs), tuple(c for _, c in pairs))

        return layout

    # -- hooks ------------------------------------------------------------------------------

    def process(self, p: Any, args: WebuiArgs) -> Job:
        job = Job(args=args, flow=self.name)
        self.runtime.clean_up(self.unet(p))
        if args.enabled:
            p.extra_generation_params[KEY] = InfotextValue(job)
        if args.applies_adapters:
            job.guard_sampling(p)
        return job

    def before_process_batch(self, p: Any, job: Job, batch_number: int, prompts: list[str]) -> None:
        job.batch_start = batch_number * p.batch_size
        job.batch_size = len(prompts)
        if not job.args.applies_adapters:
            return
        from pixtention.selector.triggers import apply_picks

        family = base_family(p.sd_model)
        job.taken_tags = set()
        for row, prompt in enumerate(prompts):
            picks = self.pick(prompt, job, family)
            job.picks[job.batch_start + row] = picks
            if picks:
                prompts[row] = apply_picks(prompt, picks, strip_user_tags=True)
                job.taken_tags |= {pick.name for pick in picks if _from_tag(pick)}

    def pick(self, prompt: str, job: Job, family: str | None) -> list[Any]:
        """The picks for one prompt (the selector resolves pins by hash or name)."""
        picks = self.runtime.service.suggest(
            prompt, job.args, base_model=family, mode=job.args.mode
        )
        library = self.runtime.service.library()
        if not picks and library is None:
            job.note("no index yet: nothing picked")
        usable = []
        for pick in picks:
            try:
                check_weight(pick.name, float(pick.weight))
            except ArgsError as error:  # e.g. <lora:x:1e999> in the prompt
                job.note(f"{error}; {pick.name} skipped")
                continue
            usable.append(self.runtime.with_hash(pick))
        picks = usable
        if len(job.args.pins) > job.args.k:
            job.note(f"{len(job.args.pins)} pinned adapters, K={job.args.k}: the first K are used")
        for pin in job.args.pins[: job.args.k]:
            if not any(_pin_matches(pick, pin) for pick in picks):
                job.note(_unused_pin(pin, library, family))
        return [_apply_pin(pick, job.args.pins, prompt) for pick in picks]

    def process_batch(self, p: Any, job: Job, prompts: list[str]) -> None:
        job.gated = []
        if not job.args.applies_adapters:
            return
        # The hires prompts were re-sliced from ``all_hr_prompts`` after ``before_process_batch``
        # and their tags parsed for the hires pass: drop the ones PixTention took over.
        _drop_networks(getattr(p, "hr_extra_network_data", None), job.taken_tags)
        batch = job.batch_picks()
        if not any(batch):
            return
        from pixtention.integrator.tokens import token_positions

        tokenize = self.tokenize_line(p)
        unet = self.unet(p)
        for pick in unique_adapters(batch):
            positions = tuple(
                token_positions(tokenize, prompts[row], pick.phrase, extra_words=pick.triggers)
                if pick.phrase and any(q.fingerprint == pick.fingerprint for q in batch[row])
                else ()
                for row in range(len(batch))
            )
            if not any(positions):
                job.note(f"{pick.name}: its phrase is not in the tokenised prompt; skipped")
                continue
            mapped = self.runtime.mapped_adapter(pick, unet, job)
            if mapped is not None:
                job.gated.append(_gated(pick, mapped, positions))
        job.keep_applied_picks()  # the infotext lists exactly what runs
        if job.gated and not self.every_sampling_hook:
            self.install(p, job, unet)

    def before_every_sampling(self, p: Any, job: Job) -> None:
        if job.gated:
            self.install(p, job, self.unet(p))

    def on_cfg_denoiser(self, job: Job, params: Any) -> None:
        if job.session is None:
            return
        job.cond_rows = int(_crossattn(params.text_cond).shape[0])
        job.text_uncond = _crossattn(params.text_uncond)
        denoiser = getattr(params, "denoiser", None)
        step = getattr(denoiser, "step", None)
        if step is not None:
            job.session.begin_step(int(step), int(params.total_sampling_steps))

    def postprocess_batch(self, p: Any, job: Job) -> None:
        job.keep_masks()
        job.detach()

    def postprocess(self, p: Any, job: Job, processed: Any) -> None:
        job.keep_masks()
        job.detach()
        self.runtime.publish_masks(job, processed)
        # Every image's infotext is written by now. What stays behind is read by
        # ``Processed.js()``, which turns a callable into null: leave the first image's text.
        value = job.infotext_value(0)
        for params in (
            p.extra_generation_params,
            getattr(processed, "extra_generation_params", None),
        ):
            if isinstance(params, dict) and isinstance(params.get(KEY), InfotextValue):
                params[KEY] = value


def mask_config(args: WebuiArgs) -> Any:
    from pixtention.integrator.config import MaskConfig

    return MaskConfig(
        capture=args.mask_layers,
        mode=args.competition,
        temperature=args.softness,
        warmup_steps=args.warmup_steps,
        freeze_at=args.freeze_at,
    )


# Forge's detected model config (``sd_model.model_config``) by class name; Flux and Chroma set
# none of the ``is_*`` flags, so the class is the only sign there.
_FORGE_CONFIGS = {
    "SD15": "sd1",
    "SD20": "sd2",
    "SDXL": "sdxl",
    "SDXLRefiner": "sdxl",
    "SD3": "sd3",
    "Flux": "flux",
    "FluxSchnell": "flux",
    "Chroma": "flux",
}


def base_family(sd_model: Any) -> str | None:
    """The loaded model's family as the selector names it (None: do not filter)."""
    for attribute, family in (
        ("is_flux", "flux"),
        ("is_sd3", "sd3"),
        ("is_sdxl", "sdxl"),
        ("is_sd2", "sd2"),
        ("is_sd1", "sd1"),
    ):
        if getattr(sd_model, attribute, False) is True:
            return family
    config = getattr(sd_model, "model_config", None)
    for cls in type(config).__mro__ if config is not None else ():  # SSD1B is an SDXL …
        if cls.__name__ in _FORGE_CONFIGS:
            return _FORGE_CONFIGS[cls.__name__]
    return None


def _gated(pick: Any, mapped: Any, positions: tuple[tuple[int, ...], ...]) -> Any:
    from pixtention.integrator.config import GatedAdapter

    return GatedAdapter(
        pick.name,
        mapped,
        weight=float(pick.weight),
        positions=positions,
        everywhere=pick.scope == "prompt",  # a style or a hub: the whole image
    )


def _unused_pin(pin: Pin, library: Any, family: str | None) -> str:
    """Why a pinned adapter is not among the picks, in one line."""
    record = library.find(pin.name) if library is not None else None
    if record is None:
        return f"pinned adapter {pin.name} is not in the library"
    if family and record.base_family not in (family, "unknown"):
        return (
            f"pinned adapter {pin.name} is a {record.base_family} adapter; "
            f"the loaded model is {family}"
        )
    return f"pinned adapter {pin.name} was not used (the prompt has no phrase for it)"


def _from_tag(pick: Any) -> bool:
    """The pick stands for a ``<lora:…>`` tag of the prompt (its tag was stripped)."""
    return pick.source == "user" or pick.weight_source == "prompt"


def _drop_networks(network_data: Any, names: set[str]) -> None:
    """Remove ``names`` from a parsed ``{"lora": [ExtraNetworkParams, …]}`` in place."""
    if not names or not isinstance(network_data, dict):
        return
    for kind in LORA_NETWORKS:
        entries = network_data.get(kind)
        if isinstance(entries, list):
            entries[:] = [e for e in entries if (getattr(e, "items", None) or [""])[0] not in names]


def _pin_matches(pick: Any, pin: Any) -> bool:
    if pin.short_hash and pick.short_hash:
        return pick.short_hash.lower().startswith(pin.short_hash.lower())
    return pick.name == pin.name


def _apply_pin(pick: Any, pins: Sequence[Pin], prompt: str) -> Any:
    """A pinned pick keeps the weight and phrase it was pinned with (replayed infotexts)."""
    pin = next((p for p in pins if _pin_matches(pick, p)), None)
    if pin is None:
        return pick
    changes: dict[str, Any] = {}
    if pin.weight is not None:
        changes["weight"] = pin.weight
    if pin.phrase and pin.phrase != pick.phrase:
        start = prompt.find(pin.phrase)
        if start >= 0:
            changes["phrase"] = pin.phrase
            changes["phrase_span"] = (start, start + len(pin.phrase))
    return dataclasses.replace(pick, **changes) if changes else pick


def _crossattn(cond: Any) -> Any:
    return cond["crossattn"] if isinstance(cond, dict) else cond


def _same(context: Any, uncond: Any) -> bool:
    if context is None or uncond is None or tuple(context.shape) != tuple(uncond.shape):
        return False
    return bool((context == uncond.to(context.device, context.dtype)).all())
