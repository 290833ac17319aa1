"""The library's vocabulary vectors: same vectors and picks, built once, kept safely on disk."""

from __future__ import annotations

import errno
import logging
import zlib

import numpy as np
import pytest

from pixtention.curator import library as library_module
from pixtention.curator.adapter_rows import adapter_record
from pixtention.curator.documents import build_document
from pixtention.curator.embedder import TransformersEmbedder
from pixtention.curator.library import Library
from pixtention.library.info import AdapterFile, AdapterInfo, AdapterMetadata, BaseModel, Layout
from pixtention.selector import vocabulary
from pixtention.selector.query import QUERY_CACHE
from pixtention.selector.select import select
from tests.webui_support import tiny_library  # noqa: F401 (fixture)

# name, tags, triggers
THEMES = [
    ("watercolor", ("style", "watercolor", "painting", "long hair"), ("watercolor painting",)),
    ("pixel_art", ("style", "pixel art", "8-bit", "retro game"), ("pixel art",)),
    ("neon_city", ("background", "cyberpunk", "neon lights", "city"), ("neoncity",)),
    ("red_dragon", ("creature", "dragon", "wings", "long hair"), ("reddrgn", "red dragon")),
    ("knight", ("clothing", "armor", "(knight:1.2)", "plate armor"), ("knightarmor",)),
    ("autumn", ("background", "autumn", "forest", "trees"), ("autumn forest",)),
    ("goggles", ("object", "steampunk", "goggles", "brass"), ("stmpnk goggles",)),
]


def _record(name: str, tags: tuple[str, ...], triggers: tuple[str, ...]):
    file = AdapterFile(f"/loras/{name}.safetensors", 100, 0.0, f"100:{name}", {}, {})
    meta = AdapterMetadata(name=name, title=name.replace("_", " ").title(), triggers=triggers,
                           tags=tags, description=f"A LoRA for {name}.")  # fmt: skip
    info = AdapterInfo(file, Layout("lora", 4, None, (), (), ()), BaseModel("sd1"), meta)
    return adapter_record(info, build_document(info))


class HashEmbedder:
    """A cheap stand-in: a fixed unit vector per text; counts the texts it embeds."""

    id = "hash-embedder"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts) -> np.ndarray:
        self.texts += list(texts)
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=8) for t in texts]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), 8)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _library(embedder, themes=THEMES, store=None) -> Library:
    records = [_record(*theme) for theme in themes]
    vectors = embedder.embed([r.document for r in records])
    library = Library.from_records(records, vectors, embedder, k=2)
    library.store = store
    return library


@pytest.fixture(scope="module")
def minilm() -> TransformersEmbedder:
    return TransformersEmbedder()


@pytest.fixture
def float32(monkeypatch) -> None:
    """Query precision float32, where a phrase's vector does not depend on its call's batch."""
    monkeypatch.setattr(library_module, "native_dtype", lambda embedder: "float32")
    monkeypatch.setattr(vocabulary, "native_dtype", lambda embedder: "float32")


def test_items_are_the_library_phrases_most_shared_first() -> None:
    library = _library(HashEmbedder())
    items = vocabulary.library_items(library)
    assert items[:3] == ["background", "long hair", "style"]  # two adapters each
    assert "knight" in items and "(knight:1.2)" not in items  # parsed as a prompt is
    assert vocabulary.library_items(library, size=2) == ["background", "long hair"]


def test_vectors_are_those_of_each_phrase_alone(minilm, float32) -> None:
    library = _library(minilm)
    vocab = vocabulary.warm(library, wait=True)
    assert vocab.key["precision"] == "float32" and len(vocab) == vocab.items > 20
    items = vocabulary.library_items(library)
    alone = np.vstack([library.embed([t]) for t in items])
    got = np.stack([vocab.get(t) for t in items])
    assert np.abs(got - alone).max() < 1e-6


def test_vectors_at_the_native_precision_match_alone(minilm) -> None:
    library = _library(minilm)
    vocab = vocabulary.warm(library, wait=True)
    items = vocabulary.library_items(library)
    alone = np.vstack([library.embed([t]) for t in items])
    got = np.stack([vocab.get(t) for t in items])
    assert (got * alone).sum(axis=1).min() > 0.9999  # bf16: as close as a prompt's own calls


def test_select_unchanged_and_known_phrases_not_embedded(minilm, float32, monkeypatch) -> None:
    prompts = [
        "a knight in plate armor fighting a red dragon, autumn forest, watercolor painting",
        "pixel art, retro game, neon lights, city at night, long hair",
        "steampunk goggles, brass, 1girl smiling",
    ]
    warm = _library(minilm)
    vocabulary.warm(warm, wait=True)
    for prompt in prompts:
        QUERY_CACHE.clear()
        with vocabulary.detached(warm):
            before = select(prompt, warm, k=4, threshold=0.0)
        QUERY_CACHE.clear()
        after = select(prompt, warm, k=4, threshold=0.0)
        assert [p.name for p in after] == [p.name for p in before], prompt
        assert [p.phrase for p in after] == [p.phrase for p in before], prompt
        np.testing.assert_allclose([p.score for p in after], [p.score for p in before], atol=1e-6)
    asked = _record_embeds(monkeypatch, warm)
    QUERY_CACHE.clear()
    select("pixel art, long hair, a purple teapot", warm)
    assert asked == [["a purple teapot"]]
    QUERY_CACHE.clear()
    with vocabulary.detached(warm):
        select("pixel art, long hair", warm)
    assert asked[-1] == ["pixel art", "long hair"]


def _record_embeds(monkeypatch, library) -> list[list[str]]:
    """The texts each later ``library.embed`` call is asked for, in order."""
    asked: list[list[str]] = []
    embed = library.embed
    monkeypatch.setattr(library, "embed", lambda texts: asked.append(list(texts)) or embed(texts))
    return asked


def test_an_item_read_alike_is_found_only_for_a_folding_tokenizer(minilm, float32) -> None:
    library = _library(minilm)
    vocab = vocabulary.warm(library, wait=True)
    assert vocab.get("Long  HAIR") is None  # not the item's text
    found = vocab.find("Long  HAIR")  # uncased MiniLM: the same tokens as "long hair"
    assert found is not None and found is vocab.get("long hair")
    np.testing.assert_allclose(library.embed(["Long  HAIR"])[0], found, atol=1e-6)
    assert vocab.find("long hairs") is None  # other tokens: never a near miss
    assert minilm.input_key("Pixel\tART") == "pixel art"
    hashed = vocabulary.warm(_library(HashEmbedder()), wait=True)  # no input_key: exact only
    assert hashed.get("long hair") is not None and hashed.find("Long Hair") is None


def test_query_takes_a_case_variant_from_the_vocabulary(minilm, monkeypatch) -> None:
    library = _library(minilm)
    vocabulary.warm(library, wait=True)
    asked = _record_embeds(monkeypatch, library)
    QUERY_CACHE.clear()
    select("Pixel Art, LONG HAIR, a purple teapot", library)
    assert asked == [["a purple teapot"]]


def test_built_once_then_only_new_items_embedded(tmp_path) -> None:
    embedder = HashEmbedder()
    first = vocabulary.warm(_library(embedder, store=tmp_path), wait=True)
    items = set(vocabulary.library_items(_library(HashEmbedder())))
    assert first.embedded == len(first) == len(items)
    assert (tmp_path / vocabulary.FILE_NAME).is_file()
    embedder.texts.clear()
    more = [*THEMES, ("teapot", ("object", "teapot", "long hair"), ("tptrigger",))]
    library = _library(embedder, more, store=tmp_path)
    embedder.texts.clear()  # the records' documents
    again = vocabulary.warm(library, wait=True)
    assert sorted(embedder.texts) == ["teapot", "tptrigger"] and again.embedded == 2
    assert vocabulary.warm(library, wait=True) is again  # the same library: nothing to do
    np.testing.assert_array_equal(again.get("teapot"), embedder.embed(["teapot"])[0])
    embedder.texts.clear()
    library = _library(embedder, more, store=tmp_path)
    embedder.texts.clear()
    assert vocabulary.warm(library, wait=True).embedded == 0 and embedder.texts == []


def test_file_of_another_embedder_is_not_used(tmp_path) -> None:
    vocabulary.warm(_library(HashEmbedder(), store=tmp_path), wait=True)
    other = HashEmbedder()
    other.id = "another-model"
    library = _library(other, store=tmp_path)
    assert vocabulary.warm(library, wait=True).embedded == len(vocabulary.library_items(library))


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04broken"])
def test_damaged_file_is_rebuilt(tmp_path, caplog, content) -> None:
    (tmp_path / vocabulary.FILE_NAME).write_bytes(content)
    with caplog.at_level(logging.WARNING, "pixtention.selector"):
        vocab = vocabulary.warm(_library(HashEmbedder(), store=tmp_path), wait=True)
    assert vocab.embedded == vocab.items == len(vocab)
    assert [r.message for r in caplog.records if "damaged" in r.message]
    again = vocabulary.warm(_library(HashEmbedder(), store=tmp_path), wait=True)
    assert again.embedded == 0 and len(again) == len(vocab)


def test_symbolic_link_is_not_followed(tmp_path, caplog) -> None:
    store, target = tmp_path / "store", tmp_path / "elsewhere.npz"
    store.mkdir()
    target.write_bytes(b"precious")
    (store / vocabulary.FILE_NAME).symlink_to(target)
    with caplog.at_level(logging.WARNING, "pixtention.selector"):
        vocab = vocabulary.warm(_library(HashEmbedder(), store=store), wait=True)
    assert vocab.embedded == len(vocab) > 0
    assert [r.message for r in caplog.records if "symbolic link" in r.message]
    assert target.read_bytes() == b"precious"
    assert not (store / vocabulary.FILE_NAME).is_symlink()
    assert vocabulary.warm(_library(HashEmbedder(), store=store), wait=True).embedded == 0


def test_read_only_store_keeps_it_in_memory(tmp_path, monkeypatch) -> None:
    def refuse(path, write) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(vocabulary, "atomic_write", refuse)
    library = _library(HashEmbedder(), store=tmp_path)
    vocab = vocabulary.warm(library, wait=True)
    assert len(vocab) == vocab.items > 0 and not (tmp_path / vocabulary.FILE_NAME).exists()
    assert vocabulary.lookup(library) is vocab


def test_background_build_and_failure_do_not_break_queries(caplog) -> None:
    library = _library(HashEmbedder())
    vocab = vocabulary.warm(library)
    assert vocab.ready.wait(30) and len(vocab) == vocab.items
    broken = _library(HashEmbedder())
    broken.embed = lambda texts: (_ for _ in ()).throw(RuntimeError("no model"))
    with caplog.at_level(logging.WARNING, "pixtention.selector"):
        vocab = vocabulary.warm(broken, wait=True)
    assert len(vocab) == 0 and [r.message for r in caplog.records if "not built" in r.message]


def test_empty_library_is_quietly_empty(caplog) -> None:
    with caplog.at_level(logging.WARNING, "pixtention.selector"):
        vocab = vocabulary.warm(Library((), None, [], ""), wait=True)
    assert vocab.ready.is_set() and len(vocab) == 0 and not caplog.records


def test_the_webui_service_warms_each_library_it_opens(tiny_library) -> None:  # noqa: F811
    """The WebUI keeps one library per index snapshot: its vocabulary is built in the
    background when it is opened, once, and queries find the library's tags there."""
    import dataclasses

    from pixtention.webui.service import Core, LibraryService

    loras, store = tiny_library
    warmed: list = []
    core = dataclasses.replace(Core.default(), warm=warmed.append)
    service = LibraryService(loras, store, captions=False, core=core)
    library = service.library()
    assert library is not None and warmed == [library]
    assert service.library() is library and warmed == [library]  # opened once, warmed once

    real = LibraryService(loras, store, captions=False).library()
    vocab = vocabulary.lookup(real)
    assert vocab is not None and vocab.ready.wait(120)
    assert vocab.get("tabby cat") is not None
