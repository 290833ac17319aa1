"""The committed toy-world fixtures: they load, map fully, and the base obeys its prompts.

Thresholds sit below what the committed weights measured (bench/toyworld/fixtures/
toyworld_eval.json), on fewer seeds and sampling steps so the file stays fast.
"""

from __future__ import annotations

import pytest
import torch

from bench.toyworld.attention import Capture, localisation, word_map
from bench.toyworld.evaluate import classify, lora_effect, single_prompts
from bench.toyworld.lora import lora_targets
from bench.toyworld.model import (
    BASE_FIXTURE,
    FIXTURES,
    alphas_cumprod,
    load_fixture,
    sample,
    to_latent,
)
from bench.toyworld.scenes import scene_batch
from bench.toyworld.train_lora import CARDS
from pixtention.integrator import token_positions
from pixtention.library import read_adapter
from pixtention.library.keymap import map_to_model
from pixtention.library.weights import load_weights

MIN_COLOUR_ACCURACY = 0.8
MIN_AUROC_16 = 0.9
# measured on 4 seeds (toyworld_eval.json): striped +0.13, purple +0.5, checkered +0.19
MIN_CONCEPT_GAIN = {"striped": 0.06, "purple": 0.25, "checkered": 0.1}


@pytest.fixture(scope="module")
def base():
    return load_fixture(BASE_FIXTURE)


def test_the_base_fixture_is_small_fp16_and_loads(base) -> None:
    assert BASE_FIXTURE.stat().st_size < 8_000_000
    params = sum(p.numel() for p in base.unet.parameters())
    assert 3_000_000 < params < 3_500_000


@pytest.mark.parametrize("concept", sorted(CARDS))
def test_each_lora_fixture_maps_fully_and_reads_with_its_card(base, concept: str) -> None:
    path = FIXTURES / f"{CARDS[concept]['name']}.safetensors"
    mapped = map_to_model(load_weights(path), base.unet.named_modules())
    assert not mapped.unmatched and not mapped.text_encoder
    assert set(mapped.targets) == set(lora_targets(base.unet))
    info = read_adapter(path, FIXTURES)
    assert (info.layout.kind, info.layout.rank, info.base_model.family) == ("lora", 4, "sd1")
    assert info.metadata.triggers[: len(CARDS[concept]["trainedWords"])] == tuple(
        CARDS[concept]["trainedWords"]
    )
    assert not info.warnings


def test_the_base_draws_the_colour_it_is_asked_for(base) -> None:
    torch.manual_seed(0)
    prompts = single_prompts()
    images = sample(base, [f"a {c} {s}" for c, s in prompts], seed=5, steps=10)
    found = [classify(image) for image in images]
    right = [bool(f) and f[0].colour == c for f, (c, _) in zip(found, prompts)]
    assert sum(right) / len(right) >= MIN_COLOUR_ACCURACY, right


@torch.no_grad()
def test_an_objects_words_attend_to_that_object(base) -> None:
    scenes = scene_batch(4242, 8)
    t = 500
    abar = alphas_cumprod()[t]
    x0 = to_latent(torch.stack([s.image for s in scenes]))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    capture = Capture(base.unet)
    with capture.hooked():
        base.unet(
            abar.sqrt() * x0 + (1 - abar).sqrt() * noise,
            torch.full((8,), t),
            context=base.encode([s.caption for s in scenes]),
        )
    layers = capture.probs()[16]
    scores = []
    for b, scene in enumerate(scenes):
        for o, thing in enumerate(scene.things):
            pos = token_positions(
                base.tokenizer.tokenize_line, scene.caption, f"{thing.colour} {thing.shape}"
            )
            word = torch.stack([word_map(p[b], pos) for p in layers]).mean(0)
            scores.append(localisation(word, scene.masks[o])[0])
    assert sum(scores) / len(scores) >= MIN_AUROC_16


@pytest.mark.parametrize("concept", sorted(CARDS))
def test_each_lora_moves_samples_towards_its_concept(base, concept: str) -> None:
    path = FIXTURES / f"{CARDS[concept]['name']}.safetensors"
    effect = lora_effect(base, path, concept, seeds=1)
    gain = effect["concept_score_lora"] - effect["concept_score_base"]
    assert gain >= MIN_CONCEPT_GAIN[concept], effect
