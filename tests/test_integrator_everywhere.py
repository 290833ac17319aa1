"""A style pick serves the whole image (issue 14): its mask is 1 wherever its image has it,
from the first step, and it takes no share of the competition between the phrase masks."""

from __future__ import annotations

import torch

from pixtention.integrator.config import MaskConfig
from pixtention.integrator.mask_state import MaskState

CONFIG = MaskConfig(capture=(0,), grid_level=0, warmup_steps=1, freeze_at=1.0)


def _probs(seed: int) -> torch.Tensor:
    """One row's attention probabilities ``[heads, 8·8 pixels, 10 tokens]``."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(2, 64, 10, generator=g) * 3, dim=-1)


def _run(positions, everywhere=()) -> MaskState:
    state = MaskState(CONFIG, positions, images=2, total_steps=10, everywhere=everywhere)
    state.set_latent(8, 8)
    for step in range(3):
        state.fold(step)
        for image in range(2):
            state.add(image, 0, _probs(10 * step + image), (8, 8))
    state.fold(3)
    return state


def test_a_style_mask_is_the_whole_image_where_present() -> None:
    # adapter 0 gated to tokens 3-4 in both images; adapter 1 a style, in image 0 only
    state = _run([((3, 4), (3, 4)), ((6,), ())], everywhere=[False, True])
    masks = state.current()
    assert torch.equal(masks[0, 1], torch.ones(8, 8))
    assert torch.equal(masks[1, 1], torch.zeros(8, 8))
    before = MaskState(CONFIG, [((3,), (3,)), ((6,), ())], 2, 10, everywhere=[False, True])
    warm = before.rows_at([0, 1], (4, 4))  # before any map: the style is on, the phrase off
    assert torch.equal(warm[0, 1], torch.ones(16)) and torch.equal(warm[1, 1], torch.zeros(16))
    assert torch.equal(warm[:, 0], torch.zeros(2, 16))


def test_a_style_takes_no_share_of_the_phrase_masks() -> None:
    alone = _run([((3, 4), (3, 4))]).current()[:, 0]
    beside = _run([((3, 4), (3, 4)), ((6,), (6,))], everywhere=[False, True]).current()[:, 0]
    competing = _run([((3, 4), (3, 4)), ((6,), (6,))]).current()[:, 0]
    assert torch.allclose(alone, beside)
    assert not torch.allclose(alone, competing)  # a gated neighbour would have taken a share
