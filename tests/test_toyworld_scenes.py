"""The toy world's scenes: deterministic, masks exact, captions and word spans agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.toyworld.evaluate import DETECTORS, classify
from bench.toyworld.scenes import (
    BACKGROUND,
    CONCEPTS,
    PALETTE,
    concept_scene,
    draw,
    scene_batch,
    shape_mask,
)


def test_a_seed_gives_the_same_scenes_and_another_seed_others() -> None:
    a, b, c = scene_batch(11, 16), scene_batch(11, 16), scene_batch(12, 16)
    assert [s.caption for s in a] == [s.caption for s in b]
    assert all(
        torch.equal(x.image, y.image) and torch.equal(x.masks, y.masks) for x, y in zip(a, b)
    )
    assert [s.caption for s in a] != [s.caption for s in c]
    assert {len(s.things) for s in a + c} == {1, 2}


def _rgb(image: torch.Tensor) -> np.ndarray:
    return ((image + 1) * 127.5).round().permute(1, 2, 0).numpy()


def test_masks_are_exactly_the_object_pixels() -> None:
    for scene in scene_batch(3, 64):
        rgb = _rgb(scene.image)
        masks = scene.masks.numpy()
        assert masks.any(axis=(1, 2)).all()
        assert masks.sum(0).max() == 1  # objects never overlap
        for thing, mask in zip(scene.things, masks):
            assert (rgb[mask] == PALETTE[thing.colour]).all()
        assert (rgb[~masks.any(0)] == BACKGROUND).all()


def test_shapes_have_their_geometry() -> None:
    circle, square, triangle = (shape_mask(s, 15, 15, 7) for s in ("circle", "square", "triangle"))
    assert circle[15, 15] and not circle[15 - 7, 15 - 7]  # centre in, bounding-box corner out
    assert square[15 - 5, 15 - 5] and square.sum() > circle.sum() * 0.8
    assert triangle[15 + 6, 15 - 6] and not triangle[15 - 6, 15 - 6]  # wide base, narrow apex
    with pytest.raises(ValueError):
        shape_mask("star", 15, 15, 7)


def test_word_spans_point_at_each_objects_words() -> None:
    for scene in scene_batch(5, 32):
        words = scene.caption.split()
        for thing, span in zip(scene.things, scene.word_spans()):
            assert [words[i] for i in span] == thing.words()


def test_the_classifier_reads_drawn_scenes_back() -> None:
    for scene in scene_batch(9, 100):
        got = sorted((f.colour, f.shape) for f in classify(scene.image))
        assert got == sorted((t.colour, t.shape) for t in scene.things), scene.caption


@pytest.mark.parametrize("concept", CONCEPTS)
def test_each_concept_is_drawn_and_detected_only_where_drawn(concept: str) -> None:
    rng = np.random.default_rng(1)
    scenes = [concept_scene(rng, concept) for _ in range(48)]
    if concept == "purple":  # the detector reads the largest object: single-object scenes
        scenes = [s for s in scenes if len(s.things) == 1]
    assert all(concept in s.caption for s in scenes)
    assert all(DETECTORS[concept](s.image) for s in scenes)
    assert not any(DETECTORS[concept](s.image) for s in scene_batch(2, 24))


def test_a_checkered_background_keeps_the_masks() -> None:
    plain = scene_batch(4, 1)[0]
    checkered = draw(plain.things, "checkered")
    assert torch.equal(plain.masks, checkered.masks)
    assert checkered.caption == plain.caption + " on a checkered background"
    inside = plain.masks.any(0)
    assert torch.equal(plain.image[:, inside], checkered.image[:, inside])
    assert not torch.equal(plain.image[:, ~inside], checkered.image[:, ~inside])
