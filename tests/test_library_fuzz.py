"""Property tests: whatever bytes are on disk, the reader returns a valid result or raises
``LibraryError`` — never another exception, never a hang, never a read past the header cap."""

from __future__ import annotations

import json
import re
import struct
import tracemalloc
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from pixtention.library import AdapterFile, AdapterInfo, LibraryError, read_adapter, read_header

FUZZ = settings(
    max_examples=150,
    deadline=3000,  # ms per example: a hang fails the test instead of stalling the suite
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
DTYPES = ["F32", "F16", "BF16", "F64", "I8", "U8", "I64", "BOOL", "F8_E4M3", "X7", "", "f32"]


def _valid_file() -> bytes:
    stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    tensors = {
        f"{stem}.lora_down.weight": torch.ones(2, 768),
        f"{stem}.lora_up.weight": torch.ones(320, 2),
        f"{stem}.alpha": torch.tensor(1.0),
    }
    return save(tensors, metadata={"ss_output_name": "fuzz", "ss_tag_frequency": "{}"})


VALID = _valid_file()
HEADER_END = 8 + struct.unpack("<Q", VALID[:8])[0]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "target.safetensors"


def _check(path: Path, data: bytes) -> AdapterFile | None:
    """Write ``data`` and read it; the only allowed failure is LibraryError (one line)."""
    path.write_bytes(data)
    try:
        file = read_header(path)
    except LibraryError as exc:
        assert exc.path == str(path)
        assert exc.reason and "\n" not in str(exc)
        return None
    assert re.fullmatch(rf"{len(data)}:[0-9a-f]{{32}}", file.fingerprint)
    for name, info in file.tensors.items():
        assert isinstance(name, str)
        assert all(isinstance(n, int) and n >= 0 for n in info.shape)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in file.metadata.items())
    return file


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(target: Path, data: bytes) -> None:
    _check(target, data)


@FUZZ
@given(cut=st.integers(0, len(VALID)))
def test_truncations_of_a_valid_file(target: Path, cut: int) -> None:
    result = _check(target, VALID[:cut])
    assert (result is not None) == (cut == len(VALID))


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, HEADER_END - 1), st.integers(0, 255)), min_size=1, max_size=8
    )
)
def test_mutated_headers(target: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for index, value in flips:
        data[index] = value
    _check(target, bytes(data))


tensor_entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(DTYPES),
        "shape": st.lists(st.integers(-2, 2**40), max_size=4),
        "data_offsets": st.lists(st.integers(-(2**63), 2**64), min_size=0, max_size=3),
    }
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@FUZZ
@given(
    entries=st.dictionaries(st.text(max_size=30), tensor_entries | json_values, max_size=6),
    metadata=st.one_of(
        st.none(), json_values, st.dictionaries(st.text(max_size=10), st.text(max_size=10))
    ),
    body=st.integers(0, 512),
)
def test_generated_headers(target: Path, entries: dict, metadata: object, body: int) -> None:
    if metadata is not None:
        entries = {**entries, "__metadata__": metadata}
    header = json.dumps(entries).encode()
    _check(target, struct.pack("<Q", len(header)) + header + b"\0" * body)


@FUZZ
@given(length=st.integers(0, 2**64 - 1), body=st.binary(max_size=64))
def test_length_field_never_makes_the_reader_allocate_it(
    target: Path, length: int, body: bytes
) -> None:
    tracemalloc.start()
    try:
        _check(target, struct.pack("<Q", length) + body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024


@FUZZ
@given(
    values=st.dictionaries(
        st.sampled_from(
            [
                "ss_tag_frequency",
                "ss_output_name",
                "ss_base_model_version",
                "modelspec.title",
                "modelspec.tags",
                "modelspec.usage_hint",
                "modelspec.thumbnail",
                "ssmd_cover_images",
                "sshs_model_hash",
            ]
        ),
        st.text(max_size=200) | json_values.map(json.dumps),
    ),
    sidecar=st.binary(max_size=600) | json_values.map(lambda v: json.dumps(v).encode()),
    suffix=st.sampled_from([".json", ".civitai.info", ".api_info.json", ".metadata.json", ".txt"]),
)
def test_read_adapter_with_hostile_metadata_and_sidecars(
    target: Path, values: dict[str, str], sidecar: bytes, suffix: str
) -> None:
    stem = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_v"
    tensors = {
        f"{stem}.lora_down.weight": torch.ones(2, 1024),
        f"{stem}.lora_up.weight": torch.ones(1280, 2),
    }
    target.write_bytes(save(tensors, metadata=values))
    for old in target.parent.glob("target.*"):
        if old != target:
            old.unlink()
    target.with_name("target" + suffix).write_bytes(sidecar)
    info = read_adapter(target, target.parent, with_hashes=True)
    assert isinstance(info, AdapterInfo)
    assert info.base_model.family == "sd2"
    assert info.metadata.name == "target"
    json.dumps(info.metadata.civitai)  # stays serialisable for the catalog and --json
