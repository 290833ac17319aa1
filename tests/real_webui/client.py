"""The test client of the end-to-end suite: small txt2img requests, decoded images and
infotexts, and the console lines the server wrote while each request ran."""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from tests.real_webui.harness import RealWebui, lines_since

STEPS = 3
SIZE = 64
SEED = 1234
PROMPT = "a tabby cat, a red sports car, ink wash painting"


# -- requests -----------------------------------------------------------------------------------


def payload(prompt: str = PROMPT, pixtention: Any = None, **extra: Any) -> dict[str, Any]:
    """A small txt2img request; ``pixtention`` is the ``args`` value (list or [dict]) or None."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": "",
        "steps": STEPS,
        "width": SIZE,
        "height": SIZE,
        "seed": SEED,
        "subseed_strength": 0,
        "sampler_name": "Euler",
        "scheduler": "Automatic",  # named, or the WebUI logs an "autocorrection" per request
        "cfg_scale": 7,
        "batch_size": 1,
        "n_iter": 1,
        "send_images": True,
        "save_images": False,
    }
    if pixtention is not None:
        body["alwayson_scripts"] = {"PixTention": {"args": pixtention}}
    body.update(extra)
    return body


@dataclass
class Result:
    images: list  # numpy uint8 arrays, H×W×3, in the response's order
    info: dict
    console: list[str]  # console lines written while the request ran

    def __repr__(self) -> str:  # keep assertion messages readable (no pixel arrays)
        shapes = [tuple(image.shape) for image in self.images]
        return f"Result(images={shapes}, infotexts={self.infotexts!r})"

    @property
    def infotexts(self) -> list[str]:
        return self.info.get("infotexts") or []

    def pixtention(self, index: int = 0) -> dict | None:
        """The ``PixTention`` entry of image ``index``'s infotext, decoded (None if absent)."""
        return infotext_entry(self.infotexts[index]) if index < len(self.infotexts) else None


def infotext_params(infotext: str) -> dict[str, str]:
    """The ``Key: value, Key: "quoted, value"`` pairs of an infotext's last line (values that
    hold commas or quotes are JSON strings there)."""
    line = infotext.strip().splitlines()[-1] if infotext.strip() else ""
    params: dict[str, str] = {}
    i = 0
    while i < len(line):
        colon = line.find(":", i)
        if colon < 0:
            break
        key = line[i:colon].strip()
        j = colon + 1
        while j < len(line) and line[j] == " ":
            j += 1
        if j < len(line) and line[j] == '"':
            value, end = json.JSONDecoder().raw_decode(line, j)
        else:
            end = line.find(",", j)
            end = len(line) if end < 0 else end
            value = line[j:end].strip()
        params[key] = value
        comma = line.find(",", end)
        i = len(line) if comma < 0 else comma + 1
    return params


def infotext_entry(infotext: str, key: str = "PixTention") -> dict | None:
    """One infotext entry decoded from JSON (None if absent, ``{"unparsed": …}`` if not JSON)."""
    value = infotext_params(infotext).get(key)
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return {"unparsed": value}


def decode_image_bytes(data: bytes):
    """PNG (or any PIL format) bytes → H×W×3 uint8 array."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).copy()


def decode_image(data: str):
    return decode_image_bytes(base64.b64decode(data))


class Client:
    def __init__(self, server: RealWebui) -> None:
        import httpx

        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=900)

    def console_offset(self) -> int:
        return len(self.server.console())

    def txt2img(self, body: dict[str, Any], *, expect: int = 200) -> Result:
        offset = self.console_offset()
        response = self.http.post("/sdapi/v1/txt2img", json=body)
        time.sleep(0.3)  # the console file is unbuffered, but let the last lines land
        console = lines_since(self.server.console(), offset)
        assert response.status_code == expect, (
            f"txt2img answered {response.status_code}: {response.text[:2000]}\n"
            + "\n".join(console[-40:])
        )
        data = response.json()
        info = json.loads(data["info"]) if isinstance(data.get("info"), str) else {}
        return Result([decode_image(d) for d in data.get("images") or []], info, console)

    def get(self, path: str, **kwargs):
        response = self.http.get(path, **kwargs)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response
