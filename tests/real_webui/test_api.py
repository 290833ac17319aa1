"""PixTention inside a real WebUI, through ``/sdapi/v1/txt2img`` and its own REST routes.

Every request is a few steps at 64×64 on a fixed seed, so images of two requests are compared
pixel for pixel: "differs" and "bit-identical" are exact statements about the WebUI's output.
``webui.baseline`` is the plain image of ``payload()`` taken before any PixTention job.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from tests.real_webui.client import PROMPT, SIZE, decode_image_bytes, infotext_params, payload
from tests.real_webui.harness import INSTALLED_BY_EXTENSION, changed_pins, new_packages

pytestmark = pytest.mark.slow

ON = [True, "auto", 2]  # positional args: enabled, mode, k (the rest keep their defaults)


def picks_of(result, index: int = 0) -> list[dict]:
    entry = result.pixtention(index)
    assert entry is not None, f"no PixTention entry in infotext {index}: {result.infotexts}"
    assert "unparsed" not in entry, entry
    return entry.get("picks") or []


def assert_real_picks(picks: list[dict], library: list[str]) -> None:
    assert picks, "PixTention picked nothing (see the infotext's notes)"
    for pick in picks:
        assert pick["name"] in library, pick
        assert isinstance(pick.get("hash"), str) and len(pick["hash"]) >= 10, pick
        assert pick.get("phrase"), pick
        assert pick.get("w", 0) > 0, pick


def same(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def pixtention_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "pixtention" in line.lower()]


# -- install and index --------------------------------------------------------------------------


def test_extension_installs_without_touching_the_webui_pins(webui):
    output = webui.installer_output
    assert changed_pins(webui.freeze_before, webui.freeze_after) == []
    assert sorted(new_packages(webui.freeze_before, webui.freeze_after)) == sorted(
        INSTALLED_BY_EXTENSION
    ), output
    for failure in ("Traceback", "Error running install.py", "Couldn't install", "cannot open"):
        assert failure not in output, output
    assert "could not install" not in output.lower(), output
    for requirement in INSTALLED_BY_EXTENSION:
        assert requirement in output, output  # install.py said what it installs
    # The shell would have turned an unquoted `<2` into a redirection to a file named 2.
    assert not any(p.name.startswith(("=", "2")) for p in webui.webui_dir.iterdir())


def test_library_indexed_at_start_up(webui, api):
    status = api.get("/pixtention/v1/status").json()
    assert status["state"] == "ready" and status["adapters"] == len(webui.lora_names), status
    adapters = api.get("/pixtention/v1/adapters").json()
    assert sorted(a["name"] for a in adapters["adapters"]) == sorted(webui.lora_names)


# -- the two documented argument forms ----------------------------------------------------------


def test_positional_args_pick_and_change_the_image(webui, api):
    result = api.txt2img(payload(pixtention=ON))
    picks = picks_of(result)
    assert_real_picks(picks, webui.lora_names)
    assert len(picks) <= 2
    # The response's info carries the same entry (Processed.js() must not turn it into null).
    extra = result.info["extra_generation_params"].get("PixTention")
    assert extra is not None, result.info["extra_generation_params"]
    assert json.loads(extra)["picks"] == picks
    assert not same(result.images[0], webui.baseline.images[0])


def test_one_dict_of_named_settings_means_the_same(webui, api):
    positional = api.txt2img(payload(pixtention=ON))
    named = api.txt2img(payload(pixtention=[{"k": 2}]))  # a dict turns PixTention on
    assert_real_picks(picks_of(named), webui.lora_names)
    assert picks_of(named) == picks_of(positional)
    assert same(named.images[0], positional.images[0])


# -- where the change is ------------------------------------------------------------------------


def _mask_from_overlay(overlay: np.ndarray, image: np.ndarray) -> np.ndarray:
    """One adapter's mask [H, W] back from its overlay (the renderer blends the first palette
    colour over the image with opacity × mask: solve that blend per pixel)."""
    from pixtention.integrator.render import PALETTE, render_masks

    opacity = inspect.signature(render_masks).parameters["opacity"].default
    base = image.astype(np.float64)
    towards = opacity * (np.asarray(PALETTE[0], np.float64) - base)
    moved = overlay[: image.shape[0]].astype(np.float64) - base
    return (moved * towards).sum(2) / np.maximum((towards * towards).sum(2), 1e-6)


def test_change_is_concentrated_where_the_mask_is(webui, api):
    """The probe LoRA (high-resolution attention blocks) pinned to "a tabby cat" with hard
    masks, against the same job with weight 0 (same trigger words, same hooks): it moves the
    pixels inside its mask more than those outside, and more so than the same LoRA applied
    everywhere by the built-in Lora does. Only more: the change leaks outside (GroupNorm
    statistics, and a random VAE and UNet that spread every latent change over a 64×64 image),
    and all runs are deterministic, so the comparison is exact, not a statistical guess."""
    steps = 8  # the first step runs without adapters (masks need attention maps first)
    args = {"k": 1, "competition": "hard", "show_masks": True}
    probe = webui.probe_lora
    reference = api.txt2img(
        payload(steps=steps, pixtention=[{**args, "pins": f"{probe}:0@a tabby cat"}])
    )
    gated = api.txt2img(
        payload(steps=steps, pixtention=[{**args, "pins": f"{probe}:1@a tabby cat"}])
    )
    assert [p["name"] for p in picks_of(gated)] == [probe]
    assert len(gated.images) == 2, "show_masks adds one overlay per image"
    mask = _mask_from_overlay(gated.images[1], gated.images[0]) > 0.5
    assert 0.05 < mask.mean() < 0.95, f"mask covers {mask.mean():.2f} of the image"

    # The overlay is the one /pixtention/v1/masks serves for this job.
    listing = api.get("/pixtention/v1/masks").json()["masks"]
    newest = listing[0]["images"][0]["url"]
    served = decode_image_bytes(api.get(newest).content)
    assert same(served, gated.images[1])

    moved = np.abs(gated.images[0].astype(float) - reference.images[0]).sum(2)
    assert moved.max() > 0, "the pinned LoRA changed nothing"
    plain = api.txt2img(payload(steps=steps))
    tagged = api.txt2img(payload(prompt=f"{PROMPT} <lora:{probe}:1>", steps=steps))
    everywhere = np.abs(tagged.images[0].astype(float) - plain.images[0]).sum(2)
    ratio = moved[mask].mean() / max(moved[~mask].mean(), 1e-9)
    global_ratio = everywhere[mask].mean() / max(everywhere[~mask].mean(), 1e-9)
    webui.say(f"mean change inside/outside the mask: gated {ratio:.2f}, global {global_ratio:.2f}")
    assert ratio > max(1.0, global_ratio), (
        f"mean change inside/outside the mask: gated {ratio:.2f}, global LoRA {global_ratio:.2f}"
    )


def test_a_style_is_applied_over_the_whole_image(webui, api):
    """A style serves the prompt as a whole (scope "prompt"): pinned alone, its mask covers the
    whole image from the first step, where a phrase's adapter covers its region only (above),
    and it changes the image against the same seed without it."""
    args = {"k": 1, "pins": "inkwash", "show_masks": True}
    result = api.txt2img(payload(pixtention=[args]))
    assert [p["name"] for p in picks_of(result)] == ["inkwash"]
    assert len(result.images) == 2, "show_masks adds one overlay per image"
    mask = _mask_from_overlay(result.images[1], result.images[0])
    assert (mask > 0.9).mean() > 0.99, f"the style covers {(mask > 0.9).mean():.2f} of the image"
    assert not same(result.images[0], webui.baseline.images[0])


# -- the model is left as it was ----------------------------------------------------------------


def test_hooks_and_forwards_restored_after_a_job(webui, api):
    enabled = api.txt2img(payload(pixtention=[{"k": 2, "mask_layers": "all"}]))
    assert picks_of(enabled)
    assert same(api.txt2img(payload()).images[0], webui.baseline.images[0])
    disabled = api.txt2img(payload(pixtention=[False]))
    assert same(disabled.images[0], webui.baseline.images[0])
    assert "PixTention" not in infotext_params(disabled.infotexts[0])


def test_builtin_lora_still_works_beside_it(webui, api):
    name = "redcar"
    tagged = f"{PROMPT} <lora:{name}:1>"
    off_plain = webui.baseline
    off_tagged = api.txt2img(payload(prompt=tagged))
    assert not same(off_tagged.images[0], off_plain.images[0]), "<lora:…> changed nothing"
    assert name in infotext_params(off_tagged.infotexts[0]).get("Lora hashes", "")
    # With PixTention picking (auto mode leaves the user's tags to the built-in Lora).
    args = [{"k": 1, "exclude": name}]
    on_plain = api.txt2img(payload(pixtention=args))
    on_tagged = api.txt2img(payload(prompt=tagged, pixtention=args))
    assert picks_of(on_tagged) and picks_of(on_plain)
    assert not same(on_tagged.images[0], on_plain.images[0]), "<lora:…> ignored beside PixTention"
    assert name in infotext_params(on_tagged.infotexts[0]).get("Lora hashes", "")


# -- generation variants ------------------------------------------------------------------------


def hires(webui, **extra):
    return {
        "enable_hr": True,
        "hr_scale": 2,
        "hr_upscaler": "Latent",
        "hr_second_pass_steps": 2,
        "denoising_strength": 0.6,
        **webui.spec.hires_extra,
        **extra,
    }


def test_hires_fix(webui, api):
    off = api.txt2img(payload(**hires(webui)))
    on = api.txt2img(payload(pixtention=[{"k": 2, "show_masks": True}], **hires(webui)))
    assert on.images[0].shape == (2 * SIZE, 2 * SIZE, 3)
    assert_real_picks(picks_of(on), webui.lora_names)
    assert not same(on.images[0], off.images[0])
    assert len(on.images) == 2  # the image and its mask overlay


def test_hires_keeps_a_regionalised_tag_regional(webui, api):
    """A ``<lora:…>`` tag PixTention takes over must stay off the built-in Lora in the hires
    pass too (A1111 re-parses the hires prompts after ``before_process_batch``)."""
    prompt = f"{PROMPT} <lora:tabbycat:1>"
    regional = api.txt2img(
        payload(prompt=prompt, pixtention=[{"mode": "regionalise"}], **hires(webui))
    )
    assert "tabbycat" in [p["name"] for p in picks_of(regional)]
    params = infotext_params(regional.infotexts[0])
    assert "tabbycat" not in params.get("Lora hashes", ""), params
    globally = api.txt2img(payload(prompt=prompt, **hires(webui)))
    assert not same(regional.images[0], globally.images[0])


def test_batch_of_two(webui, api):
    off = api.txt2img(payload(batch_size=2))
    on = api.txt2img(payload(batch_size=2, pixtention=ON))
    assert len(on.images) == 2 and len(on.infotexts) == 2
    for index in range(2):
        assert_real_picks(picks_of(on, index), webui.lora_names)
        assert not same(on.images[index], off.images[index])


def test_prompt_over_75_tokens(webui, api):
    words = ("soft", "warm", "quiet", "calm", "gentle", "bright", "pale", "deep", "wide", "open")
    filler = ", ".join(f"{word} detail" for word in words)
    prompt = f"{filler}, {filler}, {filler}, {filler}, a tabby cat sitting on a wall"
    assert len(prompt.split()) > 75
    off = api.txt2img(payload(prompt=prompt))
    on = api.txt2img(payload(prompt=prompt, pixtention=[{"k": 1, "pins": "tabbycat"}]))
    picks = picks_of(on)
    assert [p["name"] for p in picks] == ["tabbycat"]
    assert "tabby cat" in picks[0]["phrase"]
    assert not any("not in the tokenised prompt" in n for n in on.pixtention().get("notes", []))
    assert off.images[0].any(), "the WebUI drew a black image without PixTention (NaN?)"
    assert not same(on.images[0], off.images[0])


def test_cfg_scale_one(webui, api):
    off = api.txt2img(payload(cfg_scale=1))
    on = api.txt2img(payload(cfg_scale=1, pixtention=ON))
    assert_real_picks(picks_of(on), webui.lora_names)
    assert not same(on.images[0], off.images[0])


def test_infotext_pasted_back_through_the_api(webui, api):
    first = api.txt2img(payload(pixtention=[{"k": 2}]))
    body = {"infotext": first.infotexts[0], "send_images": True, "save_images": False}
    pasted = api.txt2img({**body, **webui.spec.paste_extra})
    assert_real_picks(picks_of(first), webui.lora_names)
    assert picks_of(pasted) == picks_of(first)
    assert same(pasted.images[0], first.images[0])


def test_bad_argument_is_one_line_and_a_note(webui, api):
    bad = api.txt2img(payload(pixtention=[{"mode": "sideways"}]))
    params = infotext_params(bad.infotexts[0])
    assert "sideways" in params.get("PixTention error", ""), params
    assert not any("Traceback" in line for line in bad.console), bad.console
    said = pixtention_lines(bad.console)
    assert len(said) == 1 and "sideways" in said[0], said
    assert same(bad.images[0], webui.baseline.images[0])  # that image is made without it
    after = api.txt2img(payload(pixtention=ON))
    assert_real_picks(picks_of(after), webui.lora_names)
    assert not pixtention_lines(after.console), after.console
