"""``modules.api.api``: ``/sdapi/v1/txt2img`` without the HTTP layer.

As ``Api.text2imgapi``: the request's fields become a ``StableDiffusionProcessingTxt2Img`` (on the
loaded model), ``alwayson_scripts`` become the script args (the UI's defaults, then each named
script's request args over them), ``process_images`` runs with ``p.is_api`` set and the args as a
tuple, and the answer is ``{"images": [base64 PNG, …], "parameters": request, "info":
processed.js()}`` — ``info`` is a JSON string, in which callables are null.
"""

from __future__ import annotations

import base64
import io
from contextlib import closing
from typing import Any

from modules import processing, scripts, shared

NOT_PROCESSING_FIELDS = (
    "script_name",
    "script_args",
    "alwayson_scripts",
    "send_images",
    "save_images",
)


def text2imgapi(request: dict[str, Any], script_runner: scripts.ScriptRunner) -> dict[str, Any]:
    args = {k: v for k, v in request.items() if k not in NOT_PROCESSING_FIELDS}
    script_args = scripts.api_script_args(script_runner, request.get("alwayson_scripts") or {})
    with closing(
        processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **args)
    ) as p:
        p.is_api = True
        p.scripts = script_runner
        p.script_args = tuple(script_args)
        processed = processing.process_images(p)
    images = [encode_pil_to_base64(image) for image in processed.images]
    if not request.get("send_images", True):
        images = []
    return {"images": images, "parameters": request, "info": processed.js()}


def encode_pil_to_base64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
