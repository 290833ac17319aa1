"""Cross-attention maps of the toy UNet, through the product's capture code.

The Integrator stashes ``attn2.to_q``/``attn2.to_k`` outputs with forward hooks and recomputes
``softmax(q kᵀ · d^-0.5)`` (``pixtention.integrator.capture``); this module does the same with
the same functions, for two users: training (the attention-grounding loss, with gradients — the
probe found attention stays uniform without it) and evaluation (AUROC/IoU of a word's map vs
its object's true mask).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from pixtention.integrator.capture import attention_probs, find_cross_attention, head_count

GROUNDED = (16, 8)  # attn2 resolutions the grounding loss supervises


class Capture:
    """Per attn2 layer, the last call's ``to_q`` and ``to_k`` outputs (hooks removed on exit)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.layers = find_cross_attention(unet.named_modules())
        self.heads = {p: head_count(m, p) for p, m in self.layers.items()}
        self.q: dict[str, torch.Tensor] = {}
        self.k: dict[str, torch.Tensor] = {}

    @contextlib.contextmanager
    def hooked(self) -> Iterator[Capture]:
        handles = []
        for path, attn in self.layers.items():
            handles.append(attn.to_q.register_forward_hook(self._keep(self.q, path)))
            handles.append(attn.to_k.register_forward_hook(self._keep(self.k, path)))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _keep(store: dict[str, torch.Tensor], path: str):
        def hook(_module, _inputs, output):
            store[path] = output

        return hook

    def probs(self, rows: slice = slice(None)) -> dict[int, list[torch.Tensor]]:
        """Head-averaged probabilities per resolution: ``{res: [[B, res·res, 77], …]}``."""
        out: dict[int, list[torch.Tensor]] = {}
        for path, q in self.q.items():
            p = attention_probs(q[rows], self.k[path][rows], self.heads[path]).mean(1)
            out.setdefault(round(p.shape[1] ** 0.5), []).append(p)
        return out


def grounding_loss(
    probs: dict[int, list[torch.Tensor]], select: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """Balanced in/out loss pulling each object's word attention onto its mask.

    ``select`` ``[B, O, 77]`` marks each object's token positions (all-zero rows for absent
    objects), ``masks`` ``[B, O, 32, 32]``. Per object: mean attention mass on its words
    *missing* inside its mask plus mean mass *present* outside it, at each ``GROUNDED`` layer.
    """
    valid = select.sum(-1) > 0
    terms = []
    for res in GROUNDED:
        target = F.adaptive_avg_pool2d(masks.float(), res).flatten(2)  # [B, O, N]
        inside = target.sum(-1).clamp_min(1e-6)
        outside = (1 - target).sum(-1).clamp_min(1e-6)
        for p in probs.get(res, []):
            word = torch.einsum("bnt,bot->bon", p, select)  # [B, O, N]
            miss = ((1 - word) * target).sum(-1) / inside
            spill = (word * (1 - target)).sum(-1) / outside
            terms.append(((miss + spill) * valid).sum() / valid.sum().clamp_min(1))
    return torch.stack(terms).mean()


def word_map(p: torch.Tensor, positions: tuple[int, ...]) -> torch.Tensor:
    """One image's map for some token positions: ``[N, 77]`` → ``[res, res]``.

    As the product's mask recipe does, the start token's share is dropped and the rest
    renormalised before the phrase's tokens are summed.
    """
    rest = p[:, 1:] / p[:, 1:].sum(-1, keepdim=True).clamp_min(1e-12)
    res = round(p.shape[0] ** 0.5)
    return rest[:, [i - 1 for i in positions]].sum(-1).view(res, res)


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (rank statistic, ties averaged); nan if one class is absent."""
    s, y = scores.flatten().double(), labels.flatten().bool()
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return float("nan")
    _, inverse, counts = s.unique(return_inverse=True, return_counts=True)
    last = counts.cumsum(0).to(s.dtype)  # rank of each distinct value's last copy
    ranks = (last - (counts - 1) / 2)[inverse]  # ties share their mean rank
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else float("nan")


def localisation(word: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """AUROC and IoU of a word map (upsampled to the mask's size) vs the true mask.

    IoU thresholds the min-max normalised map at 0.5.
    """
    up = F.interpolate(word[None, None], size=mask.shape, mode="bilinear", align_corners=False)[
        0, 0
    ]
    norm = (up - up.min()) / (up.max() - up.min()).clamp_min(1e-12)
    return auroc(up, mask), iou(norm > 0.5, mask)
