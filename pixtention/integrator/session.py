"""The one place that owns every hook PixTention puts on a UNet (design §6.1).

``attach(unet, adapters, config)`` installs torch forward hooks and pre-hooks only — never
class-level patches, never a replaced ``forward`` — and returns a ``Session``, a context
manager that removes them all on exit, also on exceptions. Per UNet call the session knows the
latent size and which rows are cond/uncond of which image (``set_row_layout``); per step it
folds the captured attention into masks (``begin_step``, or inferred from the timestep), and
every hooked module adds its adapters' deltas gated by those masks.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import torch

from pixtention.integrator import masks as maskmath
from pixtention.integrator.branch_inputs import BranchInputs
from pixtention.integrator.call_masks import CallMasks
from pixtention.integrator.capture import attention_probs, find_cross_attention, head_count
from pixtention.integrator.config import GatedAdapter, IntegratorError, MaskConfig, RowLayout
from pixtention.integrator.gating import branch_blend, sparse_branches
from pixtention.integrator.mask_state import MaskState
from pixtention.integrator.targets import (
    AttachReport,
    Prepared,
    add_sparse,
    per_adapter_deltas,
    plan_targets,
    prepare,
    spatial_delta,
)

LayoutSource = RowLayout | Callable[[int, torch.Tensor | None], RowLayout] | None
_ATTACHED: weakref.WeakKeyDictionary[torch.nn.Module, Session] = weakref.WeakKeyDictionary()


def attach(
    unet: torch.nn.Module,
    adapters: Sequence[GatedAdapter],
    config: MaskConfig | None = None,
    *,
    total_steps: int | None = None,
) -> Session:
    """Gate ``adapters`` on ``unet`` for one generation; any earlier session on it is detached."""
    session = Session(unet, adapters, config or MaskConfig(), total_steps=total_steps)
    session.reattach(unet, freeze=False)
    return session


def detach_all(unet: torch.nn.Module) -> bool:
    """Defensive clean-up before a job: detach whatever session is on ``unet``; True if any."""
    session = _ATTACHED.get(unet)
    if session is None:
        return False
    session.detach()
    return True


class Session:
    """Hooks, masks and per-step state of one generation; see ``attach``."""

    def __init__(
        self,
        unet: torch.nn.Module,
        adapters: Sequence[GatedAdapter],
        config: MaskConfig,
        *,
        total_steps: int | None = None,
    ) -> None:
        if len(adapters) > config.max_adapters:
            raise IntegratorError(
                f"{len(adapters)} adapters picked but at most {config.max_adapters} may be gated (MaskConfig.max_adapters)"
            )
        images = {len(a.positions) for a in adapters}
        if len(images) > 1:
            raise IntegratorError(f"adapters disagree on the number of images: {sorted(images)}")
        kept = [a for a in adapters if any(a.positions)]
        skipped = tuple(
            (a.name, "its phrase tokenises to nothing or is not in the prompt")
            for a in adapters
            if not any(a.positions)
        )
        self.config = config
        self.adapters = tuple(kept)
        self.images = images.pop() if images else 1
        self.warnings: list[str] = []
        self._unbranched: set[str] = set()
        plans, report = plan_targets(dict(unet.named_modules()), self.adapters)
        self.report = AttachReport(
            report.gated, skipped, report.missing, report.text_encoder_off, report.dense
        )
        self.state = MaskState(
            config,
            [a.positions for a in self.adapters],
            self.images,
            total_steps,
            everywhere=[a.everywhere for a in self.adapters],
        )
        self._plans = plans
        self._unet: torch.nn.Module | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._prepared: dict[str, Prepared] = {}
        self._prepared_on: tuple[int, torch.device, torch.dtype] | None = None
        self._layout_source: LayoutSource = None
        self._manual_steps = False
        self._reset_run_state()

    # ----- public API -------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.adapters)

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def frozen(self) -> bool:
        return self.state.frozen

    @property
    def total_steps(self) -> int | None:
        return self.state.total_steps

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def detach(self) -> None:
        """Remove every hook and drop per-call stashes (safe to call twice)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stash.clear()
        self._emb.clear()
        self._kv.clear()
        if self._unet is not None and _ATTACHED.get(self._unet) is self:
            del _ATTACHED[self._unet]
        self._unet = None

    def reattach(self, unet: torch.nn.Module | None = None, *, freeze: bool = True) -> Session:
        """Install the hooks again (hires pass): old hooks removed first, masks kept.

        With ``freeze`` the masks formed so far stop changing; they are resized to whatever
        latent size the next calls use.
        """
        unet = unet if unet is not None else self._unet
        if unet is None:
            raise IntegratorError("reattach() needs a UNet: this session was never attached")
        self.detach()
        other = _ATTACHED.get(unet)
        if other is not None:
            other.detach()
        if freeze:
            self.state.freeze_now()
        self._reset_run_state()
        self._install(unet)
        _ATTACHED[unet] = self
        self._unet = unet
        return self

    def begin_step(self, step: int, total: int | None = None) -> None:
        """Say which sampling step the next UNet calls belong to (turns off inference)."""
        self._manual_steps = True
        if total is not None:
            self.state.total_steps = total
        if step != self.state.step:
            self.state.fold(step)

    def set_row_layout(self, layout: LayoutSource) -> None:
        """Fix the row layout of the coming calls: a ``RowLayout``, a callable
        ``(rows, context) -> RowLayout``, or None for the default (cond rows, then uncond)."""
        self._layout_source = layout
        self._calls.clear()

    def set_masks(self, masks: torch.Tensor, *, hard: bool | None = None) -> None:
        """Use caller-given masks ``[images, K, h, w]`` (or ``[K, h, w]`` for all images) from
        now on instead of captured ones; ``hard`` (default: values are all 0/1) resizes them
        by nearest neighbour instead of bilinearly."""
        self.state.set_masks(masks, hard)

    def masks(self) -> torch.Tensor:
        """Current masks ``[images, K, h, w]`` on the common grid (zeros before the first)."""
        return self.state.current()

    # ----- hook installation ------------------------------------------------------------
    def _reset_run_state(self) -> None:
        """Forget what belongs to one sampling run (calls, stashes, caches), not the masks."""
        self.state.step = -1
        self._timestep: tuple[float, ...] | None = None
        self._calls = CallMasks(self.state)
        self._stash: dict[str, dict[str, torch.Tensor]] = {}
        self._emb: dict[str, tuple[tuple[int, ...], torch.Tensor]] = {}
        self._kv = BranchInputs()

    def _install(self, unet: torch.nn.Module) -> None:
        modules = dict(unet.named_modules())
        param = next(unet.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        if self._prepared_on != (id(unet), device, dtype):
            weights = [a.weight for a in self.adapters]
            self._prepared = {
                p: prepare(plan, weights, modules[p].weight.device, modules[p].weight.dtype)
                for p, plan in self._plans.items()
            }
            self._prepared_on = (id(unet), device, dtype)
        self._handles.append(unet.register_forward_pre_hook(self._on_unet_call, with_kwargs=True))
        attns = find_cross_attention(modules.items())
        kv_attns = {p.rsplit(".", 1)[0] for p, plan in self._plans.items() if plan.role == "kv"}
        for path, prep in self._prepared.items():
            if prep.plan.role == "spatial":
                self._handles.append(modules[path].register_forward_hook(self._spatial_hook(prep)))
            elif prep.plan.role == "emb":
                self._install_emb(modules, path, prep)
        capture = bool(self.adapters) and not self.state.frozen
        for path, attn in attns.items():
            branches = path in kv_attns
            if not (branches or capture):
                continue
            heads = head_count(attn, path)
            self._handles.append(
                attn.to_q.register_forward_hook(self._stash_hook(path, "q", heads, branches))
            )
            self._handles.append(
                attn.to_k.register_forward_hook(self._stash_hook(path, "k", heads, branches))
            )
            if branches:
                self._handles.append(
                    attn.to_v.register_forward_hook(self._stash_hook(path, "v", heads, branches))
                )
                out = modules.get(f"{path}.to_out.0") or modules.get(f"{path}.to_out")
                if out is None:
                    raise IntegratorError(
                        f"{path}: no to_out projection to blend attention branches in"
                    )
                preps = {r: self._prepared.get(f"{path}.to_{r}") for r in ("k", "v")}
                self._handles.append(
                    out.register_forward_pre_hook(self._branch_hook(path, heads, preps))
                )

    def _install_emb(self, modules: dict[str, torch.nn.Module], path: str, prep: Prepared) -> None:
        block = path.split(".emb_layers")[0]
        target = modules.get(f"{block}.out_layers")
        if target is None or getattr(modules.get(block), "use_scale_shift_norm", False):
            self.warnings.append(
                f"{path}: no plain out_layers after it; its delta is gated by the mean mask"
            )
            self._handles.append(modules[path].register_forward_hook(self._spatial_hook(prep)))
            return
        self._handles.append(modules[path].register_forward_hook(self._emb_hook(block, prep)))
        self._handles.append(target.register_forward_pre_hook(self._emb_add_hook(block)))

    # ----- per call and per step --------------------------------------------------------
    def _on_unet_call(self, module, args, kwargs):
        x = args[0] if args else kwargs["x"]
        timesteps = args[1] if len(args) > 1 else kwargs.get("timesteps")
        context = args[2] if len(args) > 2 else kwargs.get("context")
        latent = (int(x.shape[-2]), int(x.shape[-1]))
        self.state.set_latent(*latent)
        self._calls.set_call(latent, self._resolve_layout(int(x.shape[0]), context))
        if not self._manual_steps and timesteps is not None:
            key = tuple(float(t) for t in torch.as_tensor(timesteps).flatten()[:1])
            if key != self._timestep:
                self._timestep = key
                self.state.fold(self.state.step + 1)
        elif self.state.step < 0:
            self.state.fold(0)
        return None

    def _resolve_layout(self, rows: int, context: torch.Tensor | None) -> RowLayout:
        source = self._layout_source
        layout = source(rows, context) if callable(source) else source
        layout = layout or RowLayout.cond_then_uncond(rows, self.images)
        if len(layout.image) != rows or max(layout.image) >= self.images:
            raise IntegratorError(
                f"row layout {layout.image} does not fit a call of {rows} rows over {self.images} images"
            )
        return layout

    # ----- hooks ------------------------------------------------------------------------
    def _spatial_hook(self, prep: Prepared):
        def hook(module, args, output):
            x = args[0]
            conv = prep.plan.geometry is not None
            if conv:
                m, active = self._calls.level(tuple(output.shape[-2:]), output)
            elif x.dim() == 3:
                m, active = self._calls.for_tokens(x.shape[1], output)
            else:
                m, active = self._calls.level(None, output)
            if active.isdisjoint(prep.plan_index):
                return None
            y, gate = output, None
            if prep.lowrank is not None:
                groups = None
                if x.dim() > 2 and prep.pointwise:
                    groups = self._calls.groups(prep.lowrank_index, m)
                if groups is not None:
                    y = add_sparse(y, x, prep, groups)
                else:
                    gate = self._calls.gate(prep, m, conv, tuple(output.shape[-2:]))
            rest = spatial_delta(prep, x, m, gate)
            if rest is None:
                return y
            if y is output and torch.is_grad_enabled():
                return y + rest.to(y.dtype)
            return y.add_(rest.to(y.dtype))  # the module's own fresh output (or add_sparse's)

        return hook

    def _emb_hook(self, block: str, prep: Prepared):
        def hook(module, args, output):
            deltas = per_adapter_deltas(prep, args[0])
            index = tuple(sorted(deltas))
            self._emb[block] = (index, torch.stack([deltas[i] for i in index]))
            return None

        return hook

    def _emb_add_hook(self, block: str):
        def hook(module, args):
            pending = self._emb.pop(block, None)
            if pending is None:
                return None
            index, deltas = pending
            h = args[0]
            m, active = self._calls.level(tuple(h.shape[-2:]), h)
            if active.isdisjoint(index):
                return None
            gated = torch.einsum("bkn,kbc->bcn", m[:, list(index)], deltas.to(h.dtype)).view_as(h)
            return (h + gated, *args[1:])

        return hook

    def _stash_hook(self, path: str, role: str, heads: int, branches: bool):
        """Keep q/k(/v, context) of one attention call; capture once both q and k are seen
        (in either order); the branch pre-hook on ``to_out`` consumes the stash."""

        def hook(module, args, output):
            stash = self._stash.setdefault(path, {})
            stash[role] = output
            if role == "k":
                stash["context"] = args[0]
            if role in ("q", "k") and "q" in stash and "k" in stash and "seen" not in stash:
                stash["seen"] = output
                self._capture(stash["q"], stash["k"], heads)
                if not branches:
                    del self._stash[path]
            return None

        return hook

    def _capture(self, q: torch.Tensor, k: torch.Tensor, heads: int) -> None:
        """Recompute the probabilities of the cond rows of a wanted layer and hand them over."""
        layout, latent = self._calls.layout, self._calls.latent
        if not self.state.capturing() or layout is None or latent is None:
            return
        found = maskmath.level_of(q.shape[1], *latent)
        if found is None or not self.state.wants(found[0]):
            return
        rows = [r for r, flag in enumerate(layout.capture) if flag]
        if not rows:
            return
        with torch.no_grad():
            probs = attention_probs(q[rows].detach(), k[rows].detach(), heads)
            for j, r in enumerate(rows):
                self.state.add(layout.image[r], found[0], probs[j], found[1])

    def _branch_hook(self, path: str, heads: int, preps: dict[str, Prepared | None]):
        def hook(module, args):
            stash = self._stash.pop(path, {})
            base = args[0]
            if not {"q", "k", "v", "context"} <= stash.keys():
                if path not in self._unbranched:
                    self._unbranched.add(path)
                    self.warnings.append(
                        f"{path}: to_out ran without to_q/to_k/to_v calls; K/V deltas not applied"
                    )
                return None
            m, active = self._calls.for_tokens(base.shape[1], base)
            index = sorted({i for p in preps.values() if p is not None for i in p.plan_index})
            if active.isdisjoint(index):
                return None
            sel = m[:, index].transpose(1, 2)  # [B, N, K']
            q, k, v, context = stash["q"], stash["k"], stash["v"], stash["context"]
            groups = self._calls.groups(tuple(index), m)
            if groups is None:
                deltas = {
                    r: per_adapter_deltas(p, context) if p is not None else {}
                    for r, p in preps.items()
                }
                dk = [deltas["k"].get(i) for i in index]
                dv = [deltas["v"].get(i) for i in index]
                return (branch_blend(base, q, k, v, dk, dv, sel, heads), *args[1:])
            kk = self._kv.get(path, preps["k"], k, context, index)
            vv = self._kv.get(path, preps["v"], v, context, index)
            return (sparse_branches(base, q, kk, vv, sel, groups, heads), *args[1:])

        return hook
