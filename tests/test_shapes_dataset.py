"""The shapes world: deterministic scenes whose captions say what the pixels show."""

import random
import re

import numpy as np
import pytest

from workshop.shapes.dataset import COLOURS, SHAPES, SIZE, Scene, caption, colour_mask, draw, omissions


def pixels_near(image, colour: str) -> float:
    return float(colour_mask(image, colour, tolerance=40).mean())


def test_scenes_and_captions_are_deterministic():
    a, b = random.Random(5), random.Random(5)
    scenes = [Scene.random(a) for _ in range(20)]
    assert scenes == [Scene.random(b) for _ in range(20)]
    assert all(np.array_equal(np.asarray(draw(s)), np.asarray(draw(s))) for s in scenes[:5])
    assert [caption(s, random.Random(1)) for s in scenes] == [caption(s, random.Random(1)) for s in scenes]


def test_captions_name_every_attribute_and_vary_their_order():
    rng = random.Random(0)
    forms = set()
    for _ in range(200):
        scene = Scene.random(rng)
        text = caption(scene, rng)
        assert scene.colour in text and f"{scene.background} background" in text and scene.shape in text and scene.size in text
        assert all(style in text for style in scene.styles)
        assert not re.search(r"\ba [aeiou]", text) and not re.search(r"\ban [^aeiou]", text)  # a/an before vowels
        forms.add(text.split(scene.colour)[0][:12])
    assert len(forms) > 5


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "star"])
def test_a_red_shape_on_blue_is_red_on_blue(shape):
    image = draw(Scene(shape, "red", "blue", 1, "large", (), seed=3))
    assert image.size == (SIZE, SIZE)
    red, blue = pixels_near(image, "red"), pixels_near(image, "blue")
    assert 0.03 < red < 0.4 and blue > 0.5


def test_styles_change_the_picture_visibly():
    base = Scene("circle", "yellow", "black", 2, "large", (), seed=11)
    plain = draw(base)
    filled = pixels_near(plain, "yellow")

    def styled(*styles):
        return draw(Scene(base.shape, base.colour, base.background, base.count, base.size, styles, base.seed))

    assert pixels_near(styled("outlined"), "yellow") < filled * 0.6
    assert pixels_near(styled("striped"), "yellow") < filled * 0.8
    assert pixels_near(styled("glowing"), "black") < pixels_near(plain, "black") * 0.9
    edges = lambda im: float(np.abs(np.diff(np.asarray(im.convert("L"), dtype=np.int16), axis=1)).mean())  # noqa: E731
    assert edges(styled("blurry")) < edges(plain) * 0.7
    pixel = np.asarray(styled("pixel art"))
    assert np.array_equal(pixel[::4, ::4].repeat(4, 0).repeat(4, 1), pixel)  # 4×4 blocks of one colour




def test_held_out_combinations_never_reach_training_and_leave_every_pair_trained():
    rng = random.Random(3)
    assert not any(Scene.random(rng).held_out for _ in range(2000))
    assert all(Scene.random(rng, held_out=True).held_out for _ in range(50))
    combos = [(s, c, b) for s in SHAPES for c in COLOURS for b in COLOURS if c != b]
    held = [t for t in combos if Scene(*t, 1, "small", (), 0).held_out]
    assert len(held) == 32 and {s for s, _, _ in held} == set(SHAPES)
    trained = [t for t in combos if t not in held]
    assert {(s, c) for s, c, _ in trained} == {(s, c) for s in SHAPES for c in COLOURS}
    assert {(c, b) for _, c, b in trained} == {(c, b) for c in COLOURS for b in COLOURS if c != b}
    assert not Scene("circle", "red", "blue", 1, "large", (), 0).held_out  # the README's example is trained


def test_captions_can_leave_attributes_out_and_read_as_tags():
    rng = random.Random(4)
    scene = Scene("circle", "orange", "blue", 1, "small", ("glowing",), 0)
    texts = {caption(scene, rng, omissions(rng, size=0.5, colour=0.5, background=0.5, styles=0.5)) for _ in range(300)}
    assert "an orange circle" in texts and "a circle" in texts  # a/an follows the first word left
    assert any(t.startswith("a circle, ") for t in texts)  # the tag form: subject first
    assert all("orange" in t or "small" in t or "orange" not in t for t in texts)
    full = {caption(scene, rng) for _ in range(100)}
    assert all(w in t for t in full for w in ("small", "orange", "circle", "blue background", "glowing"))
    uncounted = {caption(scene, rng, {"count", "size", "styles"}) for _ in range(100)}
    assert "orange circle on a blue background" in uncounted and "circle, orange, blue background" in uncounted
    assert not any(f"{article} {noun}" in t for t in uncounted for article in ("a", "an") for noun in ("orange", "circle"))
    three = Scene("star", "red", "black", 3, "large", (), 0)
    assert "red stars, black background" in {caption(three, rng, {"count", "size"}) for _ in range(100)}
