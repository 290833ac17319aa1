"""Adapter files → factors: each kind checked against formulas computed independently in numpy."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pixtention.library.errors import LibraryError
from pixtention.library.factors import Dense, LowRank
from pixtention.library.weights import delta_weight, load_weights, low_rank_weight
from tests.rig.factory import sd15_targets, sd15_text_encoder_targets, write_lora

LINEAR = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
CONV = "lora_unet_down_blocks_1_resnets_0_conv1"
TARGETS = {LINEAR: (32, 48), CONV: (64, 32, 3, 3)}


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def _raw(path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}


def _base(shape, seed=3) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _close(ours: torch.Tensor, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    np.testing.assert_allclose(_np(ours), reference, atol=1e-5, rtol=1e-5)


def test_lora_linear_and_conv(tmp_path):
    path = write_lora(tmp_path / "a.safetensors", kind="lora", modules=TARGETS, rank=4, alpha=2)
    raw = _raw(path)
    weights = load_weights(path)
    assert (weights.kind, weights.rank) == ("locon", 4)  # a 3×3 conv target makes it LoCon
    lin = weights.unet[LINEAR]
    assert isinstance(lin.factors, LowRank) and not lin.is_dense
    assert lin.factors.scale == 0.5
    ref = 0.5 * raw[f"{LINEAR}.lora_up.weight"] @ raw[f"{LINEAR}.lora_down.weight"]
    _close(delta_weight(lin, _base((32, 48))), ref)
    up = raw[f"{CONV}.lora_up.weight"].reshape(64, 4)
    down = raw[f"{CONV}.lora_down.weight"].reshape(4, -1)
    _close(
        delta_weight(weights.unet[CONV], _base((64, 32, 3, 3))),
        0.5 * (up @ down).reshape(64, 32, 3, 3),
    )


def test_tucker_locon_equals_its_conv_chain(tmp_path):
    """ΔW from the CP rebuild must act like down (1×1) → mid (k×k) → up (1×1) convolutions."""
    path = write_lora(
        tmp_path / "t.safetensors",
        kind="locon",
        modules={CONV: (64, 32, 3, 3)},
        tucker=True,
        alpha=None,
        dtype=torch.float32,
    )
    factors = load_weights(path).unet[CONV].factors
    assert isinstance(factors, LowRank) and factors.mid is not None and factors.scale == 1.0
    x = _base((1, 32, 9, 9), seed=5)
    chain = F.conv2d(F.conv2d(F.conv2d(x, factors.down), factors.mid, padding=1), factors.up)
    merged = F.conv2d(x, low_rank_weight(factors), padding=1)
    torch.testing.assert_close(merged, chain, atol=1e-5, rtol=1e-4)


def test_loha_hadamard(tmp_path):
    path = write_lora(tmp_path / "h.safetensors", kind="loha", modules=TARGETS, rank=3, alpha=1.5)
    raw = _raw(path)
    weights = load_weights(path)
    assert (weights.kind, weights.rank) == ("loha", 3)
    for stem, shape in TARGETS.items():
        delta = weights.unet[stem]
        assert isinstance(delta.factors, Dense) and delta.factors.rank == 3
        w1 = raw[f"{stem}.hada_w1_a"] @ raw[f"{stem}.hada_w1_b"]
        w2 = raw[f"{stem}.hada_w2_a"] @ raw[f"{stem}.hada_w2_b"]
        _close(delta_weight(delta, _base(shape)), (0.5 * w1 * w2).reshape(shape))


def test_loha_tucker(tmp_path):
    path = write_lora(
        tmp_path / "ht.safetensors",
        kind="loha",
        modules={CONV: (64, 32, 3, 3)},
        rank=2,
        alpha=1,
        tucker=True,
    )
    raw = _raw(path)
    halves = []
    for i in (1, 2):
        t, a, b = raw[f"{CONV}.hada_t{i}"], raw[f"{CONV}.hada_w{i}_a"], raw[f"{CONV}.hada_w{i}_b"]
        halves.append(np.einsum("ijkl,ip,jr->prkl", t, a, b))
    reference = 0.5 * halves[0] * halves[1]
    _close(delta_weight(load_weights(path).unet[CONV], _base((64, 32, 3, 3))), reference)


def _lokr_file(tmp_path, tensors):
    path = tmp_path / "k.safetensors"
    save_file(tensors, str(path))
    return path


def test_lokr_kronecker_with_factored_halves(tmp_path):
    g = torch.Generator().manual_seed(0)
    t = {
        f"{LINEAR}.lokr_w1_a": torch.randn(4, 2, generator=g),
        f"{LINEAR}.lokr_w1_b": torch.randn(2, 6, generator=g),
        f"{LINEAR}.lokr_w2_a": torch.randn(8, 2, generator=g),
        f"{LINEAR}.lokr_w2_b": torch.randn(2, 8, generator=g),
        f"{LINEAR}.alpha": torch.tensor(1.0),
    }
    weights = load_weights(_lokr_file(tmp_path, t))
    assert (weights.kind, weights.rank) == ("lokr", 2)
    n = {k.split(".")[1]: _np(v) for k, v in t.items()}
    reference = 0.5 * np.kron(n["lokr_w1_a"] @ n["lokr_w1_b"], n["lokr_w2_a"] @ n["lokr_w2_b"])
    _close(delta_weight(weights.unet[LINEAR], _base((32, 48))), reference)


def test_lokr_conv_from_factory(tmp_path):
    path = write_lora(
        tmp_path / "kc.safetensors", kind="lokr", modules={CONV: (64, 32, 3, 3)}, rank=2, alpha=1
    )
    raw = _raw(path)
    w1 = raw[f"{CONV}.lokr_w1"]  # (a, c)
    w2 = (raw[f"{CONV}.lokr_w2_a"] @ raw[f"{CONV}.lokr_w2_b"].reshape(2, -1)).reshape(8, 4, 3, 3)
    reference = np.kron(w1[:, :, None, None], w2) * 0.5
    _close(delta_weight(load_weights(path).unet[CONV], _base((64, 32, 3, 3))), reference)


@pytest.mark.parametrize("on_input", [False, True])
def test_ia3_scales_rows_or_columns(tmp_path, on_input):
    vector = torch.linspace(-1, 1, 48 if on_input else 32)
    save_file(
        {f"{LINEAR}.weight": vector, f"{LINEAR}.on_input": torch.tensor(int(on_input))},
        str(tmp_path / "i.safetensors"),
    )
    weights = load_weights(tmp_path / "i.safetensors")
    base = _base((32, 48))
    v = _np(vector)
    reference = _np(base) * (v[None, :] if on_input else v[:, None])
    _close(delta_weight(weights.unet[LINEAR], base), reference)
    with pytest.raises(ValueError, match="does not fit"):
        delta_weight(weights.unet[LINEAR], _base((33, 49)))


def test_full_diff_with_bias(tmp_path):
    path = write_lora(tmp_path / "f.safetensors", kind="full", modules=TARGETS)
    raw = _raw(path)
    delta = load_weights(path).unet[CONV]
    _close(delta_weight(delta, _base((64, 32, 3, 3))), raw[f"{CONV}.diff"])
    np.testing.assert_allclose(_np(delta.factors.bias), raw[f"{CONV}.diff_b"])


def _dora_reference(base, low_rank, magnitude, rows):
    merged = base + low_rank
    if rows:
        norm = np.linalg.norm(merged.reshape(merged.shape[0], -1), axis=1).reshape(
            -1, *[1] * (merged.ndim - 1)
        )
    else:
        norm = np.linalg.norm(np.swapaxes(merged, 0, 1).reshape(merged.shape[1], -1), axis=1)
        norm = norm.reshape(1, -1, *[1] * (merged.ndim - 2))
    return magnitude.reshape(norm.shape) * merged / norm - base


@pytest.mark.parametrize("rows", [True, False])
def test_dora_rows_and_columns(tmp_path, rows):
    g = torch.Generator().manual_seed(2)
    down, up = torch.randn(2, 48, generator=g), torch.randn(32, 2, generator=g)
    magnitude = (
        torch.rand(32, 1, generator=g) + 0.5 if rows else torch.rand(1, 48, generator=g) + 0.5
    )
    tensors = {
        f"{LINEAR}.lora_down.weight": down,
        f"{LINEAR}.lora_up.weight": up,
        f"{LINEAR}.alpha": torch.tensor(1.0),
        f"{LINEAR}.dora_scale": magnitude,
    }
    save_file(tensors, str(tmp_path / "d.safetensors"))
    weights = load_weights(tmp_path / "d.safetensors")
    assert weights.kind == "dora"
    delta = weights.unet[LINEAR]
    assert delta.is_dense and delta.factors.rank == 2
    base = _base((32, 48))
    reference = _dora_reference(_np(base), 0.5 * _np(up) @ _np(down), _np(magnitude), rows)
    _close(delta_weight(delta, base), reference)


def test_peft_names_and_text_encoder(tmp_path):
    te = {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj": (768, 768)}
    modules = sd15_targets(select="cross_kv", naming="base_model")
    path = write_lora(
        tmp_path / "p.safetensors", kind="peft", modules=modules, text_encoder=te, alpha=None
    )
    weights = load_weights(path)
    assert weights.kind == "peft" and set(weights.unet) == set(modules)
    assert list(weights.text_encoder) == list(te)
    assert all(d.factors.scale == 1.0 for d in weights.unet.values())


def test_peft_adapter_names_and_diffusers_lora_down(tmp_path):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 48, generator=g), torch.randn(32, 4, generator=g)
    stem1 = "base_model.model.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    stem2 = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v"
    save_file(
        {
            f"{stem1}.lora_A.default.weight": a,
            f"{stem1}.lora_B.default.weight": b,
            f"{stem2}.lora.down.weight": a.clone(),
            f"{stem2}.lora.up.weight": b.clone(),
        },
        str(tmp_path / "p.safetensors"),
    )
    weights = load_weights(tmp_path / "p.safetensors")
    for stem in (stem1, stem2):
        _close(delta_weight(weights.unet[stem], _base((32, 48))), _np(b) @ _np(a))


def test_text_encoder_stems_are_kept_apart(tmp_path):
    path = write_lora(tmp_path / "te.safetensors", text_encoder=sd15_text_encoder_targets(3))
    weights = load_weights(path)
    assert len(weights.text_encoder) == 3
    assert all(stem.startswith("lora_te_") for stem in weights.text_encoder)
    assert not any(stem.startswith("lora_te") for stem in weights.unet)


def test_alpha_zero_or_missing_means_scale_one(tmp_path):
    for alpha in (None, 0.0):
        path = write_lora(
            tmp_path / f"a{alpha}.safetensors", modules={LINEAR: (32, 48)}, alpha=alpha
        )
        assert load_weights(path).unet[LINEAR].factors.scale == 1.0


def test_dtype_and_unrecognised(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", modules={LINEAR: (32, 48)}, dtype=torch.float32)
    tensors = {**_torch_tensors(path), "bundle_emb.sks.string_to_param.*": torch.zeros(1, 768)}
    save_file(tensors, str(tmp_path / "y.safetensors"))
    weights = load_weights(tmp_path / "y.safetensors", dtype=torch.float16)
    assert weights.unet[LINEAR].factors.down.dtype == torch.float16
    assert weights.unrecognised == ("bundle_emb.sks.string_to_param.*",)


def _torch_tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _bad(tmp_path, tensors) -> str:
    from safetensors.numpy import save_file as save_numpy  # no shared-storage check (0-size)

    path = tmp_path / "bad.safetensors"
    save_numpy({name: t.numpy() for name, t in tensors.items()}, str(path))
    with pytest.raises(LibraryError) as info:
        load_weights(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return info.value.reason


def test_refuses_rank_zero_nan_inf_and_bad_shapes(tmp_path):
    ok_down, ok_up = torch.zeros(4, 48), torch.zeros(32, 4)
    assert "rank-0" in _bad(
        tmp_path,
        {
            f"{LINEAR}.lora_down.weight": torch.zeros(0, 48),
            f"{LINEAR}.lora_up.weight": torch.zeros(32, 0),
        },
    )
    nan = ok_down.clone()
    nan[0, 0] = float("nan")
    assert "NaN" in _bad(
        tmp_path, {f"{LINEAR}.lora_down.weight": nan, f"{LINEAR}.lora_up.weight": ok_up}
    )
    inf = ok_up.clone()
    inf[1, 1] = float("inf")
    assert "infinite" in _bad(
        tmp_path, {f"{LINEAR}.lora_down.weight": ok_down, f"{LINEAR}.lora_up.weight": inf}
    )
    assert "inconsistent" in _bad(
        tmp_path,
        {f"{LINEAR}.lora_down.weight": ok_down, f"{LINEAR}.lora_up.weight": torch.zeros(32, 3)},
    )
    assert "inconsistent" in _bad(
        tmp_path,
        {
            f"{LINEAR}.hada_w1_a": torch.zeros(32, 2),
            f"{LINEAR}.hada_w1_b": torch.zeros(3, 48),
            f"{LINEAR}.hada_w2_a": torch.zeros(32, 2),
            f"{LINEAR}.hada_w2_b": torch.zeros(2, 48),
        },
    )
    assert "no adapter tensors" in _bad(tmp_path, {"emb_params": torch.zeros(2, 768)})


def test_refuses_pickle_and_truncated_files(tmp_path):
    pickle_path = tmp_path / "old.pt"
    torch.save({"x": torch.zeros(1)}, pickle_path)
    with pytest.raises(LibraryError, match="pickle"):
        load_weights(pickle_path)
    good = write_lora(tmp_path / "good.safetensors")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(LibraryError):
        load_weights(truncated)


def test_loads_files_whose_names_are_not_utf8(tmp_path):
    good = write_lora(tmp_path / "a.safetensors", kind="lora", modules=TARGETS, rank=4, alpha=2)
    odd = tmp_path / os.fsdecode(b"caf\xe9.safetensors")  # Latin-1 byte, not valid UTF-8
    os.rename(good, odd)
    weights = load_weights(odd)
    assert weights.unet[LINEAR].factors.rank == 4
