"""The readers ``bench quality`` scores compositions with, checked on drawn scenes (known
answers): an object's colour at its mask, stripes and purple in a region, mask IoU, the
fixed boxes of the regional baseline, and the compositions themselves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from bench.toyworld.compose import cases, schedule
from bench.toyworld.methods import boxes, truth_masks
from bench.toyworld.quality_metrics import (
    change,
    dilate,
    mask_iou,
    object_colour,
    purple_in,
    stripe_in,
)
from bench.toyworld.scenes import Thing, _place, draw

STRIPES = 0.07  # evaluate.has_stripes' threshold, which bench quality reuses


def _drawn(seed: int, n: int, *, striped: bool, square: str) -> list:
    """Circle + square scenes like the compositions', the circle striped or not."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        circle = _place(rng, [], "circle", "red")
        other = _place(rng, [circle], "square", square)
        if other is None:
            continue
        first = replace(circle, pattern="striped") if striped else circle
        out.append(draw((first, other)))
    return out


def test_object_colour_reads_drawn_objects_striped_or_not() -> None:
    for striped in (False, True):
        for scene in _drawn(1, 24, striped=striped, square="purple"):
            assert object_colour(scene.image, scene.masks[0]) == "red"
            assert object_colour(scene.image, scene.masks[1]) == "purple"
    blank = draw((Thing("circle", "green", 10, 10, 6),))
    assert object_colour(blank.image, torch.roll(blank.masks[0], 16, 1)) is None


def test_stripes_and_purple_are_read_in_their_region_only() -> None:
    for scene in _drawn(2, 16, striped=True, square="blue"):
        circle, square = (dilate(m, 2) for m in scene.masks)
        assert stripe_in(scene.image, circle) > STRIPES
        assert stripe_in(scene.image, square) < STRIPES
        assert purple_in(scene.image, square) == 0.0
    for scene in _drawn(3, 16, striped=False, square="purple"):
        assert purple_in(scene.image, scene.masks[1]) == 1.0
        assert stripe_in(scene.image, dilate(scene.masks[0], 2)) < STRIPES


def test_true_masks_at_latent_size_score_a_high_iou_and_empty_masks_zero() -> None:
    batch = cases(7, 8)
    latent = truth_masks(batch, (0, 1))
    assert latent.shape == (8, 2, 16, 16)
    for b, case in enumerate(batch):
        for k in (0, 1):
            assert mask_iou(latent[b, k], case.masks[k]) > 0.8
            assert mask_iou(torch.zeros(16, 16), case.masks[k]) == 0.0


def test_regional_boxes_cover_their_object_and_share_overlaps() -> None:
    batch = cases(8, 8)
    regions = boxes(batch, (0, 1))
    assert float(regions.sum(1).max()) <= 1.0 + 1e-6
    up = torch.nn.functional.interpolate(regions, size=32, mode="nearest")
    for b, case in enumerate(batch):
        for k in (0, 1):
            assert bool((up[b, k][case.masks[k]] > 0).all())


def test_compositions_are_reproducible_and_two_objects_apart() -> None:
    a, b = cases(5, 6), cases(5, 6)
    for x, y in zip(a, b):
        assert torch.equal(x.image, y.image) and x.prompt == y.prompt
        assert not bool((dilate(x.masks[0], 1) & x.masks[1]).any())
        assert x.prompt == f"a striped {x.circle_colour} circle and a purple square"
    assert len(schedule(0.6, 20)) == 12 and int(schedule(0.6, 20)[-1]) == 0


def test_change_is_zero_for_equal_runs_and_counts_only_its_region() -> None:
    x = [torch.zeros(2, 3, 32, 32)]
    y = [torch.zeros(2, 3, 32, 32)]
    y[0][:, :, :16] = 1.0
    top = torch.zeros(2, 32, 32, dtype=torch.bool)
    top[:, :16] = True
    assert change(x, x, top) == 0.0
    assert change(y, x, top) == 1.0 and change(y, x, ~top) == 0.0


def test_a_drawn_thing_is_unchanged_by_the_readers() -> None:
    scene = draw((Thing("circle", "green", 10, 10, 6),))
    before = scene.image.clone()
    object_colour(scene.image, scene.masks[0])
    stripe_in(scene.image, scene.masks[0])
    assert torch.equal(scene.image, before)
