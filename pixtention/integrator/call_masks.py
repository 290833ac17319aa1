"""The masks one UNet call sees, at every level, cached until the call's shape changes.

Every hooked module of a call asks for the same masks at its own resolution; computing them once
per (level, dtype, device) — and the gates and sparse indices derived from them — keeps the hot
path to one lookup. The cache is dropped when the step's masks, the latent size or the row
layout change.
"""

from __future__ import annotations

import torch

from pixtention.integrator import masks as maskmath
from pixtention.integrator.config import IntegratorError, RowLayout
from pixtention.integrator.gating import TokenGroups, expand_gate, token_groups
from pixtention.integrator.mask_state import MaskState
from pixtention.integrator.targets import Prepared

SPARSE_FRACTION = 0.5  # token-sparse paths when adapters cover ≤ half of their tokens (padded)
SPARSE_MIN_TOKENS = 16  # … and the call has enough tokens to repay the gather and scatter

Masks = tuple[torch.Tensor, frozenset[int]]


class CallMasks:
    """Masks for the rows of the current UNet call, by level, with derived gates."""

    def __init__(self, state: MaskState) -> None:
        self.state = state
        self.latent: tuple[int, int] | None = None
        self.layout: RowLayout | None = None
        self._cache: dict[tuple, object] = {}
        self._version = state.version

    def set_call(self, latent: tuple[int, int], layout: RowLayout) -> None:
        """Note the call's latent size and row layout; a change drops the cache."""
        if (latent, layout) != (self.latent, self.layout):
            self.latent, self.layout = latent, layout
            self._cache.clear()

    def clear(self) -> None:
        self._cache.clear()

    def level(self, size: tuple[int, int] | None, like: torch.Tensor) -> Masks:
        """Masks of this call's rows at a level, ``[B, K, h·w]`` in ``like``'s dtype, and the
        adapters with any non-zero mask; ``size`` None gives each row's mean mask ``[B, K, 1]``."""
        if self._version != self.state.version:
            self._cache.clear()
            self._version = self.state.version
        key = ("m", size, like.dtype, like.device)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if self.layout is None or self.latent is None:
            raise IntegratorError(
                "a hooked module ran outside a UNet call; PixTention hooks need the UNet's forward"
            )
        out = self.state.rows_at(self.layout.image, size or maskmath.level_sizes(*self.latent)[0])
        if size is None:
            out = out.mean(-1, keepdim=True)
        active = frozenset(int(k) for k in torch.nonzero(out.flatten(2).amax((0, 2)) > 0).flatten())
        result = (out.to(like.device, like.dtype), active)
        self._cache[key] = result
        return result

    def for_tokens(self, tokens: int, like: torch.Tensor) -> Masks:
        """Masks ``[B, K, tokens]`` for a token sequence, or ``[B, K, 1]`` if it is not spatial."""
        found = maskmath.level_of(tokens, *self.latent) if self.latent else None
        return self.level(found[1] if found else None, like)

    def groups(self, index: tuple[int, ...], m: torch.Tensor) -> TokenGroups | None:
        """The tokens adapters ``index`` touch in ``m`` ``[B, K, N]``, grouped per adapter and
        row (see ``token_groups``) — or None when the token-sparse path would not pay: too few
        tokens, masks covering too much, or a gather larger than the input itself."""
        rows, tokens = m.shape[0], m.shape[2]
        if rows * tokens < SPARSE_MIN_TOKENS:
            return None
        key = ("s", index, id(m))  # m itself lives in this cache, so its id is stable
        if key not in self._cache:
            found = token_groups(m[:, list(index)])
            padded = found.gate.numel()
            fits = (
                padded <= SPARSE_FRACTION * len(index) * rows * tokens and padded <= rows * tokens
            )
            self._cache[key] = found if fits else None
        return self._cache[key]

    def gate(self, prep: Prepared, m: torch.Tensor, conv: bool, size: tuple[int, int]):
        """The rank-space gate ``[B, N, R]`` (or ``[B, R, h, w]`` for convs) of ``prep``'s
        stacked low-rank adapters."""
        key = ("g", prep.lowrank_index, prep.lowrank.ranks, conv, id(m))
        gate = self._cache.get(key)
        if gate is None:
            gate = expand_gate(m[:, list(prep.lowrank_index)].transpose(1, 2), prep.lowrank.ranks)
            if conv:
                gate = gate.transpose(1, 2).reshape(m.shape[0], -1, *size)
            self._cache[key] = gate.contiguous()
        return gate
