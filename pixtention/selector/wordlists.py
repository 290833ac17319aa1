"""English word lists the binding rules read (:mod:`pixtention.selector.binding`).

They are a heuristic for English prompts and Civitai titles and tags: people and roles, common
nouns and adjectives, words that ask for a look, adult tags, and which people words say a
gender or a creature.
"""

from __future__ import annotations

# People and roles a prompt names for anyone: never a character's name, and a named
# character's title holding one ("Fairy Knight Tristan") does not make it "a knight".
_PERSON_NOUNS = """
girl girls boy boys woman women man men person people lady ladies gentleman child children kid
kids baby teen adult female male couple twins sisters brothers mother father sister brother wife
husband bride groom family friend friends knight knights warrior warriors wizard wizards witch
witches mage sorceress sorcerer astronaut astronauts soldier soldiers samurai ninja kunoichi maid
maids nurse nurses princess prince queen king emperor empress lord elf elves dwarf orc goblin
angel angels demon demons devil succubus vampire werewolf android cyborg pirate pirates cowboy
cowgirl police policewoman officer doctor teacher student students schoolgirl schoolboy idol
singer dancer ballerina priest priestess nun monk hero heroine villain goddess god fairy mermaid
catgirl foxgirl kitsune spaceman pilot chef farmer hunter archer assassin thief rogue paladin
cleric necromancer barbarian gladiator viking spartan geisha miko cheerleader magician scientist
detective sailor captain general ranger guard swordsman swordswoman shogun gyaru tomboy secretary
waitress ronin raider rider guardian companion chan musume 1girl 1boy hacker businessman
businesswoman worker athlete traveler explorer adventurer merchant blacksmith fisherman surfer
bodybuilder waifu husbando
"""
PERSON_NOUNS = frozenset(_PERSON_NOUNS.split())
# Other words any prompt or title uses: creatures, clothes, colours, places, quality words.
_COMMON_WORDS = """
old young elderly mature dragon dragons cat cats dog dogs fox wolf horse bird birds bunny rabbit
bear monster monsters ghost zombie skeleton alien aliens robot robots mecha armor armour hat hats
dress dresses suit suits helmet sword swords shield kimono uniform bikini swimsuit shirt skirt
jacket coat cape cloak boots gloves glasses mask crown wings tail ears horns hair eyes face body
hands legs outfit outfits costume clothes clothing lingerie school office red blue green yellow
orange purple pink black white brown grey gray golden gold silver dark light cute sexy beautiful
pretty handsome little big small tall short long shining fantasy sci fi cyberpunk steampunk
medieval gothic anime realistic cartoon chibi portrait photo full upper standing sitting night
day city forest castle beach sky space street rain snow fire water ice magic magical star stars
moon sun earth world planet ocean sea river lake mountain mountains tree trees garden park house
room home table chair bed window door tower bridge temple shrine church village town kingdom
palace ruins desert island cave field flower flowers rose leaf leaves cloud clouds storm thunder
lightning wind smoke shadow neon glow crystal ice winter summer spring autumn sunset sunrise
evening morning secret lost last first golden royal holy sacred wild little great grand super
art style styles lora locon loha lycoris lyco version ver model concept pose poses background
scenery detail details detailed add more better new best high quality effect effects plate
noir crimson scarlet azure spirit phoenix character characters oc wall walls floor roof
rooftop stairs cinematic lighting lights soft natural dim
"""
GENERIC_WORDS = PERSON_NOUNS | frozenset(_COMMON_WORDS.split())
# Words of a phrase that asks for a look rather than a thing: a style binds to such a phrase
# (or one naming it, or one its description plainly names).
_STYLE_WORDS = """
style styles art artstyle painting painted paint drawing drawn sketch lineart illustration
render rendering print woodblock ukiyo photo photograph photography photorealistic realistic
anime manga comic comics cartoon chibi watercolor watercolour oil ink pastel pencil charcoal
pixel 8bit lowpoly poly 3d 2d cel shading cyberpunk steampunk vaporwave synthwave neon
retro vintage noir gothic surreal abstract impressionism impressionist minimalist ghibli
"""
STYLE_WORDS = frozenset(_STYLE_WORDS.split())
_ADULT_TAGS = """
bondage bdsm nipples pussy penis cum ahegao topless sexy nsfw hentai porn nude nudes naked sex
r18 lewd fetish erotic ecchi futanari jav boobs breast breasts
"""
ADULT_TAGS = frozenset(_ADULT_TAGS.split())

# Person words that say a gender. An adapter whose title or tags say one gender is not picked
# for a prompt whose people are all of the other ("Muscular Female" for "a muscular man").
_FEMALE_WORDS = """
girl girls woman women lady ladies female females 1girl 2girls mother sister sisters wife bride
queen princess empress sorceress priestess nun goddess heroine cowgirl policewoman waitress
schoolgirl catgirl foxgirl kunoichi geisha miko ballerina actress swordswoman gyaru musume
mermaid witch witches maid maids idol
"""
FEMALE_WORDS = frozenset(_FEMALE_WORDS.split())
_MALE_WORDS = """
boy boys man men male males 1boy gentleman father brother brothers husband groom king prince
emperor lord monk priest cowboy schoolboy businessman spaceman swordsman wizard wizards sorcerer
"""
MALE_WORDS = frozenset(_MALE_WORDS.split())
# People as such, not a role: a "witch" among a city's training tags is one figure in its
# images; "woman" or "1girl" is what an adapter was trained to draw.
_FIGURE_WORDS = """
girl girls woman women female females 1girl 2girls boy boys man men male males 1boy
"""
FIGURE_WORDS = frozenset(_FIGURE_WORDS.split())
# What only a person has or wears besides clothes: a booru prompt that left out "1girl" still
# has someone in it ("smile, sitting, sleeveless").
_BODY_WORDS = """
hair eye eyes face lips smile smiling blush breasts legs thighs skin body hands looking pose
"""
BODY_WORDS = frozenset(_BODY_WORDS.split())
# Creatures a named character's title may name as what it is ("Mochi the Cat" for "a cat");
# other common words of a name ("Storm Trooper", "Breath of the Wild") say nothing of it.
_CREATURE_WORDS = """
cat cats dog dogs fox wolf horse bird birds bunny rabbit bear dragon dragons monster monsters
ghost zombie skeleton alien aliens robot robots mecha
"""
CREATURE_WORDS = frozenset(_CREATURE_WORDS.split())
# Tags of an adapter that is one joke: picked only when the prompt asks for it by name.
MEME_TAGS = frozenset(("meme", "memes"))
# Garments and what is worn: an outfit adapter binds to its wearer or to one of these.
_CLOTHING_WORDS = """
dress dresses gown gowns suit suits armor armour uniform uniforms kimono yukata hanfu qipao
cheongsam bikini swimsuit swimwear shirt blouse skirt jacket coat cape cloak robe robes hoodie
sweater pants jeans shorts boots shoes heels sneakers gloves glasses sunglasses goggles mask
crown tiara hat hats helmet veil scarf tie apron choker necklace earrings jewelry lingerie
stockings pantyhose leggings socks bodysuit leotard outfit outfits costume costumes clothes
clothing attire wear blindfold headphones tattoo tattoos
"""
CLOTHING_WORDS = frozenset(_CLOTHING_WORDS.split())
# Eras a phrase or an adapter may belong to: "sci-fi armor" asks for no Roman armour, "an orc
# warrior" no mecha warrior, "a gothic cathedral" no modern interior. "Future" is now or later.
_FUTURE_WORDS = """
sci fi scifi futuristic future cyberpunk cyber cyborg android mecha spaceship modern
contemporary
"""
FUTURE_WORDS = frozenset(_FUTURE_WORDS.split())
_PAST_WORDS = """
medieval ancient roman greek traditional victorian feudal historical renaissance gothic baroque
rococo viking vikings knight knights castle orc orcs dwarf dwarves
"""
PAST_WORDS = frozenset(_PAST_WORDS.split())
