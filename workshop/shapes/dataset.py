"""A seeded procedural world of coloured shapes, each scene with a caption that says what is in it.

    scene = draw(Scene.random(random.Random(7)))     # a PIL image, SIZE × SIZE
    caption(scene_spec, rng)                          # "two small yellow triangles on a black background, striped"

Everything is decided by the seed, so a dataset is a list of seeds. Captions vary their word order (attribute
first, background first, style first) so a model learns the words, not one template. Style keywords change the
rendering in ways a CLIP can see: outlined (no fill), striped (fill with stripes), glowing (a halo), pixel art
(coarse pixels), blurry (the whole scene blurred).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 64
SUPERSAMPLE = 4
SHAPES = ("circle", "square", "triangle", "star")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 210, 40),
    "purple": (140, 60, 190), "orange": (245, 140, 30), "white": (240, 240, 240), "black": (20, 20, 20),
}
COUNTS = {1: "a", 2: "two", 3: "three"}
SIZES = ("small", "large")
STYLES = ("outlined", "striped", "glowing", "pixel art", "blurry")


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    count: int
    size: str
    styles: tuple[str, ...]
    seed: int  # places the shapes

    @classmethod
    def random(cls, rng: random.Random, held_out: bool = False) -> "Scene":
        """A training scene, or with ``held_out`` one of the combinations training never sees."""
        while True:
            colour, background = rng.sample(list(COLOURS), 2)
            styles = tuple(sorted(rng.sample(STYLES, rng.choice((0, 0, 1, 1, 2))), key=STYLES.index))
            scene = cls(rng.choice(SHAPES), colour, background, rng.choice(list(COUNTS)), rng.choice(SIZES), styles,
                        rng.randrange(2**31))
            if scene.held_out == held_out:
                return scene

    @property
    def held_out(self) -> bool:
        """32 of the 224 shape–colour–background combinations are kept out of training, to measure quality on: for
        each shape, the 8 colour pairs a fixed step apart on the colour wheel (a different step per shape, so each
        colour–background pair is held out for at most one shape and every shape–colour pair is still trained)."""
        colours = list(COLOURS)
        step = 1 + 2 * SHAPES.index(self.shape)
        return (colours.index(self.background) - colours.index(self.colour)) % len(colours) == step


def caption(scene: Scene, rng: random.Random, omit: frozenset[str] | set[str] = frozenset()) -> str:
    """One of several phrasings of the same scene: three sentences and a comma-separated tag list, the way artists
    write prompts ("a circle, red, blue background, glowing"). ``omit`` leaves out any of ATTRIBUTES; without the count
    word the noun stays singular or plural ("red circle on a blue background", "small stars, glowing")."""
    noun = scene.shape + ("s" if scene.count > 1 else "")
    adjectives = [word for word, name in ((scene.size, "size"), (scene.colour, "colour")) if name not in omit]
    counted = (lambda phrase: phrase) if "count" in omit else (lambda phrase: _counted(scene.count, phrase))
    things = counted(" ".join([*adjectives, noun]))
    ground = "" if "background" in omit else f"{scene.background} background"
    styles = [] if "styles" in omit else list(scene.styles)
    if rng.random() < 0.25:  # tags: the subject first, then the attributes in any order
        tags = [*adjectives, ground]
        rng.shuffle(tags)
        return ", ".join(t for t in [counted(noun), *tags, *styles] if t)
    if not ground:
        text = things
    else:
        text = rng.choice([f"{things} on {_a(ground)}", f"{things}, {ground}", f"{_a(ground)} with {things}"])
    if styles:
        text = rng.choice([f"{text}, {', '.join(styles)}", f"{', '.join(styles)}: {text}"])
    return text


ATTRIBUTES = ("size", "colour", "background", "styles", "count")


def omissions(rng: random.Random, **chances: float) -> set[str]:
    """Attributes to leave out of a training caption, each with its own chance (``size=0.4``)."""
    return {name for name in ATTRIBUTES if rng.random() < chances.get(name, 0.0)}


def _counted(count: int, phrase: str) -> str:
    return _a(phrase) if count == 1 else f"{COUNTS[count]} {phrase}"


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def draw(scene: Scene, size: int = SIZE) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), COLOURS[scene.background])
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    colour = COLOURS[scene.colour]
    rng = random.Random(scene.seed)
    radius = big * (0.11 if scene.size == "small" else 0.2) / (1 + 0.25 * (scene.count - 1))
    for centre in _places(rng, scene.count, radius, big):
        points = _outline(scene.shape, centre, radius, rng.uniform(0, math.tau))
        if "outlined" in scene.styles:
            pen.line(points + points[:1], fill=colour + (255,), width=max(2, int(radius * 0.18)), joint="curve")
        else:
            pen.polygon(points, fill=colour + (255,))
    if "striped" in scene.styles:
        layer = _stripes(layer, colour, big)
    if "glowing" in scene.styles:
        halo = layer.filter(ImageFilter.GaussianBlur(big * 0.05))
        image.paste(Image.new("RGB", (big, big), colour), (0, 0), halo.split()[3].point(lambda a: min(255, a * 2)))
    image.paste(layer, (0, 0), layer)
    image = image.resize((size, size), Image.LANCZOS)
    if "pixel art" in scene.styles:
        image = image.resize((size // 4, size // 4), Image.BOX).resize((size, size), Image.NEAREST)
    if "blurry" in scene.styles:
        image = image.filter(ImageFilter.GaussianBlur(size * 0.06))
    return image


def colour_mask(image: Image.Image, colour: str, tolerance: int = 70) -> np.ndarray:
    """Which pixels are within ``tolerance`` of a world colour on every channel (``.mean()``: the share of them)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return np.abs(pixels - np.array(COLOURS[colour])).max(axis=2) < tolerance


def _places(rng: random.Random, count: int, radius: float, big: int) -> list[tuple[float, float]]:
    """Centres that keep the shapes inside the frame and, as far as room allows, apart."""
    placed: list[tuple[float, float]] = []
    margin = radius * 1.1
    for _ in range(count):
        best = None
        for _ in range(30):
            c = (rng.uniform(margin, big - margin), rng.uniform(margin, big - margin))
            gap = min((math.dist(c, p) for p in placed), default=big)
            if best is None or gap > best[0]:
                best = (gap, c)
            if gap > 2.2 * radius:
                break
        placed.append(best[1])
    return placed


def _outline(shape: str, centre: tuple[float, float], r: float, turn: float) -> list[tuple[float, float]]:
    x, y = centre
    if shape == "circle":
        return [(x + r * math.cos(a), y + r * math.sin(a)) for a in (k * math.tau / 48 for k in range(48))]
    if shape == "square":
        corners = [turn + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        return [(x + r * math.cos(a), y + r * math.sin(a)) for a in corners]
    if shape == "triangle":
        return [(x + r * math.cos(a), y + r * math.sin(a)) for a in (turn + k * math.tau / 3 for k in range(3))]
    points = []
    for k in range(10):  # a five-pointed star
        rr = r if k % 2 == 0 else r * 0.45
        a = turn + k * math.tau / 10
        points.append((x + rr * math.cos(a), y + rr * math.sin(a)))
    return points


def _stripes(layer: Image.Image, colour: tuple[int, int, int], big: int) -> Image.Image:
    """Fill alternate diagonal bands of the shapes with a contrasting shade."""
    shade = tuple(c // 3 if sum(colour) > 300 else min(255, c + 150) for c in colour)
    bands = Image.new("L", (big, big), 0)
    pen = ImageDraw.Draw(bands)
    step = big // 8
    for k in range(-big, 2 * big, step):
        pen.polygon([(k, 0), (k + step // 2, 0), (k + step // 2 - big, big), (k - big, big)], fill=255)
    alpha = layer.split()[3]
    striped = layer.copy()
    striped.paste(Image.new("RGBA", (big, big), shade + (255,)), (0, 0), Image.composite(alpha, Image.new("L", (big, big), 0), bands))
    return striped
