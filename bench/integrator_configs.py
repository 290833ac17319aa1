"""Integrator benchmark configurations: random adapters, the global and merged baselines,
fixed regions, gated sessions, one UNet call, and the analytic FLOP count.

Split from ``bench/integrator.py`` (the runner: timing, memory, table).
"""

from __future__ import annotations

import torch

from pixtention.integrator import GatedAdapter, MaskConfig, attach
from pixtention.integrator.masks import level_of
from pixtention.library.factors import LowRank, MappedAdapter, ModuleDelta

STANDARD = (
    "attn1.to_q",
    "attn1.to_k",
    "attn1.to_v",
    "attn1.to_out.0",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
    "proj_in",
    "proj_out",
)
LOCON_EXTRA = ("in_layers.2", "out_layers.3", "skip_connection", "emb_layers.1", ".op", ".conv")


def _is_target(name: str, locon: bool) -> bool:
    return name.endswith(STANDARD) or (locon and name.endswith(LOCON_EXTRA))


def random_adapter(
    unet: torch.nn.Module, seed: int, rank: int, *, locon: bool = False
) -> MappedAdapter:
    """Rank-``rank`` random factors on the standard (or LoCon) targets."""
    g = torch.Generator().manual_seed(seed)
    targets = {}
    for name, module in unet.named_modules():
        w = getattr(module, "weight", None)
        if not isinstance(w, torch.Tensor) or w.dim() not in (2, 4) or not _is_target(name, locon):
            continue
        kernel = tuple(w.shape[2:]) if w.dim() == 4 else ()
        down = torch.randn(rank, w.shape[1], *kernel, generator=g) * 0.01
        up = torch.randn(w.shape[0], rank, *((1, 1) if kernel else ()), generator=g) * 0.01
        targets[name] = ModuleDelta(name, "locon" if kernel else "lora", LowRank(down, up, 1.0))
    return MappedAdapter(targets)


def _lowrank_out(module: torch.nn.Module, x: torch.Tensor, f: LowRank) -> torch.Tensor:
    if f.down.dim() == 2:
        return (x @ f.down.T) @ f.up.T * f.scale
    h = torch.nn.functional.conv2d(x, f.down, None, module.stride, module.padding, module.dilation)
    return torch.nn.functional.conv2d(h, f.up) * f.scale


class GlobalHooks:
    """Unmerged global LoRA: ``y + scale·up(down(x))`` on every target, per call."""

    def __init__(self, unet: torch.nn.Module, adapters: list[MappedAdapter]) -> None:
        self.unet, self.adapters, self.handles = unet, adapters, []

    def __enter__(self) -> GlobalHooks:
        modules = dict(self.unet.named_modules())
        for mapped in self.adapters:
            for name, delta in mapped.targets.items():
                self.handles.append(
                    modules[name].register_forward_hook(
                        lambda m, a, y, f=delta.factors: y + _lowrank_out(m, a[0], f)
                    )
                )
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


class Merged:
    """Merged-weights LoRA: ΔW added into the weights in place, subtracted again on exit."""

    def __init__(self, unet: torch.nn.Module, mapped: MappedAdapter) -> None:
        self.unet, self.mapped = unet, mapped

    def _apply(self, sign: float) -> None:
        modules = dict(self.unet.named_modules())
        with torch.no_grad():
            for name, delta in self.mapped.targets.items():
                w = modules[name].weight
                f = delta.factors
                dw = f.up.reshape(f.up.shape[0], -1) @ f.down.reshape(f.rank, -1)
                w += (dw * (sign * f.scale)).reshape(w.shape)

    def __enter__(self) -> Merged:
        self._apply(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._apply(-1.0)


class MacCounter:
    """Multiply-adds of one plain forward: Linear/Conv2d from shapes, attention matmuls."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet, self.macs, self.handles = unet, 0, []
        self.layers: dict[str, tuple[int, ...]] = {}  # module → tokens (or out H·W) per row

    def __enter__(self) -> MacCounter:
        for name, module in self.unet.named_modules():
            w = getattr(module, "weight", None)
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and isinstance(
                w, torch.Tensor
            ):
                self.handles.append(module.register_forward_hook(self._count(name)))
            if name.endswith(("attn1", "attn2")):
                self.handles.append(
                    module.register_forward_hook(self._attention(name), with_kwargs=True)
                )
        return self

    def _count(self, name: str):
        def hook(module, args, out):
            per_out = module.weight[0].numel()
            self.macs += out.numel() * per_out
            self.layers[name] = tuple(out.shape)

        return hook

    def _attention(self, name: str):
        def hook(module, args, kwargs, out):
            context = kwargs.get("context")
            keys = (
                args[0].shape[1] if context is None or name.endswith("attn1") else context.shape[1]
            )
            self.macs += 2 * out.shape[0] * out.shape[1] * keys * module.to_q.weight.shape[0]
            self.layers[name] = (out.shape[0], out.shape[1], keys, module.to_q.weight.shape[0])

        return hook

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def extra_macs(
    counter: MacCounter,
    modules: dict[str, torch.nn.Module],
    adapters: list[MappedAdapter],
    *,
    latent: int,
    capture: bool,
    gated: bool,
    coverage: float = 1.0,
) -> int:
    """Analytic extra multiply-adds of K low-rank adapters (+ branches and capture) per call.

    ``coverage``: the fraction of the image each adapter's mask covers; pointwise targets
    (Linear on pixels, 1×1 convs) run on those tokens only (the token-sparse path).
    """
    total = 0
    for mapped in adapters:
        for name, delta in mapped.targets.items():
            shape = counter.layers[name]
            f = delta.factors
            module = modules[name]
            if module.weight.dim() == 4:
                hw = shape[0] * shape[2] * shape[3]
                share = coverage if module.weight.shape[2:] == (1, 1) else 1.0
                total += share * hw * f.rank * (module.weight[0].numel() + module.weight.shape[0])
            else:
                tokens = int(torch.tensor(shape[:-1]).prod())
                share = 1.0 if name.endswith(("attn2.to_k", "attn2.to_v")) else coverage
                total += share * tokens * f.rank * (module.weight.shape[1] + module.weight.shape[0])
            if gated and name.endswith("attn2.to_k"):
                b, n, keys, inner = counter.layers[name[: -len(".to_k")]]
                total += 2 * b * n * keys * inner  # this adapter's attention branch
    if capture:
        for key, shape in counter.layers.items():
            if not key.endswith("attn2"):
                continue
            b, n, keys, inner = shape
            found = level_of(n, latent, latent)
            if found and found[0] in (1, 2):  # the "mid" preset
                total += (b // 2) * n * keys * inner  # cond rows: q kᵀ only
    return total


def regions(k: int, latent: int) -> torch.Tensor:
    """K side-by-side concept regions over 3/4 of the width (soft inside, 0 outside) and a
    background quarter — the shape captured masks have once the floor zeroes the rest."""
    out = torch.zeros(k, latent, latent)
    edges = [round(0.75 * latent * i / k) for i in range(k + 1)]
    for i in range(k):
        out[i, :, edges[i] : edges[i + 1]] = 0.9
    return out


class Gated:
    """A session gating ``len(masks)`` adapters of ``pool`` by fixed masks (``pool`` empty:
    capture alone)."""

    def __init__(self, unet: torch.nn.Module, pool: list[MappedAdapter], masks: torch.Tensor):
        self.unet, self.pool, self.mask_tensor = unet, pool, masks
        self.session = None

    def __enter__(self) -> Gated:
        if not self.pool:
            picks = [GatedAdapter("capture", MappedAdapter({}), 1.0, ((5, 6),))]
            self.session = attach(self.unet, picks)
            return self
        count = len(self.mask_tensor)
        picks = [GatedAdapter(f"a{i}", self.pool[i], 1.0, ((5, 6),)) for i in range(count)]
        self.session = attach(self.unet, picks, MaskConfig(max_adapters=8))
        self.session.set_masks(self.mask_tensor)
        return self

    def refresh(self) -> None:
        """Hand the masks over again: the next call rebuilds its per-level mask caches."""
        if self.pool:
            self.session.set_masks(self.mask_tensor)

    def __exit__(self, *exc: object) -> None:
        self.session.detach()


def unet_call(unet: torch.nn.Module, latent: int):
    """One batch-2 UNet call at ``latent`` (a new timestep each time, like sampling steps)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, latent, latent, generator=g)
    context = torch.randn(2, 77, 768, generator=g)
    step = [0]

    def call() -> None:
        step[0] += 1
        unet(x, torch.full((2,), 999 - step[0] % 999), context)

    return call
