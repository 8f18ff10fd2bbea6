"""A1111's SD upscale script (``runner/sd_upscale.py``): ``--sd-upscale SCALE`` with ``--init-image`` — the init
image upscaled, cut into overlapping tiles of the run's size (A1111's split_grid arithmetic), each tile made again
image to image (tile k of seed S with seed S + k), the tiles blended back (A1111's combine_grid) — recorded and rerun
byte for byte; the A1111 API's ``script_name: "sd upscale"`` as A1111's own test sends it; bad values one line / a
422 naming the field. The tiny model, 64x64 tiles, 2–4 steps."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from journal import Journal
from tests.helpers import make_png, run_cli
from tests.test_a1111 import _b64, app, sdapi, service, serve_journal  # noqa: F401 - the A1111 server fixtures
from workshop.runner.hires import a1111_upscale
from workshop.runner.runs import list_runs, load_run
from workshop.contract import GivenOptions, RunParams, Spec
from workshop.errors import RunError
from workshop.runner.options import resolve
from workshop.runner.sd_upscale import Tiling, params as sd_upscale_params
from workshop.settings import Settings

TINY = ("--model", "tiny", "--clip", "none", "--size", "64x64", "--json")


def _starts(size, tile, overlap):
    tiling = Tiling.of(size, tile, overlap)
    return [x for x in tiling.rows[0][1]], [y for y, _ in tiling.rows]


@pytest.mark.parametrize("size, tile, overlap, xs, ys", [
    ((128, 128), (64, 64), 8, [0, 32, 64], [0, 32, 64]),  # ceil(120 / 56) = 3 a side, 64 / 2 apart
    ((100, 64), (64, 64), 16, [0, 36], [0]),  # a width that does not divide: ceil(84 / 48) = 2, the last at the edge
    ((200, 72), (64, 64), 8, [0, 45, 90, 136], [0, 8]),  # 136 / 3 apart, truncated (A1111's int()); 8 down
    ((128, 64), (64, 64), 0, [0, 64], [0]),  # overlap 0: edge to edge
    ((130, 64), (64, 64), 0, [0, 33, 66], [0]),  # overlap 0, not dividing: ceil(130 / 64) = 3, 33 apart
    ((48, 64), (64, 64), 8, [-16], [0]),  # smaller than a tile: one tile reaching past the image, cut back after
])
def test_the_tiles_lie_where_a1111s_split_grid_puts_them(size, tile, overlap, xs, ys):
    assert _starts(size, tile, overlap) == (xs, ys)
    tiling = Tiling.of(size, tile, overlap)
    assert tiling.count == len(xs) * len(ys)
    assert all(t.size == tile for t in tiling.crops(Image.new("RGB", size)))


@pytest.mark.parametrize("size, tile, overlap", [((200, 72), (64, 64), 8), ((130, 96), (64, 48), 0),
                                                 ((48, 40), (64, 64), 8), ((128, 128), (64, 64), 32)])
def test_tiles_that_agree_blend_back_into_the_image_without_a_seam(size, tile, overlap):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    tiling = Tiling.of(size, tile, overlap)
    assert tiling.combined(tiling.crops(image)).tobytes() == image.tobytes()


def test_the_overlap_is_a_linear_blend_across_and_down():
    """Two tiles side by side (a black one, then a white one) over 4 pixels: A1111's mask floor(i × 255 / 4)."""
    across = Tiling.of((124, 64), (64, 64), 4)
    assert across.rows == ((0, (0, 60)),)
    row = np.asarray(across.combined([Image.new("RGB", (64, 64), 0), Image.new("RGB", (64, 64), (255,) * 3)]))[:, :, 0]
    assert (row == [0] * 60 + [0, 63, 127, 191] + [255] * 60).all()
    down = Tiling.of((64, 124), (64, 64), 4)
    column = np.asarray(down.combined([Image.new("RGB", (64, 64), 0), Image.new("RGB", (64, 64), (255,) * 3)]))[:, :, 1]
    assert (column.T == [0] * 60 + [0, 63, 127, 191] + [255] * 60).all()


@pytest.fixture
def init(tmp_path):
    image = Image.new("RGB", (48, 40), (120, 160, 200))
    ImageDraw.Draw(image).ellipse((8, 8, 36, 30), fill=(220, 80, 40))
    image.save(tmp_path / "init.png")
    return tmp_path / "init.png"


def _made(capsys, j, *args, seed="5"):
    before = {r.id for r in list_runs(Journal.open(j))} if (j / "journal.toml").exists() else set()
    code, out, err = run_cli(capsys, "generate", "a red circle", *TINY, "--seed", seed, "--journal", str(j), *args)
    assert code == 0, err
    (run,) = [r for r in list_runs(Journal.open(j)) if r.id not in before]
    steps = [e for e in map(json.loads, out.splitlines()) if e.get("event") == "Step"]
    return run, np.asarray(Image.open(run.image(run.record.cells[0])).convert("RGB"), dtype=int), steps


def test_the_image_is_the_upscaled_size_made_as_tiles_recorded_and_rerun_byte_identically(init, tmp_path, capsys):
    j = tmp_path / "j"
    run, out, steps = _made(capsys, j, "--init-image", str(init), "--steps", "4", "--sd-upscale", "2",
                            "--sd-upscale-overlap", "16", "--max-batch", "3")
    assert out.shape == (80, 96, 3)  # 48x40 twice over: 4 tiles of 64x64 (2 across, 2 down)
    p = run.record.params
    assert (p.width, p.height, p.strength, p.sd_upscale, p.sd_upscale_overlap, p.sd_upscale_upscaler,
            p.sd_upscale_batch, p.sd_upscale_size) == (64, 64, 0.75, 2.0, 16, "Lanczos", 3, [96, 80])
    assert steps[-1]["done"] == steps[-1]["total"] == 6  # 3 steps of 4 for each of 2 calls (3 tiles, then 1)
    upscaled = np.asarray(a1111_upscale(Image.open(init).convert("RGB"), "Lanczos", 2), dtype=int)
    assert np.abs(out - upscaled).mean() > 3  # made again, not the upscale alone
    alone, alone_out, _ = _made(capsys, j, "--init-image", str(init), "--steps", "4", "--sd-upscale", "2",
                                "--sd-upscale-overlap", "16", "--max-batch", "1")
    assert np.abs(alone_out - out).max() <= 2  # a tile's seed is its own, whatever its batch (float order aside)
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Upscaled", "--journal", str(j))
    assert code == 0, err
    assert Journal.open(j).get(1).params["sd_upscale_size"] == [96, 80]
    code, text, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "identical" in text + err, text + err


def test_each_tile_is_img2img_of_its_crop_with_seed_plus_its_place(init, tmp_path, capsys):
    """Two tiles across (96x64 in 64x64 tiles overlapping by 32): past the overlap, the image is tile 1 alone, which
    is the img2img of its crop with seed 5 + 1; the left part before it tile 0's, seed 5."""
    j = tmp_path / "j"
    source = Image.open(init).convert("RGB").resize((48, 32), Image.LANCZOS)
    source.save(tmp_path / "small.png")
    _, out, _ = _made(capsys, j, "--init-image", str(tmp_path / "small.png"), "--steps", "3", "--sd-upscale", "2",
                      "--sd-upscale-overlap", "32")
    assert out.shape == (64, 96, 3)
    upscaled = a1111_upscale(source, "Lanczos", 2)
    for k, seed, (left, right) in ((0, "5", (0, 32)), (1, "6", (64, 96))):
        crop = upscaled.crop((32 * k, 0, 32 * k + 64, 64))
        crop.save(tmp_path / f"crop{k}.png")
        _, tile, _ = _made(capsys, j, "--init-image", str(tmp_path / f"crop{k}.png"), "--steps", "3", seed=seed)
        assert (out[:, left:right] == tile[:, left - 32 * k : right - 32 * k]).all()


def test_none_keeps_the_init_images_size_and_nearest_upscales_otherwise(init, tmp_path, capsys):
    j = tmp_path / "j"
    kept, kept_out, _ = _made(capsys, j, "--init-image", str(init), "--steps", "2", "--sd-upscale", "2",
                              "--sd-upscale-upscaler", "none", "--sd-upscale-overlap", "8")
    assert kept_out.shape == (40, 48, 3) and kept.record.params.sd_upscale_upscaler == "None"  # (A1111: no upscale)
    _, nearest, _ = _made(capsys, j, "--init-image", str(init), "--steps", "2", "--sd-upscale", "1.5",
                          "--sd-upscale-upscaler", "Nearest", "--sd-upscale-overlap", "16")
    assert nearest.shape == (56, 72, 3)  # 48x40 × 1.5 = 72x60, rounded down to multiples of 8


@pytest.mark.parametrize("args, says", [
    (("--sd-upscale", "2"), "give --init-image"),
    (("--init-image", "INIT", "--sd-upscale", "0"), "above 0"),
    (("--init-image", "INIT", "--sd-upscale", "2", "--sd-upscale-overlap", "64"), "--sd-upscale-overlap under 64"),
    (("--init-image", "INIT", "--sd-upscale", "2", "--sd-upscale-upscaler", "R-ESRGAN 4x+"), "None, Lanczos, Nearest"),
    (("--init-image", "INIT", "--sd-upscale", "3000", "--sd-upscale-overlap", "8"), "over the limit"),
    (("--init-image", "INIT", "--sd-upscale-overlap", "8"), "give --sd-upscale"),
    (("--init-image", "INIT", "--sd-upscale", "2", "--mask", "INIT"), "leave out one of them"),
    (("--init-image", "INIT", "--sd-upscale", "0.1", "--sd-upscale-overlap", "8"), "too small"),
])
def test_bad_values_are_one_line_and_nothing_is_written(init, tmp_path, capsys, args, says):
    j = tmp_path / "j"
    args = tuple(str(init) if a == "INIT" else a for a in args)
    code, _, err = run_cli(capsys, "generate", "a red circle", *TINY, "--steps", "2", "--journal", str(j), *args)
    assert code != 0 and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not j.exists()


def test_a_specs_params_give_it_and_flags_win(init):
    spec = Spec(prompt="p", params=RunParams(sd_upscale=2, sd_upscale_overlap=8, sd_upscale_upscaler="nearest"))
    options = resolve(spec, GivenOptions(init_image=str(init), size=(64, 64)), Settings())
    assert (options.sd_upscale, options.sd_upscale_overlap, options.sd_upscale_upscaler) == (2, 8, "nearest")
    assert sd_upscale_params(options, (48, 40))["sd_upscale_upscaler"] == "Nearest"  # (recorded by its A1111 name)
    flagged = resolve(spec, GivenOptions(init_image=str(init), size=(64, 64), sd_upscale=1.5), Settings())
    assert flagged.sd_upscale == 1.5
    with pytest.raises(RunError, match="under 64"):
        resolve(spec, GivenOptions(init_image=str(init), size=(64, 64), sd_upscale_overlap=64), Settings())


def test_an_imported_a1111_sd_upscale_is_read_and_named_in_one_line_by_rerun(tmp_path, capsys):
    text = ("a castle\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 7, Size: 64x64, Model: tiny, Denoising "
            "strength: 0.4, SD upscale overlap: 8, SD upscale upscaler: Lanczos")
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "import", str(make_png(tmp_path / "a.png", text={"parameters": text})), "--title",
                           "Upscaled", "--journal", j)
    assert code == 0, err
    params = Journal.open(j).get(1).params
    assert (params["sd_upscale_overlap"], params["sd_upscale_upscaler"]) == (8, "Lanczos")
    assert "not_applied" not in params  # (read, not kept as a field promptism knows nothing of)
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)
    assert code != 0 and err.splitlines() == ["promptism: --strict: #1 is not made, as it would leave out A1111's SD "
                                              "upscale (overlap 8, upscaler Lanczos, denoising strength 0.4: it made "
                                              "the image as tiles of an upscaled init image, which no import records)"]


# ------------------------------------------------------------------ the A1111 API


def _a1111_test_request(image: Image.Image) -> dict:
    """The request A1111 1.10's test/test_img2img.py sends (its simple_img2img_request), with the SD upscale script."""
    return {"batch_size": 1, "cfg_scale": 7, "denoising_strength": 0.75, "eta": 0, "height": 64,
            "include_init_images": False, "init_images": [_b64(image)], "inpaint_full_res": False,
            "inpaint_full_res_padding": 0, "inpainting_fill": 0, "inpainting_mask_invert": False, "mask": None,
            "mask_blur": 4, "n_iter": 1, "negative_prompt": "", "override_settings": {}, "prompt": "example prompt",
            "resize_mode": 0, "restore_faces": False, "s_churn": 0, "s_noise": 1, "s_tmax": 0, "s_tmin": 0,
            "sampler_index": "Euler a", "seed": -1, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "steps": 3,
            "styles": [], "subseed": -1, "subseed_strength": 0, "tiling": False, "width": 64,
            "script_name": "sd upscale", "script_args": ["", 8, "Lanczos", 2.0]}


def test_the_a1111_test_request_upscales_and_bad_script_args_are_a_422_naming_them(sdapi, jdir, init):  # noqa: F811
    url = f"{sdapi.url}/img2img"
    body = _a1111_test_request(Image.open(init))
    refusals = [({"script_args": ["", 8, "Lanczos"]}, ["body", "script_args"]),
                ({"script_args": ["", 64, "Lanczos", 2]}, ["body", "script_args", 1]),  # (the tile is 64)
                ({"script_args": ["", -1, "Lanczos", 2]}, ["body", "script_args", 1]),
                ({"script_args": ["", 8, "R-ESRGAN 4x+", 2]}, ["body", "script_args", 2]),
                ({"script_args": ["", 8, "Lanczos", 0]}, ["body", "script_args", 3]),
                ({"script_args": ["", 8, "Lanczos", 4000]}, ["body", "script_args", 3]),
                ({"script_args": ["", 8, "Lanczos", 10 ** 400]}, ["body", "script_args", 3]),  # (was a 500)
                ({"script_args": ["", 80, "Lanczos", 2]}, ["body", "script_args", 1]),  # (the 96x80 image's height)
                ({"width": 8, "height": 8, "script_args": ["", 7, "Lanczos", 8]}, ["body", "script_args", 1]),  # tiles
                ({"script_name": "X/Y/Z plot"}, ["body", "script_name"])]
    for changed, loc in refusals:
        refused = httpx.post(url, json={**body, **changed}, timeout=300, auth=sdapi.auth)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == loc, refused.text
    from workshop.service import a1111

    assert a1111.Img2ImgRequest(**{**body, "batch_size": 4, "n_iter": 20}).count == 20  # (tiles a call, 20 images)
    too_many = httpx.post(url, json={**body, "batch_size": 1, "n_iter": 65}, timeout=300, auth=sdapi.auth)
    assert too_many.status_code == 422 and "n_iter is 65 images" in too_many.text
    txt2img = httpx.post(f"{sdapi.url}/txt2img", json={"prompt": "x", "script_name": "sd upscale"}, timeout=300,
                         auth=sdapi.auth)
    assert txt2img.status_code == 422 and txt2img.json()["detail"][0]["loc"] == ["body", "script_name"]  # (img2img's)
    assert not jdir.exists()
    made = httpx.post(url, json={**body, "script_name": "SD Upscale"}, timeout=600, auth=sdapi.auth)
    assert made.status_code == 200, made.text
    (image,) = made.json()["images"]
    assert Image.open(io.BytesIO(base64.b64decode(image))).size == (96, 80)
    info = json.loads(made.json()["info"])
    assert (info["width"], info["height"]) == (64, 64)  # A1111's Size: the tile
    assert "SD upscale overlap: 8, SD upscale upscaler: Lanczos" in info["infotexts"][0]
    p = load_run(Journal.open(jdir), info["promptism_run"]).record.params
    assert (p.sd_upscale, p.sd_upscale_overlap, p.sd_upscale_upscaler, p.sd_upscale_size) == (2.0, 8, "Lanczos", [96, 80])
