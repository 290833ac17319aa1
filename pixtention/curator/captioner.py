"""Preview-image captioners: a vision-language model that says what an adapter's previews show.

The default is BLIP (``Salesforce/blip-image-captioning-base``) through ``transformers``'
``BlipForConditionalGeneration`` + ``BlipProcessor``, which exist unchanged in 4.30, 4.46 and 5.x;
any other image-to-text model id loads through the auto classes. Captions are optional: when the
model cannot be loaded the indexer carries on without them and says so once.

A hub model id is looked up in the local Hugging Face cache first and then loaded with no
network access at all; only a model missing from the cache is downloaded, and only when offline
mode (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) is off and the hub answers one quick probe —
after saying what will be downloaded and how big. So an offline first index costs no hub retries.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"
# What a first use downloads: BLIP base is 247.4 M float32 parameters (bench captioner counts).
DOWNLOAD_SIZES = {DEFAULT_CAPTIONER: "about 990 MB"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PROBE_TIMEOUT = 5.0  # seconds for the one request that checks the hub answers
_TRUE = {"1", "on", "yes", "true"}

log = logging.getLogger("pixtention.curator")


@runtime_checkable
class Captioner(Protocol):
    """Anything that captions image files; ``id`` names the model (captions are cached by it)."""

    id: str

    def caption(self, images: Sequence[str]) -> list[str]: ...


class CaptionerError(Exception):
    """The captioning model cannot be loaded; ``str()`` says which and why in one line."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def offline_mode() -> bool:
    """Whether the user asked the Hugging Face libraries not to use the network."""
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag.strip().lower() in _TRUE for flag in flags)


def hub_cache_dir() -> str:
    """The Hugging Face cache folder the libraries use (``HF_HUB_CACHE``, ``HF_HOME``, …)."""
    from huggingface_hub import constants

    return str(getattr(constants, "HF_HUB_CACHE", None) or constants.HUGGINGFACE_HUB_CACHE)


def in_hub_cache(repo_id: str) -> bool:
    """Whether the config and the weights of ``repo_id`` are in the local cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, name, cache_dir=hub_cache_dir()), str)

    return cached("config.json") and any(cached(name) for name in WEIGHT_FILES)


def hub_unreachable(timeout: float = PROBE_TIMEOUT) -> str | None:
    """``None`` when the hub answers one request within ``timeout``, else why not (one line)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/api/models", method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered: the hub is there
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach {endpoint} ({reason})"
    return None


def _auto_vision_to_text():
    """The auto class for image-to-text generation (renamed across transformers versions)."""
    import transformers

    for name in ("AutoModelForVision2Seq", "AutoModelForImageTextToText"):
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise CaptionerError("this transformers version has no image-to-text auto model class")


def _open_rgb(path: str):
    """The preview, bounded (pixel cap before decoding, shrunk to 512); any failure, a
    decompression bomb included, is a ``PreviewError`` (a ``ValueError``)."""
    from pixtention.library.previews import open_preview

    return open_preview(path, 512)


class TransformersCaptioner:
    """Captions images in batches on ``device``; the model is loaded on first use."""

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        max_new_tokens: int = 30,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.id = model or DEFAULT_CAPTIONER
        self.notify = notify or log.warning  # says a download is starting, before it starts
        self.device = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self._model = None
        self._processor = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load model and processor now; raises :class:`CaptionerError` when that is impossible."""
        with self._lock:
            if self._model is not None:
                return
            try:
                local = self._local_only()
                from transformers import AutoConfig

                # the folder in_hub_cache looked in: transformers 4.30 ignores HF_HUB_CACHE
                kw: dict = {"cache_dir": hub_cache_dir()}
                if local:
                    kw["local_files_only"] = True
                model_type = AutoConfig.from_pretrained(self.id, **kw).model_type
                if model_type == "blip":
                    from transformers import BlipForConditionalGeneration, BlipProcessor

                    processor = BlipProcessor.from_pretrained(self.id, **kw)
                    model = BlipForConditionalGeneration.from_pretrained(self.id, **kw)
                else:
                    from transformers import AutoProcessor

                    processor = AutoProcessor.from_pretrained(self.id, **kw)
                    model = _auto_vision_to_text().from_pretrained(self.id, **kw)
            except CaptionerError:
                raise
            except Exception as exc:  # offline, missing weights, unknown architecture …
                raise CaptionerError(
                    f"cannot load captioning model {self.id!r}: {_first_line(exc)}"
                ) from exc
            self._processor = processor
            self._model = model.to(self.device).eval()

    def _local_only(self) -> bool:
        """True when the model is on disk (a folder, or in the cache): load it without network.

        Otherwise raise :class:`CaptionerError` offline or when the hub does not answer, and
        say what is about to be downloaded before a download starts.
        """
        if os.path.isdir(self.id) or in_hub_cache(self.id):
            return True
        size = DOWNLOAD_SIZES.get(self.id, "size unknown")
        what = f"captioning model {self.id!r} ({size} download)"
        if offline_mode():
            raise CaptionerError(
                f"{what} is not in the Hugging Face cache {hub_cache_dir()} and offline mode is "
                "on (HF_HUB_OFFLINE); index once online to fetch it, or pass --no-captions"
            )
        reason = hub_unreachable()
        if reason:
            raise CaptionerError(
                f"{what} is not in the Hugging Face cache and {reason}; set HF_HUB_OFFLINE=1 to "
                "skip this check, or pass --no-captions"
            )
        self.notify(f"downloading {what} into {hub_cache_dir()} once; --no-captions skips captions")
        return False

    def caption(self, images: Sequence[str]) -> list[str]:
        """One caption per image path, in order; an unreadable image gets ``""``."""
        import torch

        self.load()
        captions = [""] * len(images)
        for start in range(0, len(images), self.batch_size):
            loaded = []
            for i in range(start, min(start + self.batch_size, len(images))):
                try:
                    loaded.append((i, _open_rgb(images[i])))
                except (OSError, ValueError):
                    continue  # a broken preview should not stop the others
            if not loaded:
                continue
            inputs = self._processor(images=[img for _, img in loaded], return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            with torch.inference_mode():
                tokens = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens)
            texts = self._processor.batch_decode(tokens, skip_special_tokens=True)
            for (i, _), text in zip(loaded, texts):
                captions[i] = " ".join(text.split())
        return captions


def make_captioner(spec: str | Captioner | None = None, *, device: str = "cpu") -> Captioner:
    """A captioner from a model id / local folder, an existing captioner, or None (default)."""
    if spec is not None and not isinstance(spec, str):
        if not isinstance(spec, Captioner):
            raise CaptionerError(f"{spec!r} is not a captioner (needs .id and .caption(images))")
        return spec
    return TransformersCaptioner(spec, device=device)
