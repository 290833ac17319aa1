"""Hostile files in the Lora folder (issue 12): decompression-bomb previews, symbolic links out of
the folder, 100 MB header values, terminal escapes in metadata. Each costs at most its own part
of one adapter, is said, and never reaches the catalog or the console raw."""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

from pixtention.curator import index_folder, open_library
from pixtention.curator.store import CATALOG_NAME
from pixtention.library import LibraryError, read_adapter
from pixtention.library.display import clean_text, terminal_safe
from pixtention.library.previews import PreviewError, open_preview
from tests.test_curator_fixtures import HashEmbedder, write_lora

SECRET = "PIXTENTION_TEST_TOKEN=hunter2"


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of ``width``×``height`` zero pixels: a few KB on disk, decoded it
    is ``width × height`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def small_png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(path)
    return path


# -- 1: decompression bombs cost their own caption, nothing else -------------------------------


def test_a_bomb_preview_is_refused_before_decoding(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png", 14000, 14000)  # over PIL's own error threshold
    assert bomb.stat().st_size < 200_000
    with pytest.raises(PreviewError, match="bomb.png"):
        open_preview(bomb)
    big = png_bomb(tmp_path / "big.png", 12000, 12000)  # under PIL's error, over our cap
    with pytest.raises(PreviewError, match="pixel cap"):
        open_preview(big)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    with pytest.raises(PreviewError, match="junk.png"):
        open_preview(tmp_path / "junk.png")
    image = open_preview(small_png(tmp_path / "ok.png"), side=16)
    assert image.mode == "RGB" and max(image.size) == 16


class _FakeProcessor:
    def __call__(self, images, return_tensors):
        import torch

        assert all(max(img.size) <= 512 for img in images)  # previews arrive shrunk
        return {"pixel_values": torch.zeros(len(images), 1)}

    def batch_decode(self, tokens, skip_special_tokens):
        return ["a red square"] * len(tokens)


class _FakeModel:
    def generate(self, pixel_values, max_new_tokens):
        return pixel_values


def test_the_captioner_skips_a_bomb_and_captions_the_rest(tmp_path):
    from pixtention.curator.captioner import TransformersCaptioner

    captioner = TransformersCaptioner("fake", batch_size=8)
    captioner._model, captioner._processor = _FakeModel(), _FakeProcessor()  # loaded
    bomb = png_bomb(tmp_path / "bomb.png", 14000, 14000)
    good = small_png(tmp_path / "good.png")
    assert captioner.caption([str(bomb), str(good)]) == ["", "a red square"]


class _BombSensitiveCaptioner:
    """A pluggable captioner that lets PIL's bomb error escape, as a careless one would."""

    id = "test-bomb-sensitive"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def caption(self, images):
        from PIL import Image

        self.calls.append(list(images))
        for path in images:
            with Image.open(path) as img:  # raises DecompressionBombError for the bomb
                img.size  # noqa: B018
        return [f"caption of {Path(p).stem}" for p in images]


def test_a_bomb_costs_its_adapter_the_caption_and_the_run_goes_on(tmp_path):
    folder = tmp_path / "Lora"
    for i, name in enumerate(("bomb", "fine1", "fine2")):
        write_lora(folder / f"{name}.safetensors", seed=i)
    png_bomb(folder / "bomb.preview.png", 14000, 14000)
    small_png(folder / "fine1.preview.png")
    small_png(folder / "fine2.preview.png")
    captioner = _BombSensitiveCaptioner()
    emb = HashEmbedder()
    report = index_folder(folder, tmp_path / "s", embedder=emb, captioner=captioner)
    assert report.adapters == 3 and report.captioned == 2
    assert any("bomb.preview.png" in m and "not captioned" in m for m in report.messages)
    lib = open_library(tmp_path / "s", embedder=emb)
    assert "caption of fine1" in lib.find("fine1").document
    assert "caption" not in lib.find("bomb").fields
    calls = len(captioner.calls)
    index_folder(folder, tmp_path / "s", embedder=emb, captioner=captioner)
    assert len(captioner.calls) == calls  # the bomb is not retried on every run


# -- 6: sidecars and previews never follow a link out of the Lora folder ----------------------


@pytest.fixture
def linked_library(tmp_path):
    folder = tmp_path / "Lora"
    path = write_lora(folder / "spy.safetensors", seed=3)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "secret.json").write_text(json.dumps({"description": SECRET}))
    small_png(outside / "private.png")
    (folder / "spy.txt").symlink_to(outside / "secret.txt")
    (folder / "spy.json").symlink_to(outside / "secret.json")
    (folder / "spy.preview.png").symlink_to(outside / "private.png")
    (folder / "spy.description.txt").symlink_to("/proc/self/environ")
    return folder, path


def test_sidecar_and_preview_links_out_of_the_folder_are_not_followed(linked_library):
    folder, path = linked_library
    info = read_adapter(path, folder)
    meta = info.metadata
    assert SECRET not in json.dumps([meta.description, meta.notes, meta.title, meta.tags])
    assert "PATH=" not in meta.description
    assert meta.previews == ()
    assert set(meta.skipped) == {"spy.txt", "spy.json", "spy.preview.png", "spy.description.txt"}
    assert sum("not followed" in w for w in info.warnings) == 4
    shown = read_adapter(path)  # `show FILE` without a root: the file's own folder bounds it
    assert SECRET not in shown.metadata.description and shown.metadata.previews == ()


def test_indexing_keeps_linked_secrets_out_of_the_catalog_and_says_so(linked_library, tmp_path):
    folder, _ = linked_library
    store = tmp_path / "s"
    report = index_folder(folder, store, captions=False, embedder=HashEmbedder())
    assert report.adapters == 1
    assert any("symbolic links out of the library folder" in m for m in report.messages)
    catalog = (store / CATALOG_NAME).read_bytes()
    wal = store / (CATALOG_NAME + "-wal")
    catalog += wal.read_bytes() if wal.exists() else b""
    assert b"hunter2" not in catalog and b"PATH=" not in catalog


def test_links_that_stay_inside_the_library_are_read(tmp_path):
    folder = tmp_path / "Lora"
    path = write_lora(folder / "styles" / "ink.safetensors", seed=4)
    (folder / "shared").mkdir()
    (folder / "shared" / "ink-notes.txt").write_text("Shared ink wash notes.")
    small_png(folder / "shared" / "ink.png")
    (folder / "styles" / "ink.txt").symlink_to(folder / "shared" / "ink-notes.txt")
    (folder / "styles" / "ink.preview.png").symlink_to(folder / "shared" / "ink.png")
    meta = read_adapter(path, folder).metadata
    assert meta.description == "Shared ink wash notes."
    assert [Path(p).name for p in meta.previews] == ["ink.preview.png"] and meta.skipped == ()


# -- 9: every stored text is bounded; the catalog holds UTF-8 ---------------------------------


def test_huge_header_values_do_not_reach_the_catalog(tmp_path):
    folder = tmp_path / "Lora"
    big = "word " * 400_000  # 2 MB per value
    tags = ",".join(f"tag{i}" for i in range(200_000))
    for i in range(3):
        write_lora(
            folder / f"huge{i}.safetensors",
            seed=i,
            metadata={
                "modelspec.title": big,
                "modelspec.description": big,
                "modelspec.tags": tags,
                "modelspec.trigger_phrase": tags,
                "ss_output_name": big,
                "ss_sd_model_name": big,
                "modelspec.architecture": big,
            },
        )
    store = tmp_path / "s"
    report = index_folder(folder, store, captions=False, embedder=HashEmbedder())
    assert report.adapters == 3 and not report.problems
    assert (store / CATALOG_NAME).stat().st_size < 1_000_000
    conn = sqlite3.connect(store / CATALOG_NAME)
    for title, info, record in conn.execute("SELECT title, info, record FROM adapters"):
        assert len(title) <= 200 and len(info) < 64_000 and len(record) < 64_000
    conn.close()


def test_catalog_text_is_utf8_not_escaped_and_odd_names_round_trip(tmp_path):
    folder = tmp_path / "Lora"
    write_lora(folder / "sumi.safetensors", seed=1, metadata={"modelspec.title": "水彩の風景"})
    odd = os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9.safetensors")
    write_lora(Path(odd), seed=2)
    store = tmp_path / "s"
    index_folder(folder, store, captions=False, embedder=HashEmbedder())
    conn = sqlite3.connect(store / CATALOG_NAME)
    infos = [info for (info,) in conn.execute("SELECT info FROM adapters")]
    conn.close()
    assert any("水彩の風景" in info for info in infos)
    assert not any("\\u6c34" in info for info in infos)
    lib = open_library(store)
    assert {r.path for r in lib.records} == {str(folder / "sumi.safetensors"), odd}
    assert lib.find("sumi").title == "水彩の風景"


# -- 11: text from files is display-safe ------------------------------------------------------


def test_terminal_safe_shows_every_control_as_an_escape():
    nasty = "a\x1b]0;owned\x07b\nok  forged\r\u202eevil\udcff"
    safe = terminal_safe(nasty)
    assert "\n" not in safe and "\x1b" not in safe and "\r" not in safe and "\u202e" not in safe
    assert safe == "a\\x1b]0;owned\\x07b\\nok  forged\\r\\u202eevil\\xff"
    assert terminal_safe("line one\nline\x1b two", keep_newlines=True) == (
        "line one\nline\\x1b two"
    )
    assert clean_text("ti\x1b[2Jtle\tx\u202e") == "ti[2Jtle x"


def test_metadata_and_errors_carry_display_safe_text(tmp_path):
    path = write_lora(
        tmp_path / "plain.safetensors",
        seed=1,
        metadata={
            "modelspec.title": "Evil\x1b]0;owned\x07 Title\x1b[2J",
            "modelspec.description": "line\x1b[31m red\nnext line",
            "modelspec.tags": "a\x1b[1mtag, \u202eflipped",
            "modelspec.trigger_phrase": "tr\x07igger",
        },
    )
    info = read_adapter(path, tmp_path)
    meta = info.metadata
    texts = [meta.title, meta.description, *meta.tags, *meta.triggers, *info.warnings]
    assert not any(ch in text for text in texts for ch in "\x1b\x07\u202e\r")
    assert meta.title == "Evil]0;owned Title[2J"
    assert meta.description == "line[31m red\nnext line"
    bad = tmp_path / "bad\x1b[31m\nok name.safetensors"
    bad.write_bytes(b"")
    with pytest.raises(LibraryError) as caught:
        read_adapter(bad)
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.path == str(bad)  # the exact path is kept for code
