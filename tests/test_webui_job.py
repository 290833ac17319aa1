"""Whole txt2img jobs through the WebUI stand-in, hooks called in the real order, sampling with
the tiny real ldm UNet: picks (with hashes) in the infotext and the API's ``info``, masks formed
and applied, hooks gone afterwards (also after an exception), hires pass with the built-in Lora
re-activated from the re-sliced hires prompts, batches with different prompts, bad arguments as
one console line, A1111 and Forge flows (Forge: uncond rows first, contexts of different lengths
in one call, no uncond at CFG 1). The console is read with ``capfd``, as a user would see it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from tests.webui_support import stand_in, tiny_library  # noqa: F401 (fixtures)

PROMPTS = ["a tabby cat, a red sports car", "ink wash painting, a medieval castle"]
EXPECTED = [{"tabbycat", "redcar"}, {"inkwash", "castlebg"}]
# On, auto-pick, K=2, 8 clusters, a threshold below the selector's default so that retuning the
# selector's scores does not change which of the four test adapters fit these prompts.
ON = [True, "auto", 2, 8, 0.25]


class Rig:
    """The loaded script, its runner and a model, for one test."""

    def __init__(self, library, *, forge: bool = False, old_a1111: bool = False) -> None:
        import gradio as gr
        from modules import scripts, shared

        from pixtention.webui.runtime import Runtime, reset_runtime
        from pixtention.webui.service import LibraryService
        from tests.webui_support import load_script

        loras, store = library
        self.loras = loras
        self.runtime = Runtime(shared, LibraryService(loras, store, captions=False))
        reset_runtime(self.runtime)
        self.module = load_script()
        if old_a1111:  # A1111 < 1.10 has no process_before_every_sampling: attach in process_batch
            self.module.HOOKS.every_sampling_hook = False
        self.runner = scripts.ScriptRunner()
        self.runner.initialize_scripts(False, [self.module.PixTentionScript])
        with gr.Blocks():
            self.runner.create_script_ui()
        if forge:
            from forge_backend import build_forge_model

            self.model = build_forge_model()
            self.unet = self.model.forge_objects.unet.model.diffusion_model
        else:
            from stand_in_models import build_a1111_model

            self.model = build_a1111_model()
            self.unet = self.model.model.diffusion_model

    def args(self, values):
        from modules import scripts

        return scripts.api_script_args(self.runner, {"PixTention": {"args": values}})

    def run(self, values, prompts=PROMPTS, **kwargs):
        from modules import processing

        p = processing.StableDiffusionProcessingTxt2Img(
            sd_model=self.model,
            prompt=list(prompts),
            batch_size=len(prompts),
            steps=kwargs.pop("steps", 4),
            scripts=self.runner,
            script_args=self.args(values),
            **kwargs,
        )
        return p, processing.process_images(p)

    def hook_count(self) -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in self.unet.modules())


def pixtention_info(infotext: str) -> dict:
    from modules.infotext_utils import parse_generation_parameters

    return json.loads(parse_generation_parameters(infotext)["PixTention"])


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def file_sha256s(loras, name: str) -> tuple[str, str]:
    """SHA-256 of a LoRA file, and of its tensor data after the safetensors header (the
    built-in Lora's "addnet" hash): an infotext hash names the file if it prefixes either."""
    data = next(loras.rglob(f"{name}.safetensors")).read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    return hashlib.sha256(data).hexdigest(), hashlib.sha256(data[header:]).hexdigest()


def no_reports(console: str) -> bool:
    """Nothing the WebUI's ``errors.report``/``display`` would print."""
    return "Traceback" not in console and "***" not in console


@pytest.mark.slow
def test_txt2img_batch_of_two_prompts_picks_masks_and_cleanup(stand_in, tiny_library, capfd):  # noqa: F811
    from pixtention.selector.triggers import apply_picks

    rig = Rig(tiny_library)
    capfd.readouterr()
    p, processed = rig.run(ON)
    console = "".join(capfd.readouterr())
    assert no_reports(console), console
    assert rig.hook_count() == 0
    assert "sample" not in vars(p)  # the sampling guard was taken off again
    for index, (infotext, expected) in enumerate(zip(processed.infotexts, EXPECTED)):
        info = pixtention_info(infotext)
        assert {pick["name"] for pick in info["picks"]} == expected
        assert all(pick["phrase"] and pick["w"] == 0.8 for pick in info["picks"])
        for pick in info["picks"]:  # each pick names its exact file
            assert isinstance(pick["hash"], str) and len(pick["hash"]) >= 8, pick
            assert any(
                h.startswith(pick["hash"].lower()) for h in file_sha256s(rig.loras, pick["name"])
            )
        assert infotext.startswith(PROMPTS[index])  # the user's prompt, as written

    # masks formed for both images, over both picked adapters, and they are spatial
    listing = rig.runtime.masks.listing()
    assert [image["image"] for image in listing[0]["images"]] == [0, 1]
    job_masks = rig.runtime.masks.png(listing[0]["job"], 1)
    assert job_masks is not None and job_masks.startswith(b"\x89PNG")

    # Same prompts with the trigger words written in, PixTention off: only the gated adapters
    # differ, so the images must differ.
    library = rig.runtime.service.library()
    rewritten = []
    for prompt, infotext in zip(PROMPTS, processed.infotexts):
        names = {pick["name"] for pick in pixtention_info(infotext)["picks"]}
        picks = rig.runtime.service.suggest(prompt, _args(k=2, threshold=0.25), base_model="sd1")
        assert {pick.name for pick in picks} == names and library is not None
        rewritten.append(apply_picks(prompt, picks))
    _, plain = rig.run([False], prompts=rewritten)
    for gated, base in zip(processed.images, plain.images):
        assert np.abs(pixels(gated) - pixels(base)).max() > 0


def _args(**changes):
    from pixtention.webui.args import WebuiArgs

    return WebuiArgs(enabled=True, **changes)


@pytest.mark.slow
def test_masks_follow_the_session_and_appear_in_the_gallery(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library)
    captured = {}
    original_keep = rig.module.HOOKS.runtime.publish_masks

    def spy(job, processed):
        captured.update({i: (m.clone(), job.mask_names[i]) for i, m in job.masks.items()})
        original_keep(job, processed)

    rig.runtime.publish_masks = spy
    _, processed = rig.run([*ON, 1, "mid", 0.1, "soft", 1, 0.5, True])
    assert len(processed.images) == 4  # two images, then their two overlays
    assert len(processed.infotexts) == 4
    assert processed.images[2].size[1] > processed.images[0].size[1]  # overlay has a legend
    for index, expected in enumerate(EXPECTED):
        masks, names = captured[index]
        assert set(names) == expected
        assert masks.shape[0] == 2 and masks.min() >= 0 and masks.max() <= 1
        assert float(masks.max()) > 0  # adapters were on somewhere
        assert float(masks.std()) > 0  # and not uniformly: masks are spatial


@pytest.mark.slow
def test_hires_pass_reattaches_with_frozen_masks(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library)
    attaches, frozen = [], []
    import pixtention.integrator.session as session_module

    original = session_module.Session.reattach

    def counting(self, unet=None, *, freeze=True):
        attaches.append((freeze, self.attached))
        result = original(self, unet, freeze=freeze)
        if freeze:
            frozen.append((self.frozen, float(self.masks().amax())))
        return result

    session_module.Session.reattach = counting
    try:
        p, processed = rig.run(ON, enable_hr=True, hr_scale=2.0)
    finally:
        session_module.Session.reattach = original
    assert processed.images[0].size == (128, 128)
    assert attaches == [(False, False), (True, True)]  # first attach, then the hires re-attach
    assert frozen[0][0] is True and frozen[0][1] > 0  # the hires pass keeps the formed masks
    assert rig.hook_count() == 0
    assert {pick["name"] for pick in pixtention_info(processed.infotexts[0])["picks"]} == EXPECTED[
        0
    ]


@pytest.mark.slow
def test_exception_mid_sampling_leaves_no_hooks(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library)
    calls = {"n": 0}

    def explode(module, args, output):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("NaN in the UNet (planted)")

    planted = rig.unet.out.register_forward_hook(explode)
    seen = {}

    def watch(module, args, output):
        seen["hooks"] = rig.hook_count()

    watcher = rig.unet.input_blocks[0].register_forward_hook(watch)
    try:
        with pytest.raises(RuntimeError, match="planted"):
            rig.run(ON)
    finally:
        planted.remove()
        watcher.remove()
    assert seen["hooks"] > 2  # PixTention's hooks were on while sampling
    assert rig.hook_count() == 0  # and are gone although postprocess never ran
    _, processed = rig.run(ON)  # the next job works normally
    assert {p["name"] for p in pixtention_info(processed.infotexts[1])["picks"]} == EXPECTED[1]


@pytest.mark.slow
def test_forge_flow_clones_the_patcher_and_survives_double_hires_call(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library, forge=True)
    original_patcher = rig.model.forge_objects_original.unet
    wrapped_rows = []
    import pixtention.integrator.session as session_module

    original = session_module.Session.set_row_layout

    def spy(self, layout):
        if layout is not None:
            wrapped_rows.append((layout.image, layout.capture))
        return original(self, layout)

    session_module.Session.set_row_layout = spy
    try:
        _, processed = rig.run(ON, enable_hr=True)
    finally:
        session_module.Session.set_row_layout = original
    assert "model_function_wrapper" not in original_patcher.model_options  # clone only
    assert rig.hook_count() == 0
    assert processed.images[0].size == (128, 128)
    # first pass: uncond rows first, then cond; hires pass at Forge's default hr_cfg 1: cond only
    assert (
        wrapped_rows
        == [((0, 1, 0, 1), (False, False, True, True))] * 4 + [((0, 1), (True, True))] * 2
    )
    for infotext, expected in zip(processed.infotexts, EXPECTED):
        assert {pick["name"] for pick in pixtention_info(infotext)["picks"]} == expected


@pytest.mark.slow
def test_old_a1111_attaches_in_process_batch(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library, old_a1111=True)
    attached = []
    hook = rig.unet.register_forward_pre_hook(lambda m, a: attached.append(rig.hook_count()))
    try:
        _, processed = rig.run(ON, prompts=PROMPTS[:1])
    finally:
        hook.remove()
    assert min(attached) > 1 and rig.hook_count() == 0
    assert {p["name"] for p in pixtention_info(processed.infotexts[0])["picks"]} == EXPECTED[0]


def test_disabled_and_suggest_only_change_nothing(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library)
    _, off = rig.run([False], prompts=PROMPTS[:1], steps=2)
    assert "PixTention" not in off.infotexts[0]
    _, suggest = rig.run([True, "suggest"], prompts=PROMPTS[:1], steps=2)
    assert pixtention_info(suggest.infotexts[0])["picks"] == []
    assert np.array_equal(pixels(off.images[0]), pixels(suggest.images[0]))


def test_regionalise_keeps_user_tags_out_of_the_builtin_lora(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library)
    prompt = "a tabby cat <lora:tabbycat:0.6>, a red sports car"
    p, processed = rig.run([True, "regionalise", 2], prompts=[prompt], steps=2)
    picks = pixtention_info(processed.infotexts[0])["picks"]
    assert [(pick["name"], pick["w"]) for pick in picks] == [("tabbycat", 0.6)]
    assert p.extra_network_data == {}
    import extra_networks_lora

    assert extra_networks_lora.activations == [(False, ())]  # the built-in Lora loaded nothing


def test_bad_api_value_is_one_console_line(stand_in, tiny_library, capfd):  # noqa: F811
    from modules.infotext_utils import parse_generation_parameters

    rig = Rig(tiny_library)
    capfd.readouterr()
    _, processed = rig.run([True, "sideways"], prompts=PROMPTS[:1], steps=2)
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and "sideways" in lines[0], out + err  # no traceback, no report
    params = parse_generation_parameters(processed.infotexts[0])
    assert (
        "mode='sideways' is not one of auto, regionalise, both, suggest"
        in params["PixTention error"]
    )
    assert rig.hook_count() == 0
    _, after = rig.run(ON, prompts=PROMPTS[:1], steps=2)  # the next request is fine, and quiet
    out, err = capfd.readouterr()
    assert no_reports(out + err), out + err
    assert "PixTention error" not in after.infotexts[0]
    assert {pick["name"] for pick in pixtention_info(after.infotexts[0])["picks"]} == EXPECTED[0]


def test_dict_args_and_short_lists_keep_defaults(stand_in, tiny_library):  # noqa: F811
    rig = Rig(tiny_library)
    from pixtention.webui.args import parse_args

    values = rig.args([{"k": 1, "mode": "Both", "show_masks": False}])
    parsed = parse_args(values[1:])
    assert (parsed.enabled, parsed.k, parsed.mode, parsed.clusters) == (True, 1, "both", 8)
    short = parse_args(rig.args([True, "auto"])[1:])
    assert (short.k, short.threshold, short.freeze_at) == (3, 0.35, 0.4)
    _, processed = rig.run([{"k": 1}], prompts=PROMPTS[:1], steps=2)
    assert len(pixtention_info(processed.infotexts[0])["picks"]) == 1


def test_pasted_infotext_pins_the_same_picks(stand_in, tiny_library):  # noqa: F811
    from modules.infotext_utils import parse_generation_parameters

    rig = Rig(tiny_library)
    _, first = rig.run(ON, prompts=PROMPTS[:1], steps=2)
    params = parse_generation_parameters(first.infotexts[0])
    restored = [None] * len(rig.runner.inputs)
    for component, key in rig.runner.infotext_fields:
        value = key(params) if callable(key) else params.get(key)
        restored[rig.runner.inputs.index(component)] = value
    script = rig.runner.alwayson_scripts[0]
    values = restored[script.args_from : script.args_to]
    assert values[0] is True and values[1] == "Auto-pick" and "tabbycat" in values[12]
    # replay with a different threshold in the library's disfavour: pins still win
    values[4] = 0.99
    _, second = rig.run(values, prompts=PROMPTS[:1], steps=2)
    first_picks = pixtention_info(first.infotexts[0])["picks"]
    assert pixtention_info(second.infotexts[0])["picks"] == first_picks
    assert np.array_equal(pixels(first.images[0]), pixels(second.images[0]))


def test_ui_has_no_side_effects_and_settings_register(stand_in, tiny_library):  # noqa: F811
    import gradio as gr
    from modules import script_callbacks, shared

    rig = Rig(tiny_library)
    service = rig.runtime.service
    started = []
    service.start_index = lambda: started.append(1)
    for _ in range(3):
        with gr.Blocks():
            components = rig.module.PixTentionScript().ui(False)
        assert len(components) == 14
    assert started == [] and service.status().state in ("idle", "ready")
    script_callbacks.ui_settings_callback()
    assert shared.opts.pixtention_default_k == 3
    assert shared.opts.data_labels["pixtention_autoindex"].section == ("pixtention", "PixTention")
    assert torch.is_grad_enabled()


def test_app_started_adds_routes_and_honours_no_autoindex(stand_in, tiny_library):  # noqa: F811
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from modules import script_callbacks, shared

    rig = Rig(tiny_library)
    started = []
    rig.runtime.service.start_index = lambda: started.append(1) or True
    shared.cmd_opts.api_auth = "u:p"
    app = FastAPI()
    script_callbacks.app_started_callback(None, app)  # demo is None under --nowebui
    client = TestClient(app)
    assert client.get("/pixtention/v1/status").status_code == 401
    assert client.get("/pixtention/v1/status", auth=("u", "p")).json()["state"] == "ready"
    assert started == []  # --pixtention-no-autoindex
    shared.cmd_opts.pixtention_no_autoindex = False
    script_callbacks.app_started_callback(None, FastAPI())
    assert started == [1]


def test_ui_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, pixtention.webui.ui, pixtention.webui.hooks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_break_prompt_runs_cond_and_uncond_separately(stand_in, tiny_library):  # noqa: F811
    """A BREAK makes cond 154 tokens and uncond 77: A1111 then calls the UNet twice per step;
    rows are told apart by comparing the call's context with the cached uncond."""
    from pixtention.webui.a1111 import A1111Flow

    rig = Rig(tiny_library)
    seen = []
    original = A1111Flow.row_layout

    def spy(self, job):
        layout = original(self, job)

        def recording(rows, context):
            result = layout(rows, context)
            seen.append((int(context.shape[1]), result.image, result.capture))
            return result

        return recording

    A1111Flow.row_layout = spy
    try:
        _, processed = rig.run(ON, prompts=["a tabby cat BREAK a red sports car"], steps=3)
    finally:
        A1111Flow.row_layout = original
    assert set(seen) == {(154, (0,), (True,)), (77, (0,), (False,))}
    picks = pixtention_info(processed.infotexts[0])["picks"]
    assert {pick["name"] for pick in picks} == EXPECTED[0]
    assert rig.hook_count() == 0


def test_two_iterations_record_each_images_own_picks(stand_in, tiny_library):  # noqa: F811
    """Both WebUIs write an image's infotext with ``create_infotext(p, p.prompts, …, index=i)``:
    ``index`` is the position in the batch (0 for both images here), so a per-image value must
    find its image through ``p.iteration`` too."""
    rig = Rig(tiny_library)
    prompts = [PROMPTS[1], PROMPTS[0]]  # n_iter=2, batch_size=1: one prompt per iteration
    from modules import processing

    p = processing.StableDiffusionProcessingTxt2Img(
        sd_model=rig.model,
        prompt=prompts,
        batch_size=1,
        n_iter=2,
        steps=2,
        scripts=rig.runner,
        script_args=rig.args(ON),
    )
    processed = processing.process_images(p)
    names = [{pick["name"] for pick in pixtention_info(t)["picks"]} for t in processed.infotexts]
    assert names == [EXPECTED[1], EXPECTED[0]]
    assert rig.hook_count() == 0


@pytest.mark.parametrize(
    "values",
    [ON, [{"mode": "auto", "k": 2, "threshold": 0.25}]],
    ids=["positional", "dict"],
)
def test_api_info_carries_the_pixtention_text(stand_in, tiny_library, values):  # noqa: F811
    """``/sdapi/v1/txt2img`` answers ``info = Processed.js()``, where a callable is null."""
    from modules import shared
    from modules.api import api
    from modules.infotext_utils import parse_generation_parameters

    rig = Rig(tiny_library)
    shared.sd_model = rig.model
    request = {
        "prompt": PROMPTS[0],
        "steps": 2,
        "alwayson_scripts": {"PixTention": {"args": values}},
    }
    info = json.loads(api.text2imgapi(request, rig.runner)["info"])
    value = info["extra_generation_params"]["PixTention"]
    assert isinstance(value, str), info["extra_generation_params"]
    assert {pick["name"] for pick in json.loads(value)["picks"]} == EXPECTED[0]
    assert parse_generation_parameters(info["infotexts"][0])["PixTention"] == value


@pytest.mark.parametrize("forge", [False, True], ids=["a1111", "forge"])
def test_hires_keeps_taken_tags_off_the_builtin_lora(stand_in, tiny_library, forge):  # noqa: F811
    """The WebUI re-slices the hires prompts from ``all_hr_prompts`` after before_process_batch
    and activates their tags again before the hires pass: a tag PixTention applies regionally
    must stay off there too; a tag it leaves alone stays on in both passes."""
    import extra_networks_lora

    rig = Rig(tiny_library, forge=forge)
    prompt = "a tabby cat <lora:tabbycat:0.6>, a red sports car <lora:filmgrain:0.5>"
    p, processed = rig.run([True, "regionalise", 2], prompts=[prompt], steps=2, enable_hr=True)
    picks = pixtention_info(processed.infotexts[0])["picks"]
    assert [(pick["name"], pick["w"]) for pick in picks] == [("tabbycat", 0.6)]
    left_alone = (("filmgrain", 0.5, 0.5),)
    assert extra_networks_lora.activations == [(False, left_alone), (True, left_alone)]
    if forge:  # what Forge samples with is patched with exactly those networks
        patches = p.sd_model.forge_objects_after_applying_lora.unet.lora_patches
        assert [key[0] for key in patches] == ["filmgrain"]
    assert rig.hook_count() == 0


def _spy_row_layouts(monkeypatch) -> list:
    import pixtention.integrator.session as session_module

    seen = []
    original = session_module.Session.set_row_layout

    def spy(self, layout):
        if layout is not None:
            seen.append((layout.image, layout.capture))
        return original(self, layout)

    monkeypatch.setattr(session_module.Session, "set_row_layout", spy)
    return seen


def _spy_unet_calls(rig) -> tuple[list, object]:
    calls = []

    def record(module, args, kwargs):
        calls.append((int(args[0].shape[0]), int(kwargs["context"].shape[1])))

    return calls, rig.unet.register_forward_pre_hook(record, with_kwargs=True)


def test_forge_break_prompt_one_call_uncond_first(stand_in, tiny_library, monkeypatch):  # noqa: F811
    """Cond is 154 tokens, uncond 77: Forge repeats uncond to 154 and runs both in one call,
    uncond rows first (``cond_or_uncond == [1, 0]``)."""
    rig = Rig(tiny_library, forge=True)
    layouts = _spy_row_layouts(monkeypatch)
    calls, handle = _spy_unet_calls(rig)
    try:
        _, processed = rig.run(ON, prompts=["a tabby cat BREAK a red sports car"], steps=3)
    finally:
        handle.remove()
    assert calls == [(2, 154)] * 3
    assert set(layouts) == {((0, 0), (False, True))}
    picks = pixtention_info(processed.infotexts[0])["picks"]
    assert {pick["name"] for pick in picks} == EXPECTED[0]
    assert [image["image"] for image in rig.runtime.masks.listing()[0]["images"]] == [0]
    assert rig.hook_count() == 0


def test_forge_cfg_1_cond_rows_only(stand_in, tiny_library, monkeypatch):  # noqa: F811
    rig = Rig(tiny_library, forge=True)
    layouts = _spy_row_layouts(monkeypatch)
    calls, handle = _spy_unet_calls(rig)
    try:
        _, on = rig.run(ON, prompts=PROMPTS[:1], steps=2, cfg_scale=1.0)
        _, off = rig.run([False], prompts=PROMPTS[:1], steps=2, cfg_scale=1.0)
    finally:
        handle.remove()
    assert calls == [(1, 77)] * 4  # no uncond rows at all, with or without PixTention
    assert set(layouts) == {((0,), (True,))}
    assert {pick["name"] for pick in pixtention_info(on.infotexts[0])["picks"]} == EXPECTED[0]
    assert np.abs(pixels(on.images[0]) - pixels(off.images[0])).max() > 0
    assert rig.hook_count() == 0
