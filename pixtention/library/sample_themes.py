"""The themes of the sample library: what each sample adapter is about and how it is stored.

Plain data, kept apart from the writer (``sample.py``) so each stays readable; the first dozen
are written out in full here, the rest are compact rows in ``sample_themes_more``. Themes are
deliberately distinct (styles, characters, backgrounds, clothing, objects) so retrieval over
the sample library has clear right answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixtention.library.sample_themes_more import more_themes


def _attn(block: str, *parts: str) -> tuple[str, ...]:
    """Diffusers names of one transformer block's modules, e.g. ``attn2.to_k``."""
    return tuple(f"{block}.transformer_blocks.0.{part}" for part in parts)


_UP1 = "up_blocks.1.attentions.0"
_UP2 = "up_blocks.2.attentions.1"
_UP3 = "up_blocks.3.attentions.2"
_DOWN1 = "down_blocks.1.attentions.0"
_DOWN2 = "down_blocks.2.attentions.1"
_MID = "mid_block.attentions.0"
_KV = ("attn2.to_k", "attn2.to_v")


@dataclass(frozen=True)
class Theme:
    name: str  # file stem
    folder: str  # theme folder under the library root
    title: str
    category: str  # style | character | background | clothing | object | concept
    kind: str  # lora | locon | loha | lokr
    rank: int
    alpha: float
    modules: tuple[str, ...]  # SD1.5 diffusers module names (ignored for SDXL)
    triggers: tuple[str, ...]
    tags: tuple[tuple[str, int], ...]  # training tags with counts, most frequent first
    comment: str  # one-sentence description
    html: str  # civitai-style HTML description body
    example_prompt: str
    motif: str  # what the preview draws (see sample_art)
    palette: tuple[str, ...]
    base: str = "sd15"
    tucker: bool = False
    text_encoder: int = 0  # number of text-encoder modules targeted
    weight: float = 0.8
    modelspec: bool = False
    user_json: bool = False
    civitai: bool = False
    txt: bool = False


# fmt: off
FIRST_DOZEN: tuple[Theme, ...] = (
    Theme(
        "watercolor_wash", "styles", "Watercolor Wash", "style", "lora", 4, 2.0,
        _attn(_UP1, *_KV) + _attn(_UP2, *_KV, "attn1.to_q"),
        ("wcwash",), (("watercolor", 48), ("painting", 40), ("soft colors", 22), ("paper texture", 15)),
        "Loose watercolor painting style with soft bleeding edges on textured paper.",
        "A <b>watercolor</b> painting style: wet washes, pigment blooms and paper grain.",
        "wcwash, a lighthouse on a cliff, watercolor painting", "watercolor",
        ("#7fb3d5", "#f5cba7", "#a9dfbf", "#fdfefe"), modelspec=True, civitai=True,
    ),
    Theme(
        "pixel_art_8bit", "styles", "8-bit Pixel Art", "style", "locon", 2, 1.0,
        _attn(_UP2, *_KV) + ("up_blocks.2.resnets.1.conv1", "up_blocks.3.resnets.0.conv2"),
        ("pixel art", "8bit"), (("pixel art", 60), ("retro game", 31), ("sprite", 25), ("limited palette", 12)),
        "Crisp 8-bit pixel art with a limited palette, like retro console sprites.",
        "Retro <i>pixel art</i> sprites and tiles. Works best at weight 0.7–1.0.",
        "pixel art, 8bit, a knight sprite in a dungeon", "pixels",
        ("#1d2b53", "#7e2553", "#008751", "#ffec27", "#ff004d"), user_json=True, txt=True,
    ),
    Theme(
        "vintage_film_photo", "styles", "Vintage Film Photo", "style", "loha", 2, 1.0,
        _attn(_UP1, *_KV, "attn1.to_k"),
        ("vintage photo",), (("film grain", 35), ("vintage photo", 33), ("sepia", 18), ("1970s", 9)),
        "Faded 1970s analog film photographs with grain, light leaks and warm sepia tones.",
        "Analog <b>film photo</b> look: grain, halation, faded colours.",
        "vintage photo, a family picnic, film grain", "film",
        ("#704214", "#c2a27a", "#e8d8b8", "#3b2a1a"), civitai=True,
    ),
    Theme(
        "chibi_style", "styles", "Chibi Style", "style", "lora", 2, 1.0,
        _attn(_DOWN2, *_KV) + _attn(_MID, "attn2.to_k"),
        ("chibi",), (("chibi", 52), ("super deformed", 20), ("big head", 18), ("cute", 16)),
        "Cute chibi proportions: big heads, tiny bodies, rounded shapes.",
        "Super-deformed <b>chibi</b> characters.",
        "chibi, a wizard casting a spell", "chibi",
        ("#ffd1dc", "#fff5ba", "#b5ead7", "#6c5b7b"), text_encoder=2, user_json=True,
    ),
    Theme(
        "red_dragon", "characters", "Crimson Dragon", "character", "lora", 4, 4.0,
        _attn(_DOWN1, *_KV) + _attn(_UP1, *_KV) + _attn(_UP2, "ff.net.2"),
        ("crimson dragon",), (("dragon", 44), ("red scales", 30), ("wings", 28), ("fire breath", 14)),
        "A red dragon creature with crimson scales, horned head and wide leathery wings.",
        "<p>Western <b>dragon</b> with red scales.</p><ul><li>wings</li><li>fire</li></ul>",
        "crimson dragon breathing fire over a castle", "dragon",
        ("#8b0000", "#ff4500", "#2f1b14", "#ffa500"), civitai=True, txt=True,
    ),
    Theme(
        "knight_in_armor", "characters", "Knight in Plate Armor", "character", "lokr", 4, 1.0,
        _attn(_UP1, *_KV, "attn1.to_out.0"),
        ("plate knight",), (("knight", 38), ("plate armor", 34), ("sword", 21), ("shield", 17)),
        "A medieval knight in polished full plate armor with sword and heraldic shield.",
        "Medieval <b>knight</b> in full plate.",
        "plate knight standing in a throne room", "knight",
        ("#9ea7b3", "#4b5563", "#1e3a8a", "#d4af37"), modelspec=True,
    ),
    Theme(
        "cat_character", "characters", "Mochi the Cat", "character", "lora", 3, 1.5,
        _attn(_DOWN1, *_KV) + _attn(_UP3, *_KV),
        ("mochi cat",), (("cat", 50), ("orange tabby", 26), ("whiskers", 19), ("paws", 11)),
        "Mochi, a chubby orange tabby cat character with green eyes.",
        "An original <b>cat</b> character.",
        "mochi cat sleeping on a windowsill", "cat",
        ("#f4a460", "#fff8dc", "#228b22", "#5c4033"), user_json=True, civitai=True,
    ),
    Theme(
        "samurai_warrior", "characters", "Ronin Samurai", "character", "locon", 2, 1.0,
        _attn(_UP2, *_KV) + ("up_blocks.1.resnets.2.conv1", "up_blocks.2.upsamplers.0.conv"),
        ("ronin samurai",), (("samurai", 41), ("katana", 29), ("kimono", 17), ("feudal japan", 10)),
        "A ronin samurai with katana and straw hat, feudal Japan.",
        "<b>Samurai</b> warrior with katana.",
        "ronin samurai drawing a katana in the rain", "samurai",
        ("#b22222", "#f5f5dc", "#111111", "#c0c0c0"), tucker=True, modelspec=True,
    ),
    Theme(
        "cyberpunk_neon_city", "backgrounds", "Cyberpunk Neon City", "background", "lora", 3, 3.0,
        _attn(_MID, *_KV) + _attn(_UP1, *_KV),
        ("neoncity",), (("cyberpunk", 45), ("neon lights", 39), ("city street", 27), ("rain", 20)),
        "Rain-soaked cyberpunk city streets at night, lit by neon signs.",
        "<p>Night <b>cyberpunk</b> city &amp; neon.</p>",
        "neoncity, a crowded night market", "neon",
        ("#0b0033", "#ff00ff", "#00ffff", "#ffea00"), civitai=True, modelspec=True,
    ),
    Theme(
        "autumn_forest", "backgrounds", "Autumn Forest", "background", "lora", 1, 1.0,
        _attn(_UP3, *_KV),
        ("autumn forest",), (("autumn", 36), ("forest", 34), ("falling leaves", 22), ("golden light", 12)),
        "An autumn forest with orange and red foliage and soft golden light.",
        "Autumn <b>forest</b> backgrounds.",
        "autumn forest path at golden hour", "forest",
        ("#d35400", "#f39c12", "#7b241c", "#5d4037"), txt=True,
    ),
    Theme(
        "gothic_dress", "clothing", "Gothic Lolita Dress", "clothing", "lora", 2, 1.0,
        _attn(_UP2, *_KV, "attn1.to_v"),
        ("gothic dress",), (("gothic dress", 40), ("black lace", 24), ("frills", 19), ("corset", 9)),
        "A black gothic lolita dress with lace, frills and a corset.",
        "<b>Gothic</b> clothing: lace, frills.",
        "a woman wearing a gothic dress in a cathedral", "dress",
        ("#111111", "#4a0e2e", "#d9d9d9", "#7d0a0a"), user_json=True,
    ),
    Theme(
        "steampunk_goggles", "objects", "Steampunk Goggles", "object", "lora", 2, 2.0,
        _attn(_DOWN2, *_KV) + _attn(_UP1, "attn2.to_k"),
        ("brass goggles",), (("goggles", 33), ("steampunk", 31), ("brass", 18), ("gears", 12)),
        "Brass steampunk goggles with leather straps and gears.",
        "<b>Steampunk</b> goggles accessory.",
        "an inventor wearing brass goggles", "goggles",
        ("#b5a642", "#6b4423", "#cd7f32", "#2e2e2e"), civitai=True,
    ),
    Theme(
        "ink_sketch_xl", "styles", "Ink Sketch XL", "style", "lora", 2, 1.0,
        (),
        ("ink sketch",), (("ink sketch", 42), ("line art", 30), ("crosshatching", 15), ("monochrome", 14)),
        "Black ink sketch with crosshatching, for SDXL.",
        "<b>Ink</b> line art for SDXL.",
        "ink sketch of an old harbour", "ink",
        ("#ffffff", "#111111", "#555555", "#bbbbbb"), base="sdxl", modelspec=True,
    ),
)
# fmt: on

# Every sample adapter: the first dozen above, then the rows of ``sample_themes_more``.
THEMES: tuple[Theme, ...] = FIRST_DOZEN + more_themes()
