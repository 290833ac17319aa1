"""The models a CLI process uses, each loaded once however many commands it runs.

``demo`` chains index and several suggests in one process; each used to open its own embedder
and load MiniLM again (five loads, five loading bars). Embedders are kept here by model id and
device, and the Hugging Face libraries are asked not to draw loading bars or chatter on stderr.
``suggest`` embeds its phrases with the default model's numpy twin when it can, so a call does
not pay for importing torch and transformers.
"""

from __future__ import annotations

import sys
from typing import Any

_EMBEDDERS: dict[tuple[str, str], Any] = {}


def say(message: str) -> None:
    """One ``pixtention:`` line on stderr."""
    print(f"pixtention: {message}", file=sys.stderr, flush=True)


def quiet_hub_libraries() -> None:
    """No weight-loading bars or info/warning chatter from transformers and huggingface_hub."""
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    disable_progress_bars()


def embedder(spec: str | None = None, *, device: str = "cpu") -> Any:
    """The process's embedder for ``spec`` (a model id or folder; None: the default MiniLM)."""
    from pixtention.curator.embedder import DEFAULT_EMBEDDER, make_embedder

    key = (spec or DEFAULT_EMBEDDER, device)
    if key not in _EMBEDDERS:
        quiet_hub_libraries()
        _EMBEDDERS[key] = make_embedder(spec, device=device)
    return _EMBEDDERS[key]


def query_embedder(spec: str | None = None) -> Any:
    """The embedder ``suggest`` embeds a prompt's phrases with: for the default model its numpy
    twin (no torch import: most of a ``suggest`` call otherwise), else :func:`embedder`."""
    from pixtention.cli.query_embedder import NumpyMiniLM, packaged_minilm_folder
    from pixtention.curator.embedder import DEFAULT_EMBEDDER

    if spec not in (None, "", "default", DEFAULT_EMBEDDER):
        return embedder(spec)
    key = (DEFAULT_EMBEDDER, "numpy")
    if key not in _EMBEDDERS:
        folder = packaged_minilm_folder()
        _EMBEDDERS[key] = NumpyMiniLM(folder) if folder else embedder(spec)
    return _EMBEDDERS[key]


def _before_download(message: str) -> None:
    """Say what is downloaded; a person at a terminal then sees the download's own bar."""
    say(message)
    if sys.stderr.isatty():
        import transformers

        transformers.utils.logging.enable_progress_bar()


def captioner(spec: str | None, *, device: str = "cpu") -> Any:
    """A captioner that announces a download on stderr before it starts."""
    from pixtention.curator.captioner import TransformersCaptioner

    return TransformersCaptioner(spec, device=device, notify=_before_download)
