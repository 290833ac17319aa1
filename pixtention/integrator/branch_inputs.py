"""The keys and values of every cross-attention branch, kept from one step to the next.

``K + ΔK_k`` and ``V + ΔV_k`` depend only on the text context, which is the same at every
sampling step of a prompt; recomputing them per call costs two GEMMs per adapter and layer.
They are reused only while the context and the base keys/values are *equal* to the ones they
were made from (compared, not assumed), and never under autograd.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pixtention.integrator.targets import Prepared, branch_inputs


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and a.device == b.device
        and bool(torch.equal(a, b))
    )


class BranchInputs:
    """``branch_inputs`` per (attention layer, projection), reused while its inputs repeat."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[torch.Tensor, torch.Tensor, tuple[int, ...], torch.Tensor]] = {}

    def get(
        self,
        layer: str,
        prep: Prepared | None,
        base: torch.Tensor,
        context: torch.Tensor,
        index: Sequence[int],
    ) -> torch.Tensor:
        """``base + Δ_k(context)`` for adapters ``index``, ``[K', B, T, inner]``."""
        if prep is None or torch.is_grad_enabled():
            return branch_inputs(prep, base, context, index)
        key, index = f"{layer}:{prep.plan.path}", tuple(index)
        made = self._made.get(key)
        if (
            made is not None
            and made[2] == index
            and _same(made[0], context)
            and _same(made[1], base)
        ):
            return made[3]
        out = branch_inputs(prep, base, context, index)
        self._made[key] = (context, base, index, out)
        return out

    def clear(self) -> None:
        self._made.clear()
