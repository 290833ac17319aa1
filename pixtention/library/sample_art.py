"""Small preview pictures for the sample library, drawn with PIL to fit each theme.

They are placeholders a person can tell apart at a glance (and a captioner has something to
look at), not art: a background in the theme's palette and a few shapes for its motif.
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw, ImageFilter

from pixtention.library.sample_themes import Theme

SIZE = 128


def _background(draw: ImageDraw.ImageDraw, top: str, bottom: str) -> None:
    """A vertical two-colour gradient."""
    a = tuple(int(top[i : i + 2], 16) for i in (1, 3, 5))
    b = tuple(int(bottom[i : i + 2], 16) for i in (1, 3, 5))
    for y in range(SIZE):
        t = y / (SIZE - 1)
        draw.line([(0, y), (SIZE, y)], fill=tuple(round(x + (z - x) * t) for x, z in zip(a, b)))


def _motif(draw: ImageDraw.ImageDraw, motif: str, colors: tuple[str, ...], rng: random.Random):
    c = colors
    if motif == "watercolor":
        for _ in range(9):
            x, y, r = rng.randint(10, 118), rng.randint(10, 118), rng.randint(12, 30)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=rng.choice(c[:3]))
    elif motif == "pixels":
        for gx in range(0, SIZE, 16):
            for gy in range(0, SIZE, 16):
                if rng.random() < 0.45:
                    draw.rectangle([gx, gy, gx + 15, gy + 15], fill=rng.choice(c))
    elif motif == "film":
        draw.rectangle([24, 30, 104, 98], fill=c[1], outline=c[3], width=4)
        draw.ellipse([50, 44, 78, 72], fill=c[0])
    elif motif == "chibi":
        draw.ellipse([34, 14, 94, 74], fill=c[0], outline=c[3], width=2)
        draw.rectangle([52, 74, 76, 110], fill=c[2])
        draw.ellipse([50, 36, 58, 46], fill=c[3])
        draw.ellipse([70, 36, 78, 46], fill=c[3])
    elif motif == "dragon":
        draw.polygon([(64, 40), (10, 20), (40, 80)], fill=c[0])
        draw.polygon([(64, 40), (118, 20), (88, 80)], fill=c[0])
        draw.ellipse([48, 40, 80, 100], fill=c[1])
        draw.polygon([(64, 100), (70, 124), (58, 124)], fill=c[3])
    elif motif == "knight":
        draw.polygon([(40, 30), (88, 30), (88, 70), (64, 110), (40, 70)], fill=c[0], outline=c[3])
        draw.line([(64, 34), (64, 100)], fill=c[2], width=6)
        draw.line([(44, 56), (84, 56)], fill=c[2], width=6)
    elif motif == "cat":
        draw.ellipse([30, 40, 98, 108], fill=c[0])
        draw.polygon([(34, 56), (40, 20), (60, 44)], fill=c[0])
        draw.polygon([(94, 56), (88, 20), (68, 44)], fill=c[0])
        draw.ellipse([46, 62, 58, 74], fill=c[2])
        draw.ellipse([70, 62, 82, 74], fill=c[2])
    elif motif == "samurai":
        draw.ellipse([34, 14, 94, 74], fill=c[0])
        draw.line([(20, 110), (110, 40)], fill=c[3], width=4)
        draw.polygon([(40, 80), (88, 80), (64, 66)], fill=c[2])
    elif motif == "neon":
        for _ in range(12):
            x, w = rng.randint(0, 110), rng.randint(8, 22)
            h = rng.randint(30, 110)
            draw.rectangle([x, SIZE - h, x + w, SIZE], fill="#151030", outline=rng.choice(c[1:]))
    elif motif == "forest":
        for _ in range(8):
            x, h = rng.randint(0, 120), rng.randint(40, 90)
            draw.polygon(
                [(x, SIZE - h), (x - 14, SIZE - 10), (x + 14, SIZE - 10)], fill=rng.choice(c)
            )
    elif motif == "dress":
        draw.polygon([(54, 30), (74, 30), (100, 118), (28, 118)], fill=c[0], outline=c[2])
        for y in range(60, 118, 12):
            draw.line([(40, y), (88, y)], fill=c[1], width=2)
    elif motif == "goggles":
        draw.line([(8, 64), (120, 64)], fill=c[1], width=8)
        for x in (44, 84):
            draw.ellipse([x - 18, 46, x + 18, 82], fill=c[3], outline=c[0], width=5)
    elif motif == "brush":
        for _ in range(14):
            x, y = rng.randint(0, SIZE), rng.randint(0, SIZE)
            draw.line([(x, y), (x + rng.randint(10, 40), y + rng.randint(-8, 8))],
                      fill=rng.choice(c[:3]), width=rng.randint(4, 9))  # fmt: skip
    elif motif == "figure":
        draw.ellipse([50, 16, 78, 44], fill=c[1])
        draw.polygon([(64, 44), (34, 116), (94, 116)], fill=c[0], outline=c[3])
    elif motif == "landscape":
        draw.ellipse([84, 12, 112, 40], fill=c[2])
        draw.polygon([(0, 100), (40, 50), (80, 90), (110, 60), (SIZE, 100), (SIZE, SIZE), (0, SIZE)],
                     fill=c[0])  # fmt: skip
    elif motif == "item":
        draw.rounded_rectangle([30, 40, 98, 100], radius=10, fill=c[0], outline=c[3], width=3)
        draw.ellipse([52, 56, 76, 80], fill=c[2])
    elif motif == "burst":
        for angle in range(0, 360, 30):
            end = (64 + 60 * math.cos(math.radians(angle)), 64 + 60 * math.sin(math.radians(angle)))
            draw.line([(64, 64), end], fill=rng.choice(c[:3]), width=3)
    else:  # ink and anything new: pen strokes
        for _ in range(25):
            x, y = rng.randint(0, SIZE), rng.randint(0, SIZE)
            draw.line([(x, y), (x + rng.randint(-30, 30), y + rng.randint(-30, 30))], fill=c[1])


def draw_preview(theme: Theme, *, seed: int = 0) -> Image.Image:
    """A 128×128 RGB picture for ``theme`` (deterministic for ``seed``)."""
    rng = random.Random(f"{theme.name}:{seed}")
    image = Image.new("RGB", (SIZE, SIZE))
    draw = ImageDraw.Draw(image)
    _background(draw, theme.palette[-1], theme.palette[0])
    _motif(draw, theme.motif, theme.palette, rng)
    if theme.motif in ("watercolor", "film"):
        image = image.filter(ImageFilter.GaussianBlur(1.5))
    return image
