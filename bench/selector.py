"""Selector benchmark: retrieval quality on real Civitai data, phrase binding, and latency.

1. Retrieval: the Civitai library (``civitai_lora_library.jsonl``) written as a user's disk holds
   it (a tiny LoRA file per model + its real ``.civitai.info``; SDXL distractors from
   ``carlos_sdxl_library.jsonl``), indexed by the curator's indexer. Each real prompt loses its
   ``<…:…>`` tags and its label's trained words, then every variant answers it side by side:
   BM25 over the same documents, flat dense cosine, hierarchical (clusters first) dense, the
   shipped default (hierarchical hybrid with abstention) and the same default scoring every
   adapter (flat). Reports recall@1/3/10, MRR, abstention and base-model violations.
2. A hand-made set (below, our own prompts) on the sample library: is each concept picked and
   bound to its phrase, and do prompts that need no adapter get none?
3. Latency of ``select`` including prompt embedding, p50/p95, at 1k/10k/100k adapters.

    python -m pixtention bench selector [--quick] [--json] [--data DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from bench.civitai_sidecar import civitai_info
from bench.needs import DATA_FILES, DEFAULT_DATA, missing_data

TARGET_P95_MS = {10_000: 30.0, 100_000: 100.0}

# (prompt, {adapter: a word of the phrase it must be bound to}); {} = needs no adapter.
HANDMADE: tuple[tuple[str, dict[str, str]], ...] = (
    ("a knight in plate armor guarding a castle gate", {"knight_in_armor": "knight"}),
    ("a ronin samurai under heavy rain, watercolor painting",
     {"samurai_warrior": "samurai", "watercolor_wash": "watercolor"}),
    ("a fluffy cat napping on a cushion, autumn forest with falling leaves",
     {"cat_character": "cat", "autumn_forest": "forest"}),
    ("a crimson dragon, cyberpunk neon city at night",
     {"red_dragon": "dragon", "cyberpunk_neon_city": "city"}),
    ("girl wearing steampunk goggles and a gothic lolita dress",
     {"steampunk_goggles": "goggles", "gothic_dress": "dress"}),
    ("chibi style, a tiny wizard casting a spell", {"chibi_style": "chibi"}),
    ("8-bit pixel art of a spaceship", {"pixel_art_8bit": "pixel"}),
    ("vintage film photo of a family picnic", {"vintage_film_photo": "film"}),
    # sentences without commas: prepositions and -ing verbs separate the concepts
    ("pixel art of a red dragon flying over a neon city",
     {"pixel_art_8bit": "pixel", "red_dragon": "dragon", "cyberpunk_neon_city": "city"}),
    ("watercolor painting of a samurai walking through an autumn forest",
     {"watercolor_wash": "watercolor", "samurai_warrior": "samurai", "autumn_forest": "forest"}),
    ("a cute cat wearing steampunk goggles",
     {"cat_character": "cat", "steampunk_goggles": "goggles"}),
    ("a bowl of soup on a kitchen table", {}),
    ("quarterly financial report with a bar chart", {}),
    ("a modern office with glass desks and laptops", {}),
    ("a glass of orange juice on a white background", {}),
    ("portrait of an elderly man, studio lighting", {}),
    ("a sailboat on a calm lake at noon", {}),
)  # fmt: skip

_TAG = re.compile(r"<(\w+):([^>]+)>")


# ---------------------------------------------------------------- the library on disk


def _tiny_file(path: Path, width: int, stem: str) -> None:
    """A one-module LoRA whose cross-attention input width names its base model."""
    import numpy as np
    from safetensors.numpy import save_file

    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    if width == 2048:  # SDXL files use compvis names
        key = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
    tensors = {
        f"{key}.lora_down.weight": np.zeros((1, width), np.float16),
        f"{key}.lora_up.weight": np.zeros((640, 1), np.float16),
        f"{key}.alpha": np.ones((), np.float16),
    }
    save_file(tensors, str(path), metadata={"ss_output_name": stem, "ss_network_dim": "1"})


def _width(base_model: str) -> int:
    lowered = base_model.lower()
    if "xl" in lowered or "pony" in lowered:
        return 2048
    return 1024 if lowered.startswith("sd 2") else 768


def _stem(name: str, fallback: str, used: set[str]) -> str:
    stem = re.sub(r"[^\w.\-]+", "_", name).strip("._") or fallback
    if stem.lower() in used:
        stem = f"{stem}_{fallback}"
    used.add(stem.lower())
    return stem


def write_library(data: Path, folder: Path, keep: set[int] | None, carlos: int | None) -> dict:
    """Write the Civitai models (all, or those in ``keep``) and SDXL distractors.

    Returns {file stem: {"model_id", "trained", "family"}}; distractors have model_id None.
    """
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    labels: dict[str, dict] = {}
    with open(data / "civitai_lora_library.jsonl", encoding="utf-8") as fh:
        for line in fh:
            model = json.loads(line)
            if keep is not None and model["model_id"] not in keep:
                continue
            version = (model.get("versions") or [{}])[0]
            files = [
                f["name"] for f in version.get("files", []) if f["name"].endswith(".safetensors")
            ]
            name = files[0][: -len(".safetensors")] if files else model["name"]
            stem = _stem(name, str(model["model_id"]), used)
            width = _width(version.get("base_model", ""))
            _tiny_file(folder / f"{stem}.safetensors", width, stem)
            info = civitai_info(model, version)
            (folder / f"{stem}.civitai.info").write_text(json.dumps(info), encoding="utf-8")
            trained = [w for v in model.get("versions", []) for w in v.get("trained_words") or []]
            family = {768: "sd1", 1024: "sd2", 2048: "sdxl"}[width]
            labels[stem] = {"model_id": model["model_id"], "trained": trained, "family": family}
    with open(data / "carlos_sdxl_library.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if carlos is not None and i >= carlos:
                break
            entry = json.loads(line)
            stem = _stem(entry["folder_name"], str(entry["version_id"]), used)
            _tiny_file(folder / f"{stem}.safetensors", 2048, stem)
            info = {
                "id": entry["version_id"],
                "modelId": entry.get("model_id"),
                "baseModel": "SDXL 1.0",
                "trainedWords": [],
                "model": {
                    "name": entry.get("model_name") or entry["folder_name"],
                    "type": "LORA",
                    "description": entry.get("model_description_html") or "",
                },
            }
            (folder / f"{stem}.civitai.info").write_text(json.dumps(info), encoding="utf-8")
            labels[stem] = {"model_id": None, "trained": [], "family": "sdxl"}
    return labels


def strip_prompt(prompt: str, trained: list[str]) -> str:
    """The prompt without extra-network tags and without the label's trained words."""
    text = _TAG.sub(" ", prompt)
    items = {part.strip() for word in trained for part in [word, *word.split(",")] if part.strip()}
    for item in sorted(items, key=len, reverse=True):
        text = re.sub(r"(?<!\w)" + re.escape(item) + r"(?!\w)", " ", text, flags=re.IGNORECASE)
    return text


def load_prompts(data: Path, n: int | None, seed: int) -> list[dict]:
    with open(data / "civitai_dev_prompts.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    random.Random(seed).shuffle(rows)
    return rows if n is None else rows[:n]


# ---------------------------------------------------------------- retrieval quality


PRUNED_SHARE = 8  # the "pruned" variants score 1/8 of the library (the default budget, 2,048,
# is about 1/4 of the real library's 8.7k adapters)


def variants(n_adapters: int):
    from pixtention.selector import retrieval
    from pixtention.selector.select import DEFAULT_CLUSTERS, DEFAULT_SCORING, DEFAULT_THRESHOLD

    dense_only = dataclasses.replace(DEFAULT_SCORING, lexical_share=0.0)
    hier = dict(clusters=DEFAULT_CLUSTERS)
    pruned = dict(clusters=DEFAULT_CLUSTERS, budget=max(1, n_adapters // PRUNED_SHARE))
    shipped = dict(scoring=DEFAULT_SCORING, threshold=DEFAULT_THRESHOLD)
    return {
        "bm25": dict(scoring=retrieval.Scoring(lexical_share=1.0), clusters=None, threshold=1e-9),
        "dense_flat": dict(scoring=dense_only, clusters=None, threshold=-2.0),
        "dense_hierarchical": dict(scoring=dense_only, threshold=-2.0, **hier),
        f"dense_hier_1/{PRUNED_SHARE}": dict(scoring=dense_only, threshold=-2.0, **pruned),
        "default": dict(**shipped, **hier),
        f"default_1/{PRUNED_SHARE}": dict(**shipped, **pruned),
        "default_flat": dict(**shipped, clusters=None),
    }


def evaluate(library, cases: list[dict], k: int = 10) -> dict:
    """Side by side: every variant answers every case; metrics per variant."""
    from pixtention.selector.select import select

    for case in cases:  # embed every prompt once, so the timings below compare retrieval only
        select(case["prompt"], library, k=k, base_model=case["family"])
    out = {}
    for name, options in variants(len(library)).items():
        ranks, abstained, violations, seconds = [], 0, 0, 0.0
        for case in cases:
            started = time.perf_counter()
            picks = select(
                case["prompt"], library, k=k, per_phrase=k, base_model=case["family"], **options
            )
            seconds += time.perf_counter() - started
            abstained += not picks
            violations += sum(p.base_family not in (case["family"], "unknown") for p in picks)
            names = [p.name for p in picks]
            ranks.append(names.index(case["stem"]) + 1 if case["stem"] in names else None)
        n = len(cases)
        out[name] = {
            "recall@1": sum(r is not None and r <= 1 for r in ranks) / n,
            "recall@3": sum(r is not None and r <= 3 for r in ranks) / n,
            "recall@10": sum(r is not None and r <= 10 for r in ranks) / n,
            "mrr": sum(1.0 / r for r in ranks if r) / n,
            "abstention": abstained / n,
            "base_model_violations": violations,
            "ms_per_query": 1000 * seconds / n,
        }
    return out


def retrieval_quality(args, work: Path) -> dict:
    from pixtention.curator.indexer import index_folder
    from pixtention.curator.library import open_library
    from pixtention.selector.query import QUERY_CACHE, QUERY_CACHE_SIZE

    rows = load_prompts(args.data, None, args.seed)
    keep = None
    if args.quick:  # the sampled prompts' models plus as many random others, fewer distractors
        rows = rows[: args.prompts]
        with open(args.data / "civitai_lora_library.jsonl", encoding="utf-8") as fh:
            all_ids = [json.loads(line)["model_id"] for line in fh]
        keep = {r["model_id"] for r in rows}
        keep |= set(random.Random(args.seed).sample(all_ids, min(len(all_ids), 3 * len(keep))))
    folder, store = work / "civitai" / "Lora", work / "civitai" / "store"
    started = time.perf_counter()
    labels = write_library(args.data, folder, keep, 200 if args.quick else None)
    report = index_folder(folder, store, captions=False)
    index_s = time.perf_counter() - started
    library = open_library(store)
    stem_of = {v["model_id"]: s for s, v in labels.items() if v["model_id"] is not None}
    indexed = {r.name for r in library.records}
    cases = []
    for row in rows:
        stem = stem_of.get(row["model_id"])
        if stem is None or stem not in indexed:
            continue
        label = labels[stem]
        cases.append(
            {"prompt": strip_prompt(row["prompt"], label["trained"]), "stem": stem,
             "family": label["family"]}
        )  # fmt: skip
        if len(cases) >= args.prompts:
            break
    QUERY_CACHE.size = 10_000_000  # every variant reuses the prompt vectors
    metrics = evaluate(library, cases)
    QUERY_CACHE.size = QUERY_CACHE_SIZE
    QUERY_CACHE.clear()
    d, b, d_flat = metrics["default"], metrics["bm25"], metrics["default_flat"]
    flat, hier = metrics["dense_flat"], metrics["dense_hierarchical"]
    return {
        "adapters": len(library),
        "problems": len(report.problems),
        "clusters": len(library.cluster_labels),
        "prompts": len(cases),
        "index_seconds": index_s,
        "variants": metrics,
        "checks": {
            "default_beats_bm25_recall@3": d["recall@3"] > b["recall@3"],
            "default_beats_bm25_mrr": d["mrr"] > b["mrr"],
            "shipped_hierarchical_keeps_98pct_of_flat_recall@3": d["recall@3"]
            >= 0.98 * d_flat["recall@3"],
            "dense_hierarchical_keeps_98pct_of_flat_recall@3": hier["recall@3"]
            >= 0.98 * flat["recall@3"],
            # information, not a target: what cluster-first pruning keeps when it must prune
            f"(info) dense_hier_1/{PRUNED_SHARE}_keeps_98pct_of_flat_recall@3": metrics[
                f"dense_hier_1/{PRUNED_SHARE}"
            ]["recall@3"]
            >= 0.98 * flat["recall@3"],
            "no_base_model_violations": all(
                m["base_model_violations"] == 0 for m in metrics.values()
            ),
        },
    }


# ---------------------------------------------------------------- hand-made set


def handmade(work: Path) -> dict:
    from pixtention.curator.indexer import index_folder
    from pixtention.curator.library import open_library
    from pixtention.library.sample import write_sample
    from pixtention.library.sample_themes import FIRST_DOZEN
    from pixtention.selector.select import select

    # The dozen the cases were written for: the rest of the sample library has words these
    # abstention prompts use ("glass", "lighting"), which would make it another benchmark.
    folder = work / "sample-dozen" / "Lora"
    if not folder.exists():
        write_sample(folder, themes=FIRST_DOZEN)
    index_folder(folder, work / "sample-dozen" / "store", captions=False)
    library = open_library(work / "sample-dozen" / "store")
    expected = bound = extra = abstain_ok = abstain_n = 0
    failures = []
    for prompt, want in HANDMADE:
        picks = select(prompt, library, k=3, base_model="sd1")
        got = {p.name: p.phrase for p in picks}
        if not want:
            abstain_n += 1
            abstain_ok += not picks
            if picks:
                failures.append({"prompt": prompt, "unexpected": got})
            continue
        for name, word in want.items():
            expected += 1
            if name in got and word in got[name].lower():
                bound += 1
            else:
                failures.append({"prompt": prompt, "wanted": {name: word}, "got": got})
        extra += sum(name not in want for name in got)
    return {
        "binding_accuracy": bound / expected,
        "unexpected_picks": extra,
        "abstention_accuracy": abstain_ok / abstain_n,
        "cases": len(HANDMADE),
        "failures": failures,
    }


# ---------------------------------------------------------------- latency


def _scaled(records, vectors, size: int, seed: int):
    """``size`` adapters from real documents: copies get a perturbed vector and a new name."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(records), size) if size > len(records) else np.arange(size)
    noise = rng.normal(0.0, 0.023, (size, vectors.shape[1])).astype(np.float32)
    scaled = vectors[rows] + noise * (np.arange(size) >= len(records))[:, None]
    scaled /= np.linalg.norm(scaled, axis=1, keepdims=True)
    recs = [
        dataclasses.replace(
            records[r], name=f"{records[r].name}_{i}", fingerprint=f"{records[r].fingerprint}/{i}"
        )
        for i, r in enumerate(rows.tolist())
    ]
    return recs, scaled


def _embedding_side_by_side(embedder, prompts: list[str]) -> dict:
    """Embedding one prompt's query texts, interleaved: the whole prompt and its phrases in
    float32 on the caller's threads (session 2) against its retrievable phrases alone at the
    query precision on the query thread (now)."""
    import numpy as np

    from pixtention.curator.precision import autocast_cpu, native_dtype
    from pixtention.selector.prompt import parse_prompt
    from pixtention.selector.query import MAX_PHRASES, distinct_phrases
    from pixtention.selector.worker import on_query_thread

    _, tokenizer = embedder._load()
    dtype = native_dtype(embedder)

    def native(texts):
        with autocast_cpu(dtype):
            return embedder.embed(texts)

    def now_embed(texts):
        return on_query_thread(native, texts)

    before, now, tokens_before, tokens_now = [], [], [], []
    for prompt in prompts:
        parsed = parse_prompt(prompt)
        phrases = [p.text for p in distinct_phrases(parsed)]
        first: dict[str, str] = {}
        for phrase in parsed.phrases:
            first.setdefault(phrase.text.lower(), phrase.text)
        whole = [parsed.text or "."] + list(first.values())[:MAX_PHRASES]
        for texts, counts in ((whole, tokens_before), (phrases, tokens_now)):
            if not texts:  # only boilerplate: nothing to embed
                counts.append(0)
                continue
            ids = tokenizer(texts, truncation=True, max_length=embedder.max_length)["input_ids"]
            counts.append(sum(len(x) for x in ids))
        for embed, texts, times in ((embedder.embed, whole, before), (now_embed, phrases, now)):
            t = time.perf_counter()
            embed(texts)
            times.append(time.perf_counter() - t)

    def pct(xs, q):
        return 1000 * float(np.percentile(xs, q))

    return {
        "dtype": dtype,
        "tokens_before_p50": float(np.percentile(tokens_before, 50)),
        "tokens_before_p95": float(np.percentile(tokens_before, 95)),
        "tokens_p50": float(np.percentile(tokens_now, 50)),
        "tokens_p95": float(np.percentile(tokens_now, 95)),
        "before_p50_ms": pct(before, 50),
        "before_p95_ms": pct(before, 95),
        "now_p50_ms": pct(now, 50),
        "now_p95_ms": pct(now, 95),
        "ratio_p50": pct(now, 50) / max(pct(before, 50), 1e-9),
        "ratio_p95": pct(now, 95) / max(pct(before, 95), 1e-9),
    }


def latency(args, work: Path) -> dict:
    import numpy as np

    from pixtention.curator.embedder import make_embedder
    from pixtention.curator.library import Library, open_library
    from pixtention.selector.query import QUERY_CACHE
    from pixtention.selector.select import lexical_index, select

    base = open_library(work / "civitai" / "store")
    records, vectors = list(base.records), np.asarray(base.vectors)
    embedder = make_embedder(base.embedder_id)
    rows = load_prompts(args.data, None, args.seed + 1)[: args.latency_queries]
    prompts = [_TAG.sub(" ", r["prompt"]) for r in rows]
    embedder.embed(["warm up"])
    out = {"embedding": _embedding_side_by_side(embedder, prompts)}
    for size in args.sizes:
        recs, vecs = _scaled(records, vectors, size, args.seed)
        started = time.perf_counter()
        library = Library.from_records(recs, vecs, embedder)
        cluster_s = time.perf_counter() - started
        started = time.perf_counter()
        lexical_index(library)
        bm25_s = time.perf_counter() - started
        # Unseen prompts after a history of other prompts: each prompt is new, but the cache
        # holds the phrases of the prompts before it (common tags repeat across prompts).
        QUERY_CACHE.clear()
        history = []
        for prompt in prompts:
            t = time.perf_counter()
            select(prompt, library)
            history.append(time.perf_counter() - t)
        cold, typing, cached = [], [], []
        for prompt in prompts:
            QUERY_CACHE.clear()
            t = time.perf_counter()
            select(prompt, library)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            select(prompt + ", blue sky", library)
            typing.append(time.perf_counter() - t)
            t = time.perf_counter()
            select(prompt, library)
            cached.append(time.perf_counter() - t)

        def pct(xs, q):
            return 1000 * float(np.percentile(xs, q))

        out[str(size)] = {
            "clusters": len(library.cluster_labels),
            "cluster_seconds": cluster_s,
            "bm25_build_seconds": bm25_s,
            "history_p50_ms": pct(history, 50),
            "history_p95_ms": pct(history, 95),
            "cold_p50_ms": pct(cold, 50),
            "cold_p95_ms": pct(cold, 95),
            "typing_p50_ms": pct(typing, 50),
            "typing_p95_ms": pct(typing, 95),
            "retrieval_only_p50_ms": pct(cached, 50),
            "retrieval_only_p95_ms": pct(cached, 95),
            "target_p95_ms": TARGET_P95_MS.get(size),
        }
    return out


# ---------------------------------------------------------------- report


def _print(result: dict) -> None:
    q = result["retrieval"]
    print(
        f"Retrieval: {q['prompts']} real prompts, {q['adapters']} adapters "
        f"({q['clusters']} clusters), indexed in {q['index_seconds']:.0f} s"
    )
    head = f"{'variant':<20}{'R@1':>7}{'R@3':>7}{'R@10':>7}{'MRR':>7}{'abstain':>9}{'viol.':>7}"
    print(head + f"{'ms/q':>8}  (ms/q: prompt vectors cached)")
    for name, m in q["variants"].items():
        print(
            f"{name:<20}{m['recall@1']:>7.3f}{m['recall@3']:>7.3f}{m['recall@10']:>7.3f}"
            f"{m['mrr']:>7.3f}{m['abstention']:>9.3f}{m['base_model_violations']:>7d}"
            f"{m['ms_per_query']:>8.1f}"
        )
    d, b = q["variants"]["default"], q["variants"]["bm25"]
    f, h = q["variants"]["dense_flat"], q["variants"]["dense_hierarchical"]
    df = q["variants"]["default_flat"]
    hp = q["variants"][f"dense_hier_1/{PRUNED_SHARE}"]
    dp = q["variants"][f"default_1/{PRUNED_SHARE}"]
    print(
        f"ratios: default/bm25 R@3 {d['recall@3'] / max(b['recall@3'], 1e-9):.2f}, "
        f"MRR {d['mrr'] / max(b['mrr'], 1e-9):.2f}; hierarchical/flat R@3: shipped "
        f"{d['recall@3'] / max(df['recall@3'], 1e-9):.3f}, dense only "
        f"{h['recall@3'] / max(f['recall@3'], 1e-9):.3f}; pruned to 1/{PRUNED_SHARE}: shipped "
        f"{dp['recall@3'] / max(df['recall@3'], 1e-9):.3f}, dense only "
        f"{hp['recall@3'] / max(f['recall@3'], 1e-9):.3f}"
    )
    for check, ok in q["checks"].items():
        mark = ("yes" if ok else "no") if check.startswith("(info)") else ("ok" if ok else "FAIL")
        print(f"  [{mark}] {check}")
    hm = result["handmade"]
    print(
        f"\nHand-made set ({hm['cases']} prompts, sample library): binding accuracy "
        f"{hm['binding_accuracy']:.2f}, abstention accuracy {hm['abstention_accuracy']:.2f}, "
        f"unexpected picks {hm['unexpected_picks']}"
    )
    for failure in hm["failures"]:
        print(f"  miss: {failure}")
    print(f"\nLatency of select() incl. prompt embedding (load average {result['load']}):")
    print(
        "  cold: cache empty for every prompt (the figure for a prompt never seen); history: a\n"
        "  new prompt after the others (its common tags cached); typing: one phrase added;\n"
        "  search: every vector cached"
    )
    print(
        f"{'adapters':>9}{'cold p50':>10}{'cold p95':>10}{'hist p50':>10}{'hist p95':>10}"
        f"{'typing p50':>12}{'typing p95':>12}{'search p50':>12}{'search p95':>12}"
        f"{'target p95':>12}"
    )
    e = result["latency"]["embedding"]
    print(
        f"embedding a prompt, side by side: whole prompt + all phrases in float32 "
        f"({e['tokens_before_p50']:.0f}/{e['tokens_before_p95']:.0f} tokens p50/p95) "
        f"{e['before_p50_ms']:.1f}/{e['before_p95_ms']:.1f} ms; retrievable phrases in "
        f"{e['dtype']} ({e['tokens_p50']:.0f}/{e['tokens_p95']:.0f} tokens) "
        f"{e['now_p50_ms']:.1f}/{e['now_p95_ms']:.1f} ms (ratio p50 {e['ratio_p50']:.2f}, "
        f"p95 {e['ratio_p95']:.2f})"
    )
    for size, m in result["latency"].items():
        if size == "embedding":
            continue
        target = f"{m['target_p95_ms']:.0f}" if m["target_p95_ms"] else "-"
        print(
            f"{size:>9}{m['cold_p50_ms']:>10.1f}{m['cold_p95_ms']:>10.1f}"
            f"{m['history_p50_ms']:>10.1f}{m['history_p95_ms']:>10.1f}"
            f"{m['typing_p50_ms']:>12.1f}{m['typing_p95_ms']:>12.1f}"
            f"{m['retrieval_only_p50_ms']:>12.1f}{m['retrieval_only_p95_ms']:>12.1f}{target:>12}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixtention bench selector")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="300 prompts, a subsampled library, latency at 1k and 10k (about 9 minutes at "
        "load 10 on 2 cores for 2.5 minutes of CPU)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="keep the libraries here")
    parser.add_argument("--prompts", type=int, default=None, help="real prompts to evaluate")
    parser.add_argument("--sizes", default=None, help="latency library sizes, e.g. 1000,10000")
    parser.add_argument("--latency-queries", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    need = missing_data("selector", args.data, tuple(DATA_FILES))
    if need:
        print(need, file=sys.stderr)
        return 2
    args.prompts = args.prompts or (300 if args.quick else 3000)
    args.latency_queries = args.latency_queries or (40 if args.quick else 200)
    sizes = args.sizes or ("1000,10000" if args.quick else "1000,10000,100000")
    args.sizes = [int(s) for s in sizes.split(",")]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="pixtention-bench-selector-") as tmp:
        work = args.work or Path(tmp)
        result = {
            "load": round(os.getloadavg()[0], 1),
            "retrieval": retrieval_quality(args, work),
            "handmade": handmade(work),
            "latency": latency(args, work),
        }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print(result)
    checks = result["retrieval"]["checks"]
    ok = all(v for k, v in checks.items() if not k.startswith("(info)"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
