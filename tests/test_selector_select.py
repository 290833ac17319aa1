"""select() on a small themed library embedded with the real MiniLM (the curator's embedder)."""

from __future__ import annotations

import numpy as np
import pytest

from pixtention.curator.adapter_rows import adapter_record
from pixtention.curator.documents import build_document
from pixtention.curator.embedder import EmbedderError, TransformersEmbedder
from pixtention.curator.library import Library
from pixtention.library.info import (
    AdapterFile,
    AdapterInfo,
    AdapterMetadata,
    BaseModel,
    Layout,
)
from pixtention.selector.select import select
from pixtention.selector.triggers import apply_picks, words

# name, title, tags, triggers, family, preferred weight (user metadata)
THEMES = [
    ("watercolor_v2", "Watercolor Painting Style", ("style", "watercolor", "painting"),
     ("watercolor painting",), "sd1", None),
    ("pixel_art", "Pixel Art Style", ("style", "pixel art", "8-bit", "retro game"),
     ("pixel art",), "sd1", 0.8),
    ("neon_city", "Cyberpunk Neon City", ("background", "cyberpunk", "neon lights", "city"),
     ("neoncity",), "sd1", None),
    ("red_dragon", "Red Dragon Creature", ("creature", "dragon", "monster", "wings"),
     ("reddrgn", "red dragon"), "sd1", None),
    ("knight_armor", "Knight in Shining Armor", ("clothing", "armor", "knight", "plate armor"),
     ("knightarmor",), "sd1", None),
    ("cat_character", "Cute Cat Character", ("character", "cat", "kitten", "animal"),
     ("catchar",), "sd1", None),
    ("samurai", "Samurai Warrior", ("character", "samurai", "katana", "japan"),
     ("samurai warrior",), "sd1", None),
    ("autumn_forest", "Autumn Forest Background", ("background", "autumn", "forest", "trees"),
     ("autumn forest",), "sd1", None),
    ("steampunk_goggles", "Steampunk Goggles", ("object", "steampunk", "goggles", "brass"),
     ("stmpnk goggles",), "sd1", None),
    ("gothic_dress", "Gothic Lolita Dress", ("clothing", "gothic", "dress", "lace"),
     ("gothic dress",), "sd1", None),
    ("chibi", "Chibi Style", ("style", "chibi", "cute", "super deformed"), ("chibi",), "sd1", None),
    ("vintage_film", "Vintage Film Photo", ("style", "film grain", "analog", "photo"),
     ("vintage film photo",), "sd1", None),
    ("dragon_xl", "Red Dragon XL", ("creature", "dragon", "fire", "wings"), ("red dragon",),
     "sdxl", None),
]  # fmt: skip


def _info(name, title, tags, triggers, family, weight) -> AdapterInfo:
    file = AdapterFile(f"/loras/{name}.safetensors", 100, 0.0, f"100:{name}", {}, {})
    layout = Layout("lora", 4, None, (), (), ())
    meta = AdapterMetadata(
        name=name,
        title=title,
        triggers=triggers,
        tags=tags,
        preferred_weight=weight,
        weight_source="user" if weight is not None else None,
        description=f"A LoRA for {title.lower()}.",
    )
    return AdapterInfo(file, layout, BaseModel(family), meta)


@pytest.fixture(scope="module")
def embedder():
    return TransformersEmbedder()


@pytest.fixture(scope="module")
def library(embedder) -> Library:
    infos = [_info(*theme) for theme in THEMES]
    records = [adapter_record(info, build_document(info)) for info in infos]
    vectors = embedder.embed([r.document for r in records])
    return Library.from_records(records, vectors, embedder)


def _names(picks) -> list[str]:
    return [p.name for p in picks]


def test_each_concept_gets_its_adapter_bound_to_its_phrase(library) -> None:
    prompt = "a knight in shining armor fighting a red dragon, autumn forest, watercolor painting"
    picks = select(prompt, library, k=4, base_model="sd1")
    bound = {p.name: p.phrase for p in picks}
    assert set(bound) == {"knight_armor", "red_dragon", "autumn_forest", "watercolor_v2"}
    assert "knight" in bound["knight_armor"] or "armor" in bound["knight_armor"]
    assert "dragon" in bound["red_dragon"]
    assert bound["autumn_forest"] == "autumn forest"
    for pick in picks:
        start, end = pick.phrase_span
        assert pick.phrase == " ".join(prompt[start:end].split())
        assert pick.evidence.phrase == pick.phrase and pick.evidence.score == pick.score
        assert pick.cluster_label == pick.evidence.cluster_label
        assert pick.evidence.matched, "evidence names the matching document fields"
        assert pick.source == "auto"
    assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)


def test_unrelated_prompts_get_no_picks(library) -> None:
    for prompt in (
        "quarterly tax spreadsheet with totals",
        "a bowl of soup on a kitchen table",
        "",
        "   ,,, BREAK AND ((()))",
    ):
        assert select(prompt, library, k=3) == [], prompt


def test_base_model_filter_is_hard(library) -> None:
    prompt = "a red dragon breathing fire"
    sd1 = select(prompt, library, k=5, base_model="sd1", threshold=0.0)
    assert sd1 and all(p.base_family == "sd1" for p in sd1)
    for name in ("sdxl", "pony", "illustrious"):
        xl = select(prompt, library, k=5, base_model=name, threshold=0.0)
        assert _names(xl) == ["dragon_xl"], name
    assert "dragon_xl" in _names(select(prompt, library, k=13, threshold=0.0))
    with pytest.raises(ValueError, match="unknown base model"):
        select(prompt, library, base_model="nonsense-model")


def test_excludes_and_pins(library) -> None:
    prompt = "a cute cat sitting under autumn trees"
    auto = _names(select(prompt, library, k=2))
    assert "cat_character" in auto
    without = _names(select(prompt, library, k=2, exclude=["cat_character"]))
    assert "cat_character" not in without
    pinned = select(prompt, library, k=2, pins=["vintage_film"])
    assert pinned[0].name == "vintage_film" and pinned[0].source == "pinned"
    assert len(pinned) <= 2 and len(set(_names(pinned))) == len(pinned)
    # a pin of another family is refused, not smuggled in
    assert "dragon_xl" not in _names(select(prompt, library, base_model="sd1", pins=["dragon_xl"]))
    # unknown names are ignored, not fatal
    assert select(prompt, library, k=1, pins=["no_such_lora"], exclude=["nope"])


def test_k_larger_than_library_and_per_phrase_cap(library) -> None:
    picks = select("dragon", library, k=100, threshold=0.0)
    assert len(picks) == 1  # one phrase, per_phrase=1
    picks = select("dragon", library, k=100, threshold=0.0, per_phrase=100, clusters=None)
    assert len(picks) == len(library) and len(set(_names(picks))) == len(library)
    assert select("dragon", library, k=0) == []


def test_explicit_tags_are_not_picked_again_and_can_be_regionalised(library) -> None:
    prompt = "a red dragon <lora:red_dragon:0.7>, a samurai warrior with a katana"
    auto = select(prompt, library, k=3)
    assert "red_dragon" not in _names(auto) and "samurai" in _names(auto)
    regional = select(prompt, library, k=3, mode="regionalise")
    assert len(regional) == 1
    (pick,) = regional
    assert (pick.name, pick.source, pick.weight, pick.weight_source) == (
        "red_dragon",
        "user",
        0.7,
        "prompt",
    )
    assert pick.phrase == "a red dragon" and pick.triggers == ()
    both = select(prompt, library, k=3, mode="both")
    assert _names(both)[0] == "red_dragon" and "samurai" in _names(both)[1:]
    twice = select("a dragon <lora:red_dragon:0.5>, <lora:red_dragon:0.9> fire", library,
                   mode="regionalise", pins=["red_dragon"])  # fmt: skip
    assert [(p.name, p.weight, p.source) for p in twice] == [("red_dragon", 0.5, "user")]
    # a trailing tag binds to the most similar phrase
    trailing = select("a samurai, a cat <lora:red_dragon:1>", library, mode="regionalise")
    assert trailing[0].phrase_span is not None and trailing[0].weight == 1.0


def test_triggers_and_weights(library) -> None:
    prompt = "pixel art, a castle on a hill"
    picks = select(prompt, library, k=1)
    assert _names(picks) == ["pixel_art"]
    assert picks[0].triggers == ()  # the prompt already says "pixel art"
    assert (picks[0].weight, picks[0].weight_source) == (0.8, "user")
    prompt = "a majestic dragon"
    (pick,) = select(prompt, library, k=1, base_model="sd1")
    assert pick.name == "red_dragon" and pick.weight_source == "default"
    assert pick.triggers and not set(words(" ".join(pick.triggers))) & set(words(prompt))
    rewritten = apply_picks(prompt, [pick])
    assert rewritten == f"a majestic dragon, {', '.join(pick.triggers)}"


def test_bad_prompts_do_not_break_selection(library) -> None:
    long_prompt = ", ".join(f"(red dragon:1.{i % 9}) [knight|samurai] word{i}" for i in range(1700))
    picks = select(long_prompt, library, k=3)
    assert 1 <= len(picks) <= 3
    for prompt in (
        "((red dragon [[knight",
        ")))]]] a cat",
        "<lora:red_dragon:1><lyco:samurai:0.5>",
        "赤いドラゴン、侍",
        "🐉🔥 dragon 🐉",
    ):
        picks = select(prompt, library, k=3)
        assert all(p.name in {t[0] for t in THEMES} for p in picks)
    assert select("<lora:red_dragon:1><lyco:samurai:0.5>", library) == []
    both = select("<lora:red_dragon:1><lyco:samurai:0.5:0.25>", library, mode="regionalise")
    assert [(p.name, p.weight, p.phrase_span) for p in both] == [
        ("red_dragon", 1.0, None),
        ("samurai", 0.25, None),
    ]


def test_empty_library_and_foreign_vectors(embedder) -> None:
    empty = Library.from_records([], np.zeros((0, 384), np.float32), embedder)
    assert select("a red dragon", empty, k=3) == []
    info = _info(*THEMES[0])
    record = adapter_record(info, build_document(info))
    foreign = Library.from_records([record], np.ones((1, 16), np.float32), embedder)
    with pytest.raises(EmbedderError, match="another embedder"):
        select("watercolor", foreign)
    other = Library(foreign.records, None, [], "old/embedder", embedder)
    with pytest.raises(EmbedderError, match="re-index"):
        select("watercolor", other)


def test_cached_vectors_never_hide_another_embedder(library) -> None:
    select("a red dragon", library)  # every vector of this prompt is cached now
    configured = TransformersEmbedder("some/other-model")
    other = Library(library.records, None, [], library.embedder_id, configured)
    with pytest.raises(EmbedderError, match="re-index"):
        select("a red dragon", other)


def test_triggers_are_inserted_whole_next_to_their_phrase(library) -> None:
    prompt = "a majestic knight on a horse"
    (pick,) = select(prompt, library, k=1, base_model="sd1")
    assert pick.name == "knight_armor" and pick.phrase == "a majestic knight"
    assert pick.triggers == ("knightarmor",)
    again = select(apply_picks(prompt, [pick]), library, k=1, base_model="sd1")
    assert again[0].name == "knight_armor" and again[0].triggers == ()


def test_query_embeds_each_phrase_once_and_pools_the_prompt_row(library, monkeypatch) -> None:
    from pixtention.selector.prompt import parse_prompt
    from pixtention.selector.query import QUERY_CACHE, embed_query, pooled_prompt_vector
    from pixtention.selector.select import DEFAULT_SCORING, lexical_index

    seen: list[str] = []
    real = library.embed

    def recording(texts):
        seen.extend(texts)
        return real(texts)

    monkeypatch.setattr(library, "embed", recording)
    QUERY_CACHE.clear()
    prompt = "watercolor painting of a samurai, autumn forest, (samurai:1.2)"
    query = embed_query(parse_prompt(prompt), library, lexical_index(library), DEFAULT_SCORING)
    texts = [p.text for p in query.phrases]
    assert sorted(seen) == sorted(texts) and len(set(texts)) == len(texts) >= 3
    np.testing.assert_allclose(query.vectors[1:], real(texts), atol=1e-6)
    np.testing.assert_allclose(
        query.vectors[0], pooled_prompt_vector(query.vectors[1:], query.weights), atol=1e-6
    )
    # the pooled row points where the prompt embedded whole does
    whole = real([query.parsed.text])[0]
    assert float(whole @ query.vectors[0]) > 0.8
    seen.clear()
    only_tags = embed_query(
        parse_prompt("<lora:x:1>"), library, lexical_index(library), DEFAULT_SCORING
    )
    assert only_tags.phrases == () and len(seen) == 1 and only_tags.vectors.shape[0] == 1


def test_pooled_prompt_vector_is_the_weighted_mean_direction() -> None:
    from pixtention.selector.query import pooled_prompt_vector

    basis = np.eye(3, dtype=np.float32)
    pooled = pooled_prompt_vector(basis, np.array([3.0, 1.0, 0.0], np.float32))
    expected = np.array([3.001, 1.001, 0.001]) / np.linalg.norm([3.001, 1.001, 0.001])
    np.testing.assert_allclose(pooled, expected, rtol=1e-5)
    generic = pooled_prompt_vector(basis[:2], np.zeros(2, np.float32))  # no specific phrase
    np.testing.assert_allclose(generic, [2**-0.5, 2**-0.5, 0.0], rtol=1e-5)


def test_boilerplate_is_kept_out_of_retrieval(library) -> None:
    from pixtention.selector.prompt import parse_prompt
    from pixtention.selector.query import distinct_phrases

    parsed = parse_prompt("masterpiece, best quality, a red dragon, white background, 8k")
    assert [p.text for p in distinct_phrases(parsed)] == ["a red dragon"]
    assert len(parsed.phrases) == 5  # still phrases of the prompt (spans, token positions)
    # the backdrop's words no longer pull in "background" adapters, and boilerplate alone
    # asks for nothing
    assert select("a glass of orange juice on a white background", library, base_model="sd1") == []
    assert select("masterpiece, best quality, simple background", library, threshold=-1) == []
    picks = select("masterpiece, a red dragon, white background", library, k=1, base_model="sd1")
    assert [(p.name, p.phrase) for p in picks] == [("red_dragon", "a red dragon")]
