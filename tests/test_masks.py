"""Inpainting (``runner/masks.py``): ``--mask`` paints the mask's white part of the init image again and keeps the
rest to the pixel; invert, blur and A1111's "fill" change what is painted; recorded, rerun byte for byte; bad input
one line, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from journal import Journal
from tests.helpers import run_cli
from workshop.runner.masks import filled
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


def _made(capsys, j, *args):
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "4", "--size", "64x64",
                           "--clip", "none", "--seed", "5", "--journal", str(j), *args)
    assert code == 0, err
    run = max(list_runs(Journal.open(j)), key=lambda r: r.record.created_ns)
    return run, np.asarray(Image.open(run.image(run.record.cells[0])).convert("RGB"), dtype=int)


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
    (("--init-image", "INIT", "--mask", "MASK", "--mask-fill", "latent noise"), "mask fill 'latent noise': use original or fill"),
    (("--init-image", "INIT", "--mask", "nosuch.png"), "--mask"),
    (("--init-image", "INIT", "--mask-blur", "3"), "--mask-blur is a setting of inpainting: give --mask IMAGE too"),
])
def test_bad_mask_input_is_one_line_and_nothing_is_written(pictures, tmp_path, capsys, args, said):
    init_path, mask_path = pictures
    args = [str(init_path) if a == "INIT" else str(mask_path) if a == "MASK" else a for a in args]
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "2", "--size", "64x64",
                           "--journal", str(tmp_path / "j"), *args)
    assert code != 0 and err.count("\n") == 1 and said in err and "Traceback" not in err, err
    assert not (tmp_path / "j").exists()
