"""Inpainting (``runner/masks.py``): ``--mask`` paints the mask's white part of the init image again and keeps the
rest to the pixel; invert, blur and A1111's fills change what is painted; A1111's "only masked" (``--mask-area
masked``) paints the mask's box and keeps the init image's size; the blur is OpenCV's (A1111's), across and down
apart, the whole picture's overlay the blurred mask doubled, the fill through the blurred mask, and a 4-channel UNet's
latents kept where A1111's rounded latent mask keeps them; recorded, rerun byte for byte; bad input one line, nothing
written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from journal import Journal
from tests.helpers import run_cli, tiny_pipeline
from workshop.runner.masks import (Mask, Prepared, blurred, crop_box, filled, fitted, grey, inpainting, latent_mask,
                                   overlaid, prepared)
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
    kept = blurred(blurred(np.asarray(_box(40, 30, 56, 46, size=(96, 80))), 2, 1), 2, 0) == 0
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
        by_seed = {c.seed: np.asarray(Image.open(alone.image(c)), dtype=int) for c in alone.record.cells}
        for c, batched in zip(runs[fill].record.cells, made[fill]):  # (a batch's float sums may round a value apart)
            assert np.abs(by_seed[c.seed] - batched).max() <= 1


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


def test_the_blur_is_opencvs_to_the_bit_across_then_down():
    # OpenCV 4.10's and 5.1's cv2.GaussianBlur(m, (2*int(2.5*s + 0.5) + 1, 1), s) (A1111's call) gave these:
    row = np.zeros((1, 9), np.uint8)
    row[0, 4] = 255
    assert blurred(row, 1, axis=1).tolist() == [[0, 1, 14, 62, 102, 62, 14, 1, 0]]
    edge = np.zeros((1, 6), np.uint8)  # a kernel of 11 on 6 pixels: mirrored about the edges, again and again
    edge[0, 0] = 255
    assert blurred(edge, 2, axis=1).tolist() == [[52, 45, 31, 17, 7, 4]]
    dot = np.zeros((5, 5), np.uint8)
    dot[2, 2] = 255
    assert blurred(blurred(dot, 2, axis=1), 1, axis=0).tolist() == [  # 2 across, then 1 down
        [7, 7, 7, 7, 7], [15, 16, 16, 16, 15], [25, 26, 26, 26, 25], [15, 16, 16, 16, 15], [7, 7, 7, 7, 7]]
    assert blurred(row, 0, axis=1) is row
    pillow = np.asarray(Image.fromarray(row).filter(ImageFilter.GaussianBlur(1)))
    assert pillow.tolist() != blurred(blurred(row, 1, 1), 1, 0).tolist()  # (what promptism blurred with before)


def test_the_whole_pictures_overlay_is_the_blurred_mask_doubled_and_the_fill_goes_through_the_blurred_mask(pictures):
    init_path, mask_path = pictures
    init = Image.open(init_path).convert("RGB")
    made = prepared(Mask(mask_path, blur=4, fill="fill"), init, 64, 64)
    soft = np.asarray(made.mask, dtype=int)
    assert soft.tolist() == blurred(blurred(np.asarray(Image.open(mask_path)), 4, 1), 4, 0).tolist()
    assert (np.asarray(made.overlay, dtype=int) == np.minimum(soft * 2, 255)).all()
    assert np.asarray(made.start).tolist() == np.asarray(filled(init, made.mask)).tolist()
    assert np.asarray(made.start).tolist() != np.asarray(filled(init, Image.open(mask_path))).tolist()
    import torch

    black = torch.zeros(1, 3, 64, 64)  # painted black: black wherever the blurred mask is half white or more
    out = (overlaid(black, made)[0].permute(1, 2, 0).numpy() * 255).round()
    assert (soft >= 128).any() and (out[soft >= 128] == 0).all()
    halfway = (soft > 0) & (soft < 128)
    assert (out[halfway] > 0).any() and (out[soft == 0] == np.asarray(init)[soft == 0]).all()


def test_a_mask_with_transparency_is_read_by_its_alpha_as_a1111_reads_a_drawn_one():
    drawn = Image.new("RGBA", (4, 1), (0, 0, 0, 0))
    drawn.putdata([(0, 0, 0, 0), (0, 0, 0, 128), (0, 0, 0, 129), (10, 10, 10, 255)])
    assert list(grey(drawn).getdata()) == [0, 0, 255, 255]  # (more than half opaque: painted, whatever its colour)
    opaque = Image.new("RGBA", (2, 1), (255, 255, 255, 255))
    assert list(grey(opaque).getdata()) == [255, 255]  # (no transparency: its grey)


def test_a_blur_across_and_another_down_is_made_recorded_and_rerun(pictures, tmp_path, capsys):
    init_path, mask_path = pictures
    j = tmp_path / "j"
    run, out = _made(capsys, j, "--init-image", str(init_path), "--mask", str(mask_path), "--mask-blur", "0,6")
    p = run.record.params
    assert (p.mask_blur, p.mask_blur_y) == (0, 6)
    init = np.asarray(Image.open(init_path), dtype=int)
    assert (out[24:41, 8:20] == init[24:41, 8:20]).all()  # beside the square: not blurred across, kept
    assert (out[18:24, 28:36] != init[18:24, 28:36]).any()  # above it: blurred down, painted in part
    same, _ = _made(capsys, j, "--init-image", str(init_path), "--mask", str(mask_path), "--mask-blur", "4")
    assert (same.record.params.mask_blur, same.record.params.mask_blur_y) == (4, None)
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Blurred down", "--journal", str(j))
    assert code == 0, err
    code, out_text, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "identical" in out_text + err, out_text + err


def test_a_4_channel_unet_keeps_the_latents_where_a1111s_rounded_latent_mask_keeps_them(pictures):
    from diffusers import AutoPipelineForInpainting

    init = Image.open(pictures[0]).convert("RGB")
    dots = np.zeros((64, 64), np.uint8)
    dots[0:64:2, 0:32:2] = 255  # the left half: every other pixel's every other row (diffusers: painted; A1111: kept)
    dots[16:48, 40:56] = 255  # a square on the right, painted by both
    mask = Image.fromarray(dots)
    latents = latent_mask(mask, 32, 32)
    assert (latents[:, :16] == 0).all() and (latents[8:24, 21:27] == 1).all()
    pipe = AutoPipelineForInpainting.from_pipe(tiny_pipeline())
    assert pipe.unet.config.in_channels == 4

    def final(white):
        made = Prepared(init, white, init, white)
        with inpainting(pipe, made, [5], "original"):
            return pipe("a red circle", image=init, mask_image=white, strength=0.75, num_inference_steps=3,
                        generator=torch.Generator("cpu").manual_seed(5), output_type="latent", width=64,
                        height=64).images

    import torch

    nothing, painted = final(Image.new("L", (64, 64), 0)), final(mask)
    assert torch.equal(painted[..., :16], nothing[..., :16])  # the init image's own latents (diffusers' painted them)
    assert not torch.equal(painted[..., 21:27], nothing[..., 21:27])


@pytest.mark.parametrize("args, said", [
    (("--mask", "MASK"), "--mask marks what of the init image to paint again: give --init-image"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-blur", "99"), "mask blur is 0 to 64 pixels, not 99"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-blur", "2,65"), "mask blur is 0 to 64 pixels, not 65"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-blur", "2x4"), "mask blur '2x4': write pixels, N (across"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-fill", "noise"),
     "mask fill 'noise': use original, fill, latent-noise or latent-nothing"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-area", "box"), "mask area 'box': use whole"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-area", "masked", "--mask-padding", "-1"),
     "mask padding is a number of pixels, 0 or more, not -1"),
    (("--init-image", "INIT", "--mask", "MASK", "--mask-padding", "8"), "--mask-padding widens the area that --mask-area"),
    (("--init-image", "INIT", "--mask", "SMALL", "--mask-area", "masked"), "the mask is 32x64 and the init image 64x64"),
    (("--init-image", "INIT", "--mask", "BLANK", "--mask-area", "masked"), "the mask has no white"),
    (("--init-image", "INIT", "--mask", "DOT", "--mask-area", "masked", "--mask-blur", "16"),
     "the mask's white is blurred away (a blur of 16 spreads it to nothing)"),  # (it was an internal error, exit 70)
    (("--init-image", "INIT", "--mask", "MASK", "--mask-blur", "²"), "mask blur '²': write pixels"),  # (int() refuses ²)
    (("--init-image", "INIT", "--mask", "nosuch.png"), "--mask"),
    (("--init-image", "INIT", "--mask-blur", "3"), "--mask-blur is a setting of inpainting: give --mask IMAGE too"),
])
def test_bad_mask_input_is_one_line_and_nothing_is_written(pictures, tmp_path, capsys, args, said):
    init_path, mask_path = pictures
    Image.new("L", (32, 64), 255).save(tmp_path / "small.png")
    Image.new("L", (64, 64), 0).save(tmp_path / "blank.png")
    dot = Image.new("L", (64, 64), 0)
    dot.putpixel((30, 30), 255)
    dot.save(tmp_path / "dot.png")
    named = {"INIT": init_path, "MASK": mask_path, "SMALL": tmp_path / "small.png", "BLANK": tmp_path / "blank.png",
             "DOT": tmp_path / "dot.png"}
    args = [str(named.get(a, a)) for a in args]
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "2", "--size", "64x64",
                           "--journal", str(tmp_path / "j"), *args)
    assert code != 0 and err.count("\n") == 1 and said in err and "Traceback" not in err, err
    assert not (tmp_path / "j").exists()


def test_a_sliver_of_an_init_image_is_painted_only_masked_not_an_internal_error(tmp_path, capsys):
    """A 1024×8 init image (8 px is the smallest side allowed) fitted to 64×64 made a box 0 pixels high."""
    Image.new("RGB", (1024, 8), (120, 160, 200)).save(tmp_path / "sliver.png")
    Image.new("L", (1024, 8), 255).save(tmp_path / "white.png")
    run, made = _made(capsys, tmp_path / "j", "--init-image", str(tmp_path / "sliver.png"), "--mask",
                      str(tmp_path / "white.png"), "--mask-area", "masked", "--steps", "4")
    assert made.shape == (8, 1024, 3)  # the init image's size
