"""An offline CLIP tokenizer, built from the BPE vocabulary that ``open-clip-torch`` ships.

The ids equal OpenAI CLIP's (vocab 49408), so token positions computed with it are the ones
the WebUI's ``tokenize_line`` produces for SD1 models.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from pathlib import Path

from transformers import CLIPTokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character table (CLIP uses the same)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def _bpe_vocab_path() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "open-clip-torch is not installed (pip install --no-deps open-clip-torch)"
        )
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def write_clip_tokenizer_files(folder: Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for ``CLIPTokenizer`` into ``folder``."""
    with gzip.open(_bpe_vocab_path()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


@functools.lru_cache(maxsize=1)
def clip_tokenizer(cache_dir: str | None = None) -> CLIPTokenizer:
    """The CLIP tokenizer, built once per process into ``cache_dir`` (a temp folder by default)."""
    import tempfile

    folder = Path(cache_dir or tempfile.mkdtemp(prefix="pixtention-clip-tok-"))
    write_clip_tokenizer_files(folder)
    # from_pretrained reads vocab.json/merges.txt the same way on transformers 4.x and 5.x (5.x's
    # constructor no longer takes the file paths as keyword arguments).
    return CLIPTokenizer.from_pretrained(
        str(folder), model_max_length=77, pad_token="<|endoftext|>", local_files_only=True
    )
