"""Inpainting (``runner/masks.py``): ``--mask`` paints the mask's white part of the init image again and keeps the
rest to the pixel; invert, blur and A1111's fills change what is painted; A1111's "only masked" (``--mask-area
masked``) paints the mask's box and keeps the init image's size; recorded, rerun byte for byte; bad input one line,
nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from journal import Journal
from tests.helpers import images_of, run_cli
from workshop.runner.masks import crop_box, filled, fitted
from workshop.runner.runs import list_runs


@pytest.fixture
def pictures(tmp_path):
    init = Image.new("RGB", (64, 64), (120, 160, 200))
    ImageDraw.Draw(init).ellipse((16, 16, 48, 48), fill=(220, 80, 40))
    init.save(tmp_path / "init.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((24, 24, 40, 40), fill=255)
    mask.save(tmp_path / "mask.png")
    return tmp_path / "init.png", tmp_path / "mask.png"


def _made(capsys, j, *args, seeds=("--seed", "5")):
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "4", "--size", "64x64",
                           "--clip", "none", *seeds, "--journal", str(j), *args)
    assert code == 0, err
    run = max(list_runs(Journal.open(j)), key=lambda r: r.record.created_ns)
    return run, np.asarray(Image.open(run.image(run.record.cells[0])).convert("RGB"), dtype=int)


def _box(left, top, right, bottom, size=(64, 64)):
    """A mask whose white is the box left..right-1 × top..bottom-1."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (left, top, right, bottom))
    return mask


@pytest.mark.parametrize("box, size, padding, made, crop", [
    ((24, 24, 40, 40), (64, 64), 0, (64, 64), (24, 24, 40, 40)),  # square already
    ((24, 24, 40, 40), (64, 64), 4, (64, 32), (8, 20, 56, 44)),  # padded to 24x24, widened to 2:1 about its centre
    ((24, 24, 40, 40), (64, 64), 0, (32, 64), (24, 16, 40, 48)),  # made taller for 1:2
    ((24, 24, 40, 40), (64, 64), 30, (64, 64), (0, 0, 64, 64)),  # padding stops at the edges
    ((56, 0, 64, 8), (64, 64), 0, (64, 32), (48, 0, 64, 8)),  # pushed back inside from the right edge
    ((0, 0, 8, 8), (64, 64), 0, (32, 64), (0, 0, 8, 16)),  # pushed down from the top edge
    ((0, 24, 64, 40), (64, 64), 0, (32, 64), (0, 0, 64, 64)),  # the image too small for 1:2: cut at its edges
    ((10, 20, 30, 30), (80, 40), 2, (48, 48), (8, 13, 32, 37)),  # padded to 24x14, made 24 tall about its centre
    ((24, 24, 40, 41), (64, 64), 0, (64, 64), (24, 24, 41, 41)),  # 16x17: the odd pixel goes after it
])
def test_the_only_masked_box_is_padded_widened_to_the_run_proportions_and_kept_inside(box, size, padding, made, crop):
    assert crop_box(_box(*box, size=size), padding, *made) == crop


def test_a_box_of_other_proportions_is_fitted_with_its_edges_stretched():
    image = Image.new("RGB", (64, 40), (0, 200, 0))
    image.paste((255, 0, 0), (0, 0, 64, 1))
    image.paste((0, 0, 255), (0, 39, 64, 40))
    out = np.asarray(fitted(image, 64, 64), dtype=int)  # 64x40 centred: 12 rows above, 12 below
    assert (out[:12] == out[0, 0]).all() and out[0, 0, 0] > 200 and (out[-12:] == out[-1, 0]).all() and out[-1, 0, 2] > 200
    assert abs(out[32, 32] - [0, 200, 0]).max() < 3


def test_only_the_masked_area_is_painted_at_the_run_size_and_the_image_keeps_the_init_size(tmp_path, capsys):
    init = Image.new("RGB", (96, 80), (120, 160, 200))
    ImageDraw.Draw(init).ellipse((30, 20, 70, 60), fill=(220, 80, 40))
    init.save(tmp_path / "init.png")
    _box(40, 30, 56, 46, size=(96, 80)).save(tmp_path / "mask.png")
    j = tmp_path / "j"
    run, out = _made(capsys, j, "--init-image", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
                     "--mask-blur", "2", "--mask-area", "masked", "--mask-padding", "4")
    kept = np.asarray(_box(40, 30, 56, 46, size=(96, 80)).filter(ImageFilter.GaussianBlur(2))) == 0
    original = np.asarray(init, dtype=int)
    assert out.shape == (80, 96, 3)  # the init image's size, not --size's 64x64
    assert (out[kept] == original[kept]).all() and (out[34:42, 44:52] != original[34:42, 44:52]).any()
    p = run.record.params
    assert (p.mask_area, p.mask_padding, p.width, p.height) == ("masked", 4, 64, 64)
    _, whole = _made(capsys, j, "--init-image", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
                     "--mask-blur", "2")
    assert whole.shape == (64, 64, 3)  # the whole picture: at --size, as before
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Only masked", "--journal", str(j))
    assert code == 0, err
    code, out_text, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "identical" in out_text + err, out_text + err


def test_latent_fills_start_from_the_seeds_noise_or_nothing_and_batch_as_alone(pictures, tmp_path, capsys):
    init_path, mask_path = pictures
    j = tmp_path / "j"
    common = ("--init-image", str(init_path), "--mask", str(mask_path), "--mask-blur", "2", "--strength", "0.5")
    runs = {fill: _made(capsys, j, *common, "--mask-fill", fill, "--max-batch", "2", seeds=("--seeds", "5,6"))[0]
            for fill in ("original", "latent-noise", "latent-nothing")}
    made = {fill: [np.asarray(Image.open(run.image(c)).convert("RGB"), dtype=int) for c in run.record.cells]
            for fill, run in runs.items()}
    inside = (slice(28, 36), slice(28, 36))
    assert (made["latent-noise"][0][inside] != made["original"][0][inside]).any()
    assert (made["latent-nothing"][0][inside] != made["original"][0][inside]).any()
    assert (made["latent-noise"][0][inside] != made["latent-nothing"][0][inside]).any()
    assert runs["latent-noise"].record.params.mask_fill == "latent-noise"
    for fill in ("latent-noise", "latent-nothing"):  # each image alone, and seed 6 first: the same bytes
        alone, _ = _made(capsys, j, *common, "--mask-fill", fill, "--max-batch", "1", seeds=("--seeds", "6,5"))
        by_seed = {c.seed: run_image for c, run_image in zip(alone.record.cells, images_of(alone))}
        assert [by_seed[c.seed] for c in runs[fill].record.cells] == images_of(runs[fill])


def test_the_masked_part_is_painted_again_and_the_rest_kept_to_the_pixel(pictures, tmp_path, capsys):
    init_path, mask_path = pictures
    init = np.asarray(Image.open(init_path), dtype=int)
    j = tmp_path / "j"
    run, out = _made(capsys, j, "--init-image", str(init_path), "--mask", str(mask_path), "--mask-blur", "2")
    far = np.ones((64, 64), bool)
    far[16:49, 16:49] = False  # (the mask's square and its blur)
    assert (out[far] == init[far]).all() and (out[28:36, 28:36] != init[28:36, 28:36]).any()
    p = run.record.params
    assert (p.mask, p.mask_blur, p.mask_invert, p.mask_fill) == (str(mask_path), 2, None, "original")
    _, inverted = _made(capsys, j, "--init-image", str(init_path), "--mask", str(mask_path), "--mask-blur", "2",
                        "--mask-invert")
    assert (inverted[31:33, 31:33] == init[31:33, 31:33]).all() and (inverted[:4] != init[:4]).any()  # (blur: 2 px)
    _, fill = _made(capsys, j, "--init-image", str(init_path), "--mask", str(mask_path), "--mask-blur", "2",
                    "--mask-fill", "fill")
    assert (fill[far] == init[far]).all() and (fill != out).any()  # another start for the masked part
    _, plain = _made(capsys, j, "--init-image", str(init_path))
    assert (plain[far] != init[far]).any()  # img2img without a mask changes it all
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Inpainted", "--journal", str(j))
    assert code == 0, err
    code, out_text, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "identical" in out_text + err, out_text + err


def test_fill_spreads_the_colours_round_the_mask_over_it(pictures):
    init_path, mask_path = pictures
    made = np.asarray(filled(Image.open(init_path), Image.open(mask_path)), dtype=int)
    init = np.asarray(Image.open(init_path), dtype=int)
    assert (made[:20] == init[:20]).all()  # outside the mask: as it was
    centre = made[30:34, 30:34].reshape(-1, 3).mean(0)  # inside: neither the circle's red nor nothing
    assert abs(centre - np.array([220, 80, 40])).sum() > 30 and centre.min() > 20


@pytest.mark.parametrize("args, said", [
    (("--mask", "MASK"), "--mask marks what of the init image to paint again: give --init-image"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-blur", "99"), "mask blur is 0 to 64 pixels, not 99"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-fill", "noise"),
     "mask fill 'noise': use original, fill, latent-noise or latent-nothing"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-area", "box"), "mask area 'box': use whole"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-area", "masked", "--mask-padding", "-1"),
     "mask padding is a number of pixels, 0 or more, not -1"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-padding", "8"), "--mask-padding widens the area that --mask-area"),
    (("--init-image", "INIT", "--mask", "SMALL", "--mask-area", "masked"), "the mask is 32x64 and the init image 64x64"),
    (("--init-image", "INIT", "--mask", "BLANK", "--mask-area", "masked"), "the mask has no white"),
    (("--init-image", "INIT", "--mask", "nosuch.png"), "--mask"),
    (("--init-image", "INIT", "--mask-blur", "3"), "--mask-blur is a setting of inpainting: give --mask IMAGE too"),
])
def test_bad_mask_input_is_one_line_and_nothing_is_written(pictures, tmp_path, capsys, args, said):
    init_path, mask_path = pictures
    Image.new("L", (32, 64), 255).save(tmp_path / "small.png")
    Image.new("L", (64, 64), 0).save(tmp_path / "blank.png")
    named = {"INIT": init_path, "MASK": mask_path, "SMALL": tmp_path / "small.png", "BLANK": tmp_path / "blank.png"}
    args = [str(named.get(a, a)) for a in args]
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "2", "--size", "64x64",
                           "--journal", str(tmp_path / "j"), *args)
    assert code != 0 and err.count("\n") == 1 and said in err and "Traceback" not in err, err
    assert not (tmp_path / "j").exists()
