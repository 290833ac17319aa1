"""Preview-image captioners: a vision-language model that says what an adapter's previews show.

The default is BLIP (``Salesforce/blip-image-captioning-base``) through ``transformers``'
``BlipForConditionalGeneration`` + ``BlipProcessor``, which exist unchanged in 4.30, 4.46 and 5.x;
any other image-to-text model id loads through the auto classes. Captions are optional: when the
model cannot be loaded the indexer carries on without them and says so once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"


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


def _auto_vision_to_text():
    """The auto class for image-to-text generation (renamed across transformers versions)."""
    import transformers

    for name in ("AutoModelForVision2Seq", "AutoModelForImageTextToText"):
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise CaptionerError("this transformers version has no image-to-text auto model class")


def _open_rgb(path: str):
    from PIL import Image

    with Image.open(path) as img:
        img.draft("RGB", (512, 512))  # JPEG: decode at reduced size, much faster
        return img.convert("RGB")


class TransformersCaptioner:
    """Captions images in batches on ``device``; the model is loaded on first use."""

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        max_new_tokens: int = 30,
    ) -> None:
        self.id = model or DEFAULT_CAPTIONER
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
                from transformers import AutoConfig

                model_type = AutoConfig.from_pretrained(self.id).model_type
                if model_type == "blip":
                    from transformers import BlipForConditionalGeneration, BlipProcessor

                    processor = BlipProcessor.from_pretrained(self.id)
                    model = BlipForConditionalGeneration.from_pretrained(self.id)
                else:
                    from transformers import AutoProcessor

                    processor = AutoProcessor.from_pretrained(self.id)
                    model = _auto_vision_to_text().from_pretrained(self.id)
            except CaptionerError:
                raise
            except Exception as exc:  # offline, missing weights, unknown architecture …
                raise CaptionerError(
                    f"cannot load captioning model {self.id!r}: {_first_line(exc)}"
                ) from exc
            self._processor = processor
            self._model = model.to(self.device).eval()

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
