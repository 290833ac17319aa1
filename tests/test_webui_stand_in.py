"""The stand-in behaves as the real WebUIs do where PixTention once depended on the difference
(issue 11): unhashable processing objects, ``run_pip`` through the shell, ``errors.report``
printing whole tracebacks, ``Processed.js()`` nulling callables, the built-in Lora activated
again for the hires pass, and Forge's model and CFG batching (uncond rows first, contexts of
different lengths repeated into one call, no uncond at CFG 1)."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from tests.webui_support import stand_in  # noqa: F401 (fixture)


def test_processing_objects_are_unhashable_dataclasses(stand_in):  # noqa: F811
    import dataclasses

    from modules import processing

    p = processing.StableDiffusionProcessingTxt2Img(prompt="a cat")
    assert dataclasses.is_dataclass(p)
    with pytest.raises(TypeError, match="unhashable"):
        hash(p)


def test_run_pip_hands_one_string_to_the_shell(stand_in, tmp_path, monkeypatch):  # noqa: F811
    from modules import launch_utils

    argv_file = tmp_path / "argv.json"
    recorder = tmp_path / "python"  # stands in for the interpreter: records argv after the shell
    recorder.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{argv_file}'\n",
        encoding="utf-8",
    )
    recorder.chmod(recorder.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(launch_utils, "python", str(recorder))
    monkeypatch.setattr(launch_utils, "index_url", "")
    monkeypatch.chdir(tmp_path)

    launch_utils.run_pip('install --no-deps "faiss-cpu>=1.8,<2"', "faiss")
    argv = argv_file.read_text(encoding="utf-8").splitlines()
    assert argv == ["-m", "pip", "install", "--no-deps", "faiss-cpu>=1.8,<2", "--prefer-binary"]

    with pytest.raises(RuntimeError, match="Couldn't install faiss"):
        launch_utils.run_pip("install --no-deps faiss-cpu>=1.8,<2", "faiss")
    assert (tmp_path / "=1.8,").exists()  # the shell's redirection, as in issue 11
    os.remove(tmp_path / "=1.8,")


def test_errors_report_prints_the_whole_traceback(stand_in, capfd):  # noqa: F811
    from modules import errors

    try:
        raise ValueError("planted")
    except ValueError:
        errors.report("Error running process: x.py", exc_info=True)
    err = capfd.readouterr().err
    assert err.startswith("*** Error running process: x.py\n")
    assert "Traceback (most recent call last)" in err and "ValueError: planted" in err


def test_processed_js_turns_callables_into_null(stand_in):  # noqa: F811
    from modules import processing

    p = processing.StableDiffusionProcessingTxt2Img(prompt="a cat")
    p.setup_prompts()
    p.extra_generation_params.update({"Text": "kept", "Later": lambda **kwargs: "per image"})
    info = json.loads(processing.Processed(p, [], infotexts=["a cat\nSteps: 4"]).js())
    assert info["extra_generation_params"] == {"Text": "kept", "Later": None}
    assert info["infotexts"] == ["a cat\nSteps: 4"]


def test_hires_prompts_are_resliced_and_their_tags_activated(stand_in):  # noqa: F811
    """Tags removed from ``prompts`` in before_process_batch come back for the hires pass."""
    import extra_networks_lora
    from modules import processing, scripts
    from stand_in_models import build_a1111_model

    class Stripper(scripts.Script):
        def title(self):
            return "stripper"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def before_process_batch(self, p, *args, prompts=None, **kwargs):
            prompts[:] = [prompt.replace("<lora:cat:0.5>", "") for prompt in prompts]

    runner = scripts.ScriptRunner()
    runner.initialize_scripts(False, [Stripper])
    p = processing.StableDiffusionProcessingTxt2Img(
        sd_model=build_a1111_model(),
        prompt="a cat <lora:cat:0.5> <lora:style:0.8>",
        steps=1,
        enable_hr=True,
        hr_second_pass_steps=1,
        scripts=runner,
    )
    processing.process_images(p)
    assert extra_networks_lora.activations == [
        (False, (("style", 0.8, 0.8),)),
        (True, (("cat", 0.5, 0.5), ("style", 0.8, 0.8))),
    ]


def test_forge_model_has_the_legacy_flags_and_no_torch_module(stand_in):  # noqa: F811
    from forge_backend import build_forge_model

    model = build_forge_model()
    assert (model.is_sd1, model.is_sd2, model.is_sdxl, model.is_sd3) == (True, False, False, False)
    assert not hasattr(model, "is_flux") and not hasattr(model, "model")
    assert model.cond_stage_model is None and not isinstance(model, torch.nn.Module)


def _forge_calls(patcher, cond, uncond, scale):
    """``(cond_or_uncond, context)`` of each UNet call of one Forge CFG step."""
    from forge_backend import sampling_function_inner

    calls = []

    def wrapper(apply_model, args):
        calls.append((list(args["cond_or_uncond"]), args["c"]["c_crossattn"].clone()))
        return apply_model(args["input"], args["timestep"], **args["c"])

    patcher = patcher.clone()
    patcher.set_model_unet_function_wrapper(wrapper)
    x = torch.randn(cond.shape[0], 4, 8, 8)
    sigma = torch.full((cond.shape[0],), 2.0)
    sampling_function_inner(patcher.model, x, sigma, uncond, cond, scale, patcher.model_options)
    return calls


def test_forge_runs_uncond_first_and_repeats_the_shorter_context(stand_in):  # noqa: F811
    from forge_backend import build_forge_model

    patcher = build_forge_model().forge_objects.unet
    cond, uncond = torch.randn(2, 154, 32), torch.randn(2, 77, 32)
    [(chunks, context)] = _forge_calls(patcher, cond, uncond, 5.0)  # one call, not two
    assert chunks == [1, 0]
    assert torch.equal(context, torch.cat([uncond.repeat(1, 2, 1), cond]))
    assert [c for c, _ in _forge_calls(patcher, cond[:, :77], uncond, 5.0)] == [[1, 0]]
    # more than 4× apart: one call each, the first listed (cond) first
    long = torch.randn(2, 77 * 5, 32)
    assert [c for c, _ in _forge_calls(patcher, long, uncond, 5.0)] == [[0], [1]]
    assert [c for c, _ in _forge_calls(patcher, cond, uncond, 1.0)] == [[0]]  # CFG 1: no uncond
    assert [c for c, _ in _forge_calls(patcher, cond, None, 5.0)] == [[0]]
