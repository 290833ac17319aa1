"""Latency of ``select()`` including the prompt's embedding, at 1k/10k/100k adapters scaled
from the real library's documents: wall time and CPU time of the call (the query thread's
``thread_time``: what the call costs, whatever else the machine runs)."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

from bench.selector_data import TAG, load_prompts

TARGET_P95_MS = {10_000: 30.0, 100_000: 100.0}  # CPU time of a cold call, issue 14
KINDS = ("cold_plain", "cold", "history", "typing", "retrieval_only")


def timed(prompt: str, library) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``select()``, measured on the query thread it runs on."""
    from pixtention.selector.select import select
    from pixtention.selector.worker import on_query_thread

    def run() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        select(prompt, library)
        return time.perf_counter() - wall, time.thread_time() - cpu

    return on_query_thread(run)


def forget_prompts(library) -> None:
    """Forget every prompt seen so far: their phrase vectors and the binding's per-prompt word
    runs, words and clauses, so a "cold" prompt pays for all of them (what the library itself holds — its
    vocabulary, its words' document frequencies, its records' binding facts — stays)."""
    from pixtention.selector import prompt_reading
    from pixtention.selector.query import QUERY_CACHE

    QUERY_CACHE.clear()
    prompt_reading.forget()


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
    """Embedding each prompt's retrievable phrases at the query precision on the query thread,
    interleaved, CPU time of the thread: in packed rows (before) against flat (now, see
    :class:`~pixtention.curator.embedder.FlatBert`); and the cosine of the query vectors to
    float32 ones, the space the index is in."""
    import numpy as np

    from pixtention.curator.precision import autocast_cpu, native_dtype
    from pixtention.selector.prompt import parse_prompt
    from pixtention.selector.query import distinct_phrases
    from pixtention.selector.worker import on_query_thread

    _, tokenizer = embedder._load()
    dtype = native_dtype(embedder)
    rows = copy.copy(embedder)  # the same model, every call in rows
    rows.flat_max_tokens = 0

    def cpu_ms(embed, texts) -> tuple[float, np.ndarray]:
        def run() -> tuple[float, np.ndarray]:
            started = time.thread_time()
            with autocast_cpu(dtype):
                vectors = embed(texts)
            return 1000 * (time.thread_time() - started), vectors

        return on_query_thread(run)

    before, now, tokens, cosines = [], [], [], []
    for n, prompt in enumerate(prompts):
        phrases = [p.text for p in distinct_phrases(parse_prompt(prompt))]
        if not phrases:  # only boilerplate: nothing to embed
            continue
        ids = tokenizer(phrases, truncation=True, max_length=embedder.max_length)["input_ids"]
        tokens.append(sum(len(x) for x in ids))
        if n % 2:  # each goes first half of the time: the second call finds warmer caches
            before.append(cpu_ms(rows.embed, phrases)[0])
        took, vectors = cpu_ms(embedder.embed, phrases)
        now.append(took)
        if not n % 2:
            before.append(cpu_ms(rows.embed, phrases)[0])
        cosines.append(float((vectors * rows.embed(phrases)).sum(axis=1).min()))

    def pct(xs, q):
        return float(np.percentile(xs, q))

    return {
        "dtype": dtype,
        "tokens_p50": pct(tokens, 50),
        "tokens_p95": pct(tokens, 95),
        "before_cpu_p50_ms": pct(before, 50),
        "before_cpu_p95_ms": pct(before, 95),
        "now_cpu_p50_ms": pct(now, 50),
        "now_cpu_p95_ms": pct(now, 95),
        "ratio_p50": pct(now, 50) / max(pct(before, 50), 1e-9),
        "ratio_p95": pct(now, 95) / max(pct(before, 95), 1e-9),
        "min_cosine_to_float32": min(cosines),
    }


def latency(args, work: Path) -> dict:
    import numpy as np

    from pixtention.curator.embedder import make_embedder
    from pixtention.curator.library import Library, open_library
    from pixtention.selector import vocabulary
    from pixtention.selector.prompt import parse_prompt
    from pixtention.selector.query import QUERY_CACHE, distinct_phrases
    from pixtention.selector.select import lexical_index

    base = open_library(work / "civitai" / "store")
    records, vectors = list(base.records), np.asarray(base.vectors)
    embedder = make_embedder(base.embedder_id)
    rows = load_prompts(args.data, None, args.seed + 1)[: args.latency_queries]
    prompts = [TAG.sub(" ", r["prompt"]) for r in rows]
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
        # The library's own tags and triggers, embedded in memory (the WebUI keeps them on disk).
        vocab = vocabulary.warm(library, wait=True)
        phrases = [p.text for prompt in prompts for p in distinct_phrases(parse_prompt(prompt))]
        # Unseen prompts after a history of other prompts: each prompt is new, but the cache
        # holds the phrases of the prompts before it (common tags repeat across prompts).
        QUERY_CACHE.clear()
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
        for prompt in prompts:
            times["history"].append(timed(prompt, library))
        for prompt in prompts:  # cold without and with the vocabulary, interleaved
            forget_prompts(library)
            with vocabulary.detached(library):
                times["cold_plain"].append(timed(prompt, library))
            forget_prompts(library)
            times["cold"].append(timed(prompt, library))
            times["typing"].append(timed(prompt + ", blue sky", library))
            times["retrieval_only"].append(timed(prompt, library))

        def pct(xs, q):
            return 1000 * float(np.percentile(xs, q))

        row = {
            "clusters": len(library.cluster_labels),
            "cluster_seconds": cluster_s,
            "bm25_build_seconds": bm25_s,
            "vocabulary_items": len(vocab),
            "vocabulary_seconds": vocab.seconds,
            "vocabulary_mb": len(vocab) * vectors.shape[1] * 4 / 2**20,
            "vocabulary_phrase_hits": sum(vocab.find(t) is not None for t in phrases)
            / max(len(phrases), 1),
            "target_p95_ms": TARGET_P95_MS.get(size),
        }
        for kind, pairs in times.items():
            wall, cpu = [w for w, _ in pairs], [c for _, c in pairs]
            row |= {f"{kind}_p50_ms": pct(wall, 50), f"{kind}_p95_ms": pct(wall, 95),
                    f"{kind}_cpu_p50_ms": pct(cpu, 50), f"{kind}_cpu_p95_ms": pct(cpu, 95)}  # fmt: skip
        out[str(size)] = row
    return out


def print_latency(result: dict, load: float) -> None:
    print(f"\nLatency of select() incl. prompt embedding (load average {load}), CPU time of the")
    print(
        "call (wall in brackets). cold: every cache of earlier prompts emptied (a prompt never\n"
        "seen: its phrase vectors, its words' document frequencies, its word runs; the target\n"
        "is its CPU p95) but the library's vocabulary warm: the vectors of the library's\n"
        "own tag and trigger phrases, embedded once per library (never other prompts' phrases);\n"
        "cold novoc: the same prompt with the vocabulary empty too (before it existed), run\n"
        "interleaved with cold; history: a new prompt after the others (its common tags\n"
        "cached); typing: one phrase added; search: every vector cached"
    )
    e = result["embedding"]
    print(
        f"embedding a prompt's phrases in {e['dtype']} ({e['tokens_p50']:.0f}/"
        f"{e['tokens_p95']:.0f} tokens p50/p95), CPU p50/p95, side by side: packed rows "
        f"{e['before_cpu_p50_ms']:.1f}/{e['before_cpu_p95_ms']:.1f} ms, flat "
        f"{e['now_cpu_p50_ms']:.1f}/{e['now_cpu_p95_ms']:.1f} ms (ratio p50 {e['ratio_p50']:.2f}, "
        f"p95 {e['ratio_p95']:.2f}); cosine to float32 ≥ {e['min_cosine_to_float32']:.5f}"
    )
    names = {"cold_plain": "cold novoc", "cold": "cold", "history": "hist", "typing": "typing",
             "retrieval_only": "search"}  # fmt: skip
    print(f"{'adapters':>9}" + "".join(f"{n + ' p50':>15}{n + ' p95':>15}" for n in names.values())
          + f"{'target p95':>12}")  # fmt: skip
    for size, m in result.items():
        if size == "embedding":
            continue
        target = f"{m['target_p95_ms']:.0f}" if m["target_p95_ms"] else "-"
        cells = "".join(
            f"{m[f'{k}_cpu_p{q}_ms']:>7.1f} ({m[f'{k}_p{q}_ms']:>5.1f})"
            for k in names
            for q in (50, 95)
        )
        print(f"{size:>9}{cells}{target:>12}")
    for size, m in result.items():
        if size != "embedding":
            print(
                f"vocabulary at {size}: {m['vocabulary_items']} items ({m['vocabulary_mb']:.0f} "
                f"MB) built in {m['vocabulary_seconds']:.1f} s; holds "
                f"{100 * m['vocabulary_phrase_hits']:.0f} % of the prompts' distinct phrases"
            )
    for check, ok in latency_checks(result).items():
        print(f"  [{'ok' if ok else 'FAIL'}] {check}")


def latency_checks(result: dict) -> dict[str, bool]:
    """The targets: CPU p95 of a cold call (a prompt never seen, embedding included)."""
    return {
        f"select_cold_cpu_p95_at_{size}_within_{target:.0f}ms": result[str(size)]["cold_cpu_p95_ms"]
        <= target
        for size, target in TARGET_P95_MS.items()
        if str(size) in result
    }
