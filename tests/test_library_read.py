"""Reading safetensors headers, fingerprints, hashes and whole adapters (pixtention.library)."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pixtention.library import (
    LibraryError,
    TensorInfo,
    file_hashes,
    read_adapter,
    read_header,
)
from tests.rig import factory

SD1_BLOCKS = ("down_blocks_0_attentions_0", "mid_block_attentions_0", "up_blocks_3_attentions_2")


def kohya_tensors(width: int = 768, rank: int = 4, alpha: float = 2.0) -> dict[str, torch.Tensor]:
    """A small kohya-style LoRA (diffusers-style SD1 key names) with cross-attention width."""
    generator = torch.Generator().manual_seed(rank)
    tensors = {}
    for block in SD1_BLOCKS:
        for module, fan_in in (("attn2_to_k", width), ("attn2_to_v", width), ("attn1_to_q", 320)):
            stem = f"lora_unet_{block}_transformer_blocks_0_{module}"
            tensors[f"{stem}.lora_down.weight"] = torch.randn(rank, fan_in, generator=generator)
            tensors[f"{stem}.lora_up.weight"] = torch.randn(320, rank, generator=generator)
            tensors[f"{stem}.alpha"] = torch.tensor(alpha)
    return tensors


def write_lora(path: Path, metadata: dict[str, str] | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(kohya_tensors(**kwargs), str(path), metadata=metadata)
    return path


def header_bytes(path: Path) -> bytes:
    """The JSON header as the safetensors format defines it (independent of the reader)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + length]


# -- read_header ---------------------------------------------------------------------------


def test_header_metadata_shapes_and_dtypes_match_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "style.safetensors"
    tensors = kohya_tensors()
    tensors["lora_unet_conv_in.lora_down.weight"] = torch.zeros(4, 4, 3, 3, dtype=torch.float16)
    save_file(tensors, str(path), metadata={"ss_output_name": "style", "note": "é ✓"})
    file = read_header(path)
    assert file.metadata == {"ss_output_name": "style", "note": "é ✓"}
    assert set(file.tensors) == set(tensors)
    expected_dtype = {torch.float32: "F32", torch.float16: "F16"}
    for name, tensor in tensors.items():
        assert file.tensors[name] == TensorInfo(expected_dtype[tensor.dtype], tuple(tensor.shape))
    assert file.size == path.stat().st_size
    assert file.mtime == path.stat().st_mtime


def test_fingerprint_is_size_and_header_digest_and_survives_moves(tmp_path: Path) -> None:
    path = write_lora(tmp_path / "a.safetensors", {"ss_session_id": "1"})
    digest = hashlib.sha256(header_bytes(path)).hexdigest()[:32]
    first = read_header(path)
    assert first.fingerprint == f"{path.stat().st_size}:{digest}"
    moved = tmp_path / "deeper" / "renamed.safetensors"
    moved.parent.mkdir()
    path.rename(moved)
    assert read_header(moved).fingerprint == first.fingerprint
    write_lora(tmp_path / "b.safetensors", {"ss_session_id": "2"})
    assert read_header(tmp_path / "b.safetensors").fingerprint != first.fingerprint


class _Tripwire:
    """Unpickling this would create a file; its absence proves nothing was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".bin", ".pth", ".PT"])
def test_pickles_are_refused_without_unpickling(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / f"old{suffix}"
    path.write_bytes(pickle.dumps(_Tripwire(str(marker))))
    with pytest.raises(LibraryError) as caught:
        read_header(path)
    assert caught.value.reason == "unsupported format (pickle) — convert it to .safetensors"
    with pytest.raises(LibraryError):
        read_adapter(path)
    assert not marker.exists()


def test_pickle_renamed_to_safetensors_is_named_as_such(tmp_path: Path) -> None:
    zipped = tmp_path / "zip.safetensors"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=2) + b"\0" * 16)
    assert "zip archive" in _reason(zipped)
    assert "pickle" in _reason(raw)


def _reason(path: Path) -> str:
    with pytest.raises(LibraryError) as caught:
        read_header(path)
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    assert "\n" not in str(caught.value)
    return caught.value.reason


def test_truncated_files_are_one_line_errors(tmp_path: Path) -> None:
    good = write_lora(tmp_path / "good.safetensors").read_bytes()
    length = struct.unpack("<Q", good[:8])[0]
    cases = {
        "empty": b"",
        "short": good[:5],
        "header": good[: 8 + length // 2],
        "data": good[:-10],
    }
    reasons = {}
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        reasons[name] = _reason(path)
    assert reasons["empty"] == "empty file"
    assert reasons["short"].startswith("truncated")
    assert reasons["header"].startswith("truncated: header claims")
    assert reasons["data"].startswith("truncated: tensor data is incomplete")


def test_huge_header_claim_is_rejected_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "liar.safetensors"
    path.write_bytes(struct.pack("<Q", 10 * 1024**3) + b'{"a":' + b" " * 100)
    tracemalloc.start()
    try:
        reason = _reason(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "exceeds the 100 MB cap" in reason
    assert peak < 1024 * 1024


def test_header_just_over_the_cap_is_refused_even_when_the_file_is_that_long(
    tmp_path: Path,
) -> None:
    from pixtention.library.safetensors_file import HEADER_CAP

    path = tmp_path / "big.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", HEADER_CAP + 1))
        handle.truncate(8 + HEADER_CAP + 1)  # sparse: the size is real, no data is written
    assert "cap" in _reason(path)


@pytest.mark.parametrize(
    "header",
    [
        b"not json at all",
        b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}',  # unclosed
        b'{"a": {"dtype": "X99", "shape": [1], "data_offsets": [0, 4]}}',  # unknown dtype
        b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 4]}}',  # size mismatch
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
        b' "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}',  # overlap
        b'{"__metadata__": {"k": 3}}',  # non-string metadata value
    ],
)
def test_corrupt_headers_become_library_errors(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    assert _reason(path)


def test_directories_fifos_and_missing_files(tmp_path: Path) -> None:
    folder = tmp_path / "dir.safetensors"
    folder.mkdir()
    assert _reason(folder) == "is a directory, not a file"
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    assert _reason(fifo) == "not a regular file"  # and it did not block
    assert _reason(tmp_path / "missing.safetensors") == "file not found"
    dangling = tmp_path / "dangling.safetensors"
    dangling.symlink_to(tmp_path / "nowhere")
    assert _reason(dangling) == "broken symlink"


# -- hashes --------------------------------------------------------------------------------


def test_hashes_match_an_independent_computation_at_any_chunk_size(tmp_path: Path) -> None:
    path = write_lora(tmp_path / "h.safetensors", {"ss_output_name": "h"})
    data = path.read_bytes()
    region = data[8 + struct.unpack("<Q", data[:8])[0] :]
    full = hashlib.sha256(data).hexdigest()
    calls: list[tuple[int, int]] = []
    for chunk in (7, 4096, 1 << 20):
        hashes = file_hashes(path, chunk_size=chunk, progress=lambda d, t: calls.append((d, t)))
        assert hashes.sha256 == full
        assert hashes.autov2 == full[:10].upper()
        assert hashes.autov3 == hashlib.sha256(region).hexdigest()[:12].upper()
    assert calls[-1] == (len(data), len(data))


def test_kohya_sshs_model_hash_is_the_tensor_region_digest_and_is_reused(tmp_path: Path) -> None:
    plain = write_lora(tmp_path / "plain.safetensors", {"ss_output_name": "x"})
    computed = file_hashes(plain)
    # kohya hashes the tensor region; the same tensors saved with more metadata keep it.
    region_digest = hashlib.sha256(plain.read_bytes()[8 + len(header_bytes(plain)) :]).hexdigest()
    tagged = write_lora(tmp_path / "tagged.safetensors", {"sshs_model_hash": region_digest})
    assert file_hashes(tagged).autov3 == computed.autov3
    stored = "ab" * 32
    other = write_lora(tmp_path / "other.safetensors", {"modelspec.hash_sha256": "0x" + stored})
    reused = file_hashes(other, read_header(other).metadata)
    assert reused.autov3 == stored[:12].upper()
    assert reused.sha256 == hashlib.sha256(other.read_bytes()).hexdigest()


# -- read_adapter --------------------------------------------------------------------------


def test_read_adapter_reports_layout_alpha_base_model_and_no_hashes_by_default(
    tmp_path: Path,
) -> None:
    path = write_lora(tmp_path / "Styles" / "ink.safetensors", {"ss_output_name": "ink"}, rank=8)
    info = read_adapter(path, tmp_path)
    assert info.layout.kind == "lora"
    assert info.layout.rank == 8
    assert info.layout.alpha == 2.0
    assert len(info.layout.unet_modules) == 9
    assert info.base_model.family == "sd1"
    assert "768" in info.base_model.evidence
    assert info.metadata.folders == ("Styles",)
    assert info.hashes is None
    assert read_adapter(path, with_hashes=True).hashes == file_hashes(path)


def test_file_names_that_are_not_utf8_are_read(tmp_path: Path) -> None:
    source = write_lora(tmp_path / "plain.safetensors")
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9 \xff.safetensors")
    os.rename(source, odd)
    info = read_adapter(os.fsdecode(odd), with_hashes=True)  # as os.listdir hands it over
    assert info.layout.alpha == 2.0 and info.base_model.family == "sd1"
    assert info.metadata.name == os.fsdecode(b"caf\xe9 \xff")  # the identifier stays exact
    assert info.metadata.title == "caf\ufffd \ufffd"  # text for people and tokenizers
    info.metadata.title.encode("utf-8")
    assert (
        info.hashes is not None
        and info.hashes.sha256 == hashlib.sha256(Path(os.fsdecode(odd)).read_bytes()).hexdigest()
    )


def test_full_checkpoints_and_empty_files_are_not_adapters(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.safetensors"
    save_file({"model.diffusion_model.out.2.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(LibraryError, match="not a LoRA/LyCORIS adapter"):
        read_adapter(path)
    empty = tmp_path / "nothing.safetensors"
    save_file({}, str(empty))
    with pytest.raises(LibraryError, match="none of its 0 tensors"):
        read_adapter(empty)


def test_unrecognised_tensors_are_reported_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "extra.safetensors"
    tensors = kohya_tensors()
    tensors["some_embedding.weird"] = torch.zeros(3)
    save_file(tensors, str(path))
    info = read_adapter(path)
    assert info.layout.unrecognised == ("some_embedding.weird",)
    assert any("1 tensor(s) match no known adapter layout" in w for w in info.warnings)


def test_non_finite_alpha_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "nan.safetensors"
    tensors = kohya_tensors()
    for name in tensors:
        if name.endswith(".alpha"):
            tensors[name] = torch.tensor(float("nan"))
    save_file(tensors, str(path))
    info = read_adapter(path)
    assert info.layout.alpha is None
    assert any("alpha" in w for w in info.warnings)


# -- files from the shared factory ----------------------------------------------------------


@pytest.mark.parametrize("kind", factory.KINDS)
def test_every_adapter_kind_reads_with_its_kind_and_base_model(tmp_path: Path, kind: str) -> None:
    naming = "peft" if kind == "peft" else "kohya"
    select = "all" if kind == "locon" else "cross_kv"  # LoCon needs k×k convolutions
    modules = factory.sd15_targets(
        model_channels=320, context_dim=768, select=select, naming=naming
    )
    path = factory.write_lora(tmp_path / f"{kind}.safetensors", kind=kind, modules=modules)
    info = read_adapter(path)
    assert info.layout.kind == kind
    assert len(info.layout.unet_modules) == len(modules)
    assert info.base_model.family == "sd1"
    if kind == "ia3":  # no input-side factor: the family comes from the ss_* header
        assert "ss_base_model_version" in info.base_model.evidence
    else:
        assert "context width 768" in info.base_model.evidence
    assert info.warnings == ()


def test_factory_sshs_model_hash_agrees_with_our_tensor_region_hash(tmp_path: Path) -> None:
    path = factory.write_lora(tmp_path / "hashed.safetensors")
    stored = read_header(path).metadata["sshs_model_hash"]
    computed = file_hashes(path)  # no metadata given: the tensor region is hashed
    assert computed.autov3 == stored[:12].upper()
