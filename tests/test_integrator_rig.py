"""Adapters and independent references for the integrator tests (plus a check of the rig).

References here never call PixTention's gating code: ``GlobalReference`` applies every delta
with its own forward hooks (``y = base(x) + scale·w·up(down(x))`` — the WebUI's
``lora_functional`` semantics) and ``merged_copy`` adds ΔW into a copy's weights.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from pixtention.library.factors import Dense, LowRank, MappedAdapter, ModuleDelta


def target_modules(
    unet: torch.nn.Module, *, conv: bool = True, include=None
) -> dict[str, torch.nn.Module]:
    """Every Linear/Conv2d of the UNet (optionally filtered by a name predicate)."""
    out = {}
    for name, module in unet.named_modules():
        layer = isinstance(module, torch.nn.Linear) or (
            conv and isinstance(module, torch.nn.Conv2d)
        )
        if layer and (include is None or include(name)):
            out[name] = module
    return out


def lowrank_adapter(
    unet, seed: int, *, rank: int = 4, tucker: bool = False, include=None, std: float = 0.1
) -> MappedAdapter:
    """Random LoRA/LoCon factors on the UNet's Linear and Conv2d modules."""
    g = torch.Generator().manual_seed(seed)
    targets = {}
    for name, module in target_modules(unet, include=include).items():
        w = module.weight
        scale = 0.5 + (seed % 3) * 0.25
        if w.dim() == 2:
            f = LowRank(
                torch.randn(rank, w.shape[1], generator=g) * std,
                torch.randn(w.shape[0], rank, generator=g) * std,
                scale,
            )
        elif tucker and w.shape[2:] != (1, 1):
            f = LowRank(
                torch.randn(rank, w.shape[1], 1, 1, generator=g) * std,
                torch.randn(w.shape[0], rank, 1, 1, generator=g) * std,
                scale,
                torch.randn(rank, rank, *w.shape[2:], generator=g) * std,
            )
        else:
            f = LowRank(
                torch.randn(rank, w.shape[1], *w.shape[2:], generator=g) * std,
                torch.randn(w.shape[0], rank, 1, 1, generator=g) * std,
                scale,
            )
        targets[name] = ModuleDelta(name, "locon" if w.dim() == 4 else "lora", f)
    return MappedAdapter(targets)


def dense_adapter(unet, seed: int, kind: str, *, include=None, std: float = 0.02) -> MappedAdapter:
    """Dense deltas of the LyCORIS kinds, each as its own formula of the base weight."""
    g = torch.Generator().manual_seed(seed)
    targets = {}
    for name, module in target_modules(unet, include=include).items():
        w = module.weight
        out_f = w.shape[0]
        flat = w[0].numel()
        if kind == "loha":
            a1, b1 = (
                torch.randn(out_f, 2, generator=g) * 0.3,
                torch.randn(2, flat, generator=g) * 0.3,
            )
            a2, b2 = (
                torch.randn(out_f, 2, generator=g) * 0.3,
                torch.randn(2, flat, generator=g) * 0.3,
            )

            def fn(orig, a1=a1, b1=b1, a2=a2, b2=b2):
                return ((a1 @ b1) * (a2 @ b2)).reshape(orig.shape) * 0.5

            bias = None
        elif kind == "lokr":
            side = 2 if out_f % 2 == 0 and flat % 2 == 0 else 1
            k1 = torch.randn(side, side, generator=g) * 0.3
            k2 = torch.randn(out_f // side, flat // side, generator=g) * 0.1

            def fn(orig, k1=k1, k2=k2):
                return torch.kron(k1, k2).reshape(orig.shape)

            bias = None
        elif kind == "ia3":
            vec = torch.randn(out_f, generator=g) * 0.2

            def fn(orig, vec=vec):
                return orig * vec.view(-1, *([1] * (orig.dim() - 1)))

            bias = None
        elif kind == "full":
            diff = torch.randn(w.shape, generator=g) * std

            def fn(orig, diff=diff):
                return diff.clone()

            bias = torch.randn(out_f, generator=g) * std if module.bias is not None else None
        elif kind == "dora":
            down, up = (
                torch.randn(2, flat, generator=g) * 0.2,
                torch.randn(out_f, 2, generator=g) * 0.2,
            )
            magnitude = torch.rand(out_f, generator=g) + 0.5

            def fn(orig, down=down, up=up, magnitude=magnitude):
                merged = orig.flatten(1) + up @ down
                return (merged * (magnitude / merged.norm(dim=1)).unsqueeze(1)).reshape(
                    orig.shape
                ) - orig

            bias = None
        else:
            raise ValueError(kind)
        targets[name] = ModuleDelta(name, kind, Dense(fn, bias, 2))
    return MappedAdapter(targets)


def delta_weight(module: torch.nn.Module, delta: ModuleDelta) -> torch.Tensor:
    """ΔW of one module delta (adapter scale included, user weight not)."""
    f = delta.factors
    w = module.weight.detach()
    if isinstance(f, Dense):
        return f.delta(w.clone())
    up = f.up.reshape(f.up.shape[0], -1)
    if w.dim() == 2:
        return f.scale * up @ f.down.reshape(f.rank, -1)
    if f.mid is not None:
        core = torch.einsum("rsij,sc->rcij", f.mid, f.down.reshape(f.rank, -1))
        return f.scale * torch.einsum("or,rcij->ocij", up, core)
    return f.scale * torch.einsum("or,rcij->ocij", up, f.down)


def _apply(module: torch.nn.Module, x: torch.Tensor, dw: torch.Tensor, bias) -> torch.Tensor:
    if dw.dim() == 2:
        return F.linear(x, dw, bias)
    return F.conv2d(x, dw, bias, module.stride, module.padding, module.dilation)


def lowrank_output(
    module: torch.nn.Module, x: torch.Tensor, delta: ModuleDelta, weight: float
) -> torch.Tensor:
    """``scale·w·up(down(x))`` computed factor by factor (the unmerged LoRA path)."""
    f = delta.factors
    if isinstance(f, Dense):
        bias = None if f.bias is None else f.bias * weight
        return _apply(module, x, f.delta(module.weight.detach().clone()) * weight, bias)
    if module.weight.dim() == 2:
        return (
            (x @ f.down.reshape(f.rank, -1).T)
            @ f.up.reshape(f.up.shape[0], -1).T
            * (f.scale * weight)
        )
    if f.mid is not None:
        h = F.conv2d(x, f.down)
        h = F.conv2d(h, f.mid, None, module.stride, module.padding, module.dilation)
    else:
        h = F.conv2d(x, f.down, None, module.stride, module.padding, module.dilation)
    return F.conv2d(h, f.up.reshape(*f.up.shape[:2], 1, 1)) * (f.scale * weight)


class GlobalReference:
    """Apply adapters everywhere with plain forward hooks (a context manager)."""

    def __init__(self, unet: torch.nn.Module, adapters: list[tuple[MappedAdapter, float]]) -> None:
        self.unet = unet
        self.adapters = adapters
        self.handles = []

    def __enter__(self):
        modules = dict(self.unet.named_modules())
        for mapped, weight in self.adapters:
            for name, delta in mapped.targets.items():
                module = modules[name]

                def hook(mod, args, output, delta=delta, weight=weight):
                    return output + lowrank_output(mod, args[0], delta, weight)

                self.handles.append(module.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def merged_copy(
    unet: torch.nn.Module, adapters: list[tuple[MappedAdapter, float]]
) -> torch.nn.Module:
    """A copy of the UNet with every ΔW (and bias delta) added into its weights."""
    merged = copy.deepcopy(unet)
    modules = dict(merged.named_modules())
    with torch.no_grad():
        for mapped, weight in adapters:
            for name, delta in mapped.targets.items():
                module = modules[name]
                module.weight += delta_weight(module, delta) * weight
                bias = getattr(delta.factors, "bias", None)
                if bias is not None:
                    module.bias += bias * weight
    return merged


def hook_count(unet: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in unet.modules())


def unet_inputs(batch: int = 2, size: int = 8, seed: int = 0, tokens: int = 77):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, size, size, generator=g)
    context = torch.randn(batch, tokens, 32, generator=g)
    return x, torch.full((batch,), 500), context


def test_references_agree_with_each_other(tiny_unet) -> None:
    """The unmerged hook reference and the merged copy agree, for low-rank, Tucker and dense."""
    x, t, ctx = unet_inputs()
    adapters = [
        (lowrank_adapter(tiny_unet, 1), 0.7),
        (lowrank_adapter(tiny_unet, 2, tucker=True), 1.0),
        (dense_adapter(tiny_unet, 3, "full"), 1.0),
    ]
    with torch.no_grad():
        base = tiny_unet(x, t, ctx)
        with GlobalReference(tiny_unet, adapters):
            unmerged = tiny_unet(x, t, ctx)
        merged = merged_copy(tiny_unet, adapters)(x, t, ctx)
    assert hook_count(tiny_unet) == 0
    assert (unmerged - base).abs().max() > 1e-2
    assert torch.allclose(unmerged, merged, atol=1e-4)
