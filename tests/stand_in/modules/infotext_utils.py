"""``modules.infotext_utils``: quoting of ``Key: value`` pairs and parsing them back."""

from __future__ import annotations

import json
import re

re_param = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def quote(text) -> str:
    text = str(text)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def parse_generation_parameters(x: str) -> dict[str, str]:
    """``prompt\\nNegative prompt: …\\nSteps: 20, Key: value, …`` → dict (last line only)."""
    res: dict[str, str] = {}
    *lines, lastline = x.strip().split("\n")
    prompt, negative = [], []
    in_negative = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        (negative if in_negative else prompt).append(line)
    res["Prompt"] = "\n".join(prompt)
    res["Negative prompt"] = "\n".join(negative)
    for key, value in re_param.findall(lastline):
        res[key.strip()] = unquote(value)
    return res
