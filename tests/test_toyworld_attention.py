"""The toy world's attention measures: AUROC/IoU, the grounding loss, the capture hooks."""

from __future__ import annotations

import math

import torch

from bench.toyworld.attention import Capture, auroc, grounding_loss, iou, localisation, word_map
from bench.toyworld.model import ToyConfig, ToyModel


def test_auroc_is_the_rank_statistic_with_ties_halved() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    assert auroc(torch.tensor([1.0, 2, 3, 4]), labels) == 1.0
    assert auroc(torch.tensor([4.0, 3, 2, 1]), labels) == 0.0
    assert auroc(torch.ones(4), labels) == 0.5
    assert auroc(torch.tensor([1.0, 2, 2, 3]), torch.tensor([0, 1, 0, 1])) == 0.875
    assert math.isnan(auroc(torch.ones(3), torch.zeros(3)))
    assert iou(torch.tensor([1, 1, 0]), torch.tensor([0, 1, 1])) == 1 / 3


def _probs_on(mask: torch.Tensor, res: int, token: int) -> torch.Tensor:
    """[1, res², 77]: pixels in ``mask`` attend only to ``token``, the rest only to BOS."""
    inside = torch.nn.functional.adaptive_avg_pool2d(mask[None].float(), res).flatten() > 0.5
    p = torch.zeros(1, res * res, 77)
    p[0, inside, token] = 1.0
    p[0, ~inside, 0] = 1.0
    return p


def test_the_grounding_loss_rewards_attention_on_the_mask() -> None:
    mask = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    mask[0, 0, 8:24, 8:24] = True
    select = torch.zeros(1, 1, 77)
    select[0, 0, 3] = 1.0
    on = {res: [_probs_on(mask[0, 0], res, 3)] for res in (16, 8)}
    uniform = {res: [torch.full((1, res * res, 77), 1 / 77)] for res in (16, 8)}
    assert grounding_loss(on, select, mask) < 0.01
    assert grounding_loss(uniform, select, mask) > 0.9
    assert grounding_loss(on, torch.zeros(1, 1, 77), mask) == 0  # no words, no loss
    word = word_map(on[16][0][0], (3,))
    assert localisation(word, mask[0, 0]) == (1.0, 1.0)


def test_capture_sees_every_attn2_layer_and_removes_its_hooks() -> None:
    torch.manual_seed(0)
    model = ToyModel(ToyConfig()).eval()
    capture = Capture(model.unet)
    x = (torch.randn(2, 12, 16, 16), torch.tensor([10, 900]), model.encode(["a red circle"] * 2))
    with torch.no_grad(), capture.hooked():
        model.unet(*x)
    probs = capture.probs()
    assert sorted(probs) == [2, 4, 8, 16]
    assert [len(probs[r]) for r in (16, 8, 4, 2)] == [5, 5, 5, 1]  # SD1's attention layout
    assert all(torch.allclose(p.sum(-1), torch.ones(())) for ps in probs.values() for p in ps)
    hooks = sum(len(m._forward_hooks) for m in model.unet.modules())
    assert hooks == 0
