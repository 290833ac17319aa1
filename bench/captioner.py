"""Captioner benchmark: what captions cost per preview, and how big the default model is.

The default captioner (BLIP base) cannot be downloaded on an offline machine, so this measures
its architecture: ``BlipConfig()``'s defaults are BLIP base's sizes (ViT-B/16 at 384 px, BERT-base
text decoder, 30,524 tokens), built with random weights and run through the real
``TransformersCaptioner.caption`` path on the sample library's previews. Random weights never
emit the end token, so every caption runs to the 30-token cap: the figure is an upper bound on
a trained model's cost (which stops at the caption's end). The parameter count gives the
download size (float32).

    python -m pixtention bench captioner [--quick] [--json] [--previews N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _previews(folder: Path, count: int) -> list[str]:
    """``count`` sample-library previews (128×128 PNG, as the sample writes them)."""
    from pixtention.library.sample_art import draw_preview
    from pixtention.library.sample_themes import THEMES

    paths = []
    for i in range(count):
        path = folder / f"preview_{i}.png"
        draw_preview(THEMES[i % len(THEMES)], seed=i).save(path)
        paths.append(str(path))
    return paths


def _tokenizer(folder: Path, vocab_size: int):
    """A BERT tokenizer of BLIP's vocabulary size (placeholder words: only decoding uses it)."""
    from transformers import BertTokenizer

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [f"w{i}" for i in range(vocab_size - len(special))]
    (folder / "vocab.txt").write_text("\n".join(special + words) + "\n", encoding="utf-8")
    return BertTokenizer(str(folder / "vocab.txt"))


def _random_model(cls, config):
    """``cls(config)`` with plain N(0, 0.02) weights: transformers' own initialisation of 247 M
    parameters took minutes on a loaded machine and does not change what a forward costs."""
    import contextlib

    import torch

    try:
        from transformers.modeling_utils import no_init_weights
    except ImportError:  # moved in some releases: initialise the slow way
        no_init_weights = contextlib.nullcontext
    with no_init_weights():
        model = cls(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02, generator=generator)
    return model.eval()


def measure(previews: int, batch: int, max_new_tokens: int) -> dict:
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    from pixtention.curator.captioner import DEFAULT_CAPTIONER, TransformersCaptioner

    config = BlipConfig()
    with tempfile.TemporaryDirectory(prefix="pixtention-bench-captioner-") as tmp:
        folder = Path(tmp)
        tokenizer = _tokenizer(folder, config.text_config.vocab_size)
        processor = BlipProcessor(image_processor=BlipImageProcessor(), tokenizer=tokenizer)
        started = time.perf_counter()
        model = _random_model(BlipForConditionalGeneration, config)
        build_s = time.perf_counter() - started
        parameters = sum(p.numel() for p in model.parameters())
        captioner = TransformersCaptioner(
            DEFAULT_CAPTIONER, batch_size=batch, max_new_tokens=max_new_tokens
        )
        captioner._processor, captioner._model = processor, model  # the weights stand in
        paths = _previews(folder, previews)
        captioner.caption(paths[:1])  # warm-up
        started, cpu = time.perf_counter(), time.process_time()
        captions = captioner.caption(paths)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    tokens = [len(c.split()) for c in captions]
    return {
        "model": f"{DEFAULT_CAPTIONER} architecture, random weights",
        "parameters": parameters,
        "float32_mb": round(parameters * 4 / 1e6, 1),
        "previews": previews,
        "batch": batch,
        "max_new_tokens": max_new_tokens,
        "mean_tokens_per_caption": round(sum(tokens) / len(tokens), 1),
        "torch_threads": torch.get_num_threads(),
        "seconds_per_preview": round(wall / previews, 3),
        "cpu_seconds_per_preview": round(cpu / previews, 3),
        "random_init_s": round(build_s, 1),
        "load_average": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixtention bench captioner")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="8 previews instead of 32: about 2 minutes of CPU, 8 minutes wall at load 10",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--previews", type=int, default=None, help="previews captioned")
    parser.add_argument("--batch", type=int, default=8, help="previews per batch (default 8)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(args.previews or (8 if args.quick else 32), args.batch, 30)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(
        f"{result['model']}: {result['parameters'] / 1e6:.1f} M parameters, "
        f"{result['float32_mb']:.0f} MB in float32 (the download)"
    )
    print(
        f"captioning: {result['seconds_per_preview']:.2f} s per preview "
        f"(cpu {result['cpu_seconds_per_preview']:.2f} s; {result['previews']} previews in "
        f"batches of {result['batch']}, {result['mean_tokens_per_caption']:.0f} tokens each = "
        f"the cap, so an upper bound; {result['torch_threads']} torch threads, "
        f"load {result['load_average']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
