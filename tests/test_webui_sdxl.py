"""SDXL models in both WebUIs: prompts tokenise through CLIP-L, the encoder whose token stream
both SDXL text encoders share position by position (webui-reference §8)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pixtention.webui.a1111 import A1111Flow
from pixtention.webui.forge import ForgeFlow
from tests.stand_in.stand_in_models import TextProcessing

PROMPT = "a (red:1.2) dragon BREAK a neon city"


class OpenClipG:
    """The second SDXL encoder: tokenising through it would be a bug here."""

    def tokenize_line(self, line: str):
        raise AssertionError("SDXL prompts must tokenise through CLIP-L (embedders[0])")


def expected(clip_l: TextProcessing) -> list[list[int]]:
    return [list(chunk.tokens) for chunk in clip_l.tokenize_line(PROMPT)[0]]


def test_a1111_sdxl_uses_the_conditioners_clip_l() -> None:
    clip_l = TextProcessing(8)
    # A1111's hijack sets cond_stage_model to the whole GeneralConditioner when SDXL has two
    # text encoders; the conditioner itself has no tokenize_line.
    conditioner = SimpleNamespace(embedders=[clip_l, OpenClipG()])
    p = SimpleNamespace(
        sd_model=SimpleNamespace(cond_stage_model=conditioner, conditioner=conditioner)
    )
    tokens = A1111Flow(None).tokenize_line(p)(PROMPT)
    assert tokens == expected(clip_l) and len(tokens) == 2 and all(len(c) == 77 for c in tokens)


def test_a1111_single_encoder_model_tokenises_through_cond_stage_model() -> None:
    encoder = TextProcessing(8)
    p = SimpleNamespace(sd_model=SimpleNamespace(cond_stage_model=encoder))
    assert A1111Flow(None).tokenize_line(p)(PROMPT) == expected(encoder)


@pytest.mark.parametrize("sdxl", [False, True])
def test_forge_tokenises_through_its_text_processing_engine(sdxl: bool) -> None:
    clip_l = TextProcessing(8)
    if sdxl:
        model = SimpleNamespace(
            text_processing_engine_l=clip_l, text_processing_engine_g=OpenClipG()
        )
    else:
        model = SimpleNamespace(text_processing_engine=clip_l)
    assert ForgeFlow(None).tokenize_line(SimpleNamespace(sd_model=model))(PROMPT) == expected(
        clip_l
    )
