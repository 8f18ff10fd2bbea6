"""A1111's hires fix (issue 26): ``--hires SCALE`` with ``--hires-steps``, ``--hires-strength`` and
``--hires-upscaler`` — a first pass at the size, its latents (or pixels) upscaled, a second, image-to-image pass at
the hires size — recorded and rerun byte for byte; an imported A1111 experiment with a hires fix made again with it.
All on the tiny model at 64 px and 2–3 steps."""

import json

import numpy as np
import pytest
from PIL import Image

from journal import Journal
from tests.helpers import images_of, make_png, run_cli
from tests.test_weights import sdxl  # noqa: F401 - the tiny SDXL pipeline fixture
from workshop.runner.engine import Engine, Job
from workshop.runner.hires import UPSCALERS, Hires, hires_size, schedule
from workshop.runner.runs import list_runs

TINY = ("--model", "tiny", "--steps", "2", "--seeds", "1", "--clip", "none")


def _generate(capsys, j, *args: str, prompt: str = "a red circle"):
    """The run ``generate`` made, and its Step events."""
    before = {r.id for r in list_runs(Journal.open(j))} if (j / "journal.toml").exists() else set()
    code, out, err = run_cli(capsys, "generate", prompt, *TINY, "--json", *args, "--journal", str(j))
    assert code == 0, err
    (run,) = [r for r in list_runs(Journal.open(j)) if r.id not in before]
    steps = [e for e in map(json.loads, out.splitlines()) if e.get("event") == "Step"]
    return run, steps


def _sizes(run) -> list[tuple[int, int]]:
    return [Image.open(run.image(c)).size for c in run.record.cells]


def test_the_images_have_the_hires_size_both_passes_run_and_a_rerun_is_byte_identical(tmp_path, capsys):
    j = tmp_path / "j"
    run, steps = _generate(capsys, j, "--size", "64x48", "--hires", "2", "--hires-steps", "3")
    assert _sizes(run) == [(128, 96)]
    p = run.record.params
    assert (p.width, p.height, p.hires, p.hires_steps, p.hires_strength, p.hires_upscaler) == (64, 48, 2.0, 3, 0.7, "Latent")
    assert [(s["step"], s["steps"], s["done"], s["total"]) for s in steps] == [
        (1, 2, 1, 5), (2, 2, 2, 5), (1, 3, 3, 5), (2, 3, 4, 5), (3, 3, 5, 5)]  # the first pass's 2, the second's 3
    plain, _ = _generate(capsys, j, "--size", "128x96")
    sheet, plain_sheet = (Image.open(r.folder / "sheet-unlabelled.png") for r in (run, plain))
    assert sheet.size == plain_sheet.size  # a tile for a 128x96 image, not the 64x48 its cells record
    assert run_cli(capsys, "accept", run.id, "--title", "Hires", "--journal", str(j))[0] == 0
    assert Journal.open(j).get(1).params["hires"] == 2.0
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "identical" in out + err, out + err


def test_every_upscaler_makes_the_hires_size_and_each_kind_its_own_image(tmp_path, capsys):
    j = tmp_path / "j"
    made = {}
    for name in UPSCALERS:
        run, steps = _generate(capsys, j, "--size", "64x64", "--hires", "1.5", "--hires-upscaler", name.lower(),
                               "--hires-strength", "0.5")
        assert run.record.params.hires_upscaler == name  # (its A1111 name, whatever the case it was given in)
        assert _sizes(run) == [(96, 96)] and steps[-1]["done"] == 4
        made[name] = images_of(run)[0]
        if name == "Lanczos":  # the pixels' way: decoded, resized, encoded again (sampled with the image's generator)
            assert run_cli(capsys, "accept", run.id, "--title", "Lanczos", "--journal", str(j))[0] == 0
    assert len({made["Latent"], made["Latent (nearest)"], made["Latent (bicubic)"], made["Lanczos"],
                made["Nearest"]}) == 5  # the latents interpolated three ways, the pixels resized two
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "identical" in out + err, out + err


def test_scale_1_still_makes_the_second_pass_and_the_hires_settings_change_it(tmp_path, capsys):
    """A1111 takes Hires upscale 1: the same size, made again image to image."""
    j = tmp_path / "j"
    plain, _ = _generate(capsys, j)
    same, steps = _generate(capsys, j, "--hires", "1", "--hires-steps", "3")
    weaker, _ = _generate(capsys, j, "--hires", "1", "--hires-steps", "3", "--hires-strength", "0.5")
    assert _sizes(same) == _sizes(plain) == [(64, 64)] and len(steps) == 5
    assert len({images_of(plain)[0], images_of(same)[0], images_of(weaker)[0]}) == 3  # (3 steps of 4, of 6)


def test_strength_0_is_the_upscale_alone_as_a1111s_schedule_of_no_steps(tmp_path, capsys):
    """A1111 at denoising strength 0 makes a second pass of no steps (its API tests send that): the first pass's
    image, upscaled."""
    j = tmp_path / "j"
    plain, _ = _generate(capsys, j)
    upscaled, steps = _generate(capsys, j, "--hires", "2", "--hires-strength", "0", "--hires-upscaler", "Lanczos")
    assert steps[-1]["total"] == steps[-1]["done"] == 2  # the first pass's steps alone
    expected = Image.open(plain.image(plain.record.cells[0])).convert("RGB").resize((128, 128), Image.LANCZOS)
    assert Image.open(upscaled.image(upscaled.record.cells[0])).convert("RGB").tobytes() == expected.tobytes()
    latent, _ = _generate(capsys, j, "--hires", "2", "--hires-strength", "0")  # the latents enlarged, decoded
    assert _sizes(latent) == [(128, 128)] and images_of(latent) != images_of(upscaled)


def test_a_specs_params_and_a_size_axis_take_the_hires_fix(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('prompt = "a red circle"\nseeds = 1\n[params]\nhires = 2\nhires_steps = 1\n'
                    'hires_upscaler = "Latent (nearest)"\n[axes]\nx = "size=64x64,32x64"\n', encoding="utf-8")
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, "grid", str(spec), "--model", "tiny", "--steps", "2", "--clip", "none",
                           "--journal", str(j))
    assert code == 0, err
    (run,) = list_runs(Journal.open(j))
    assert _sizes(run) == [(128, 128), (64, 128)]
    assert (run.record.params.hires_steps, run.record.params.hires_upscaler) == (1, "Latent (nearest)")


@pytest.mark.parametrize("args, says", [
    (("--hires", "2", "--hires-upscaler", "R-ESRGAN 4x+"), "the hires upscaler 'R-ESRGAN 4x+' is not one promptism has"),
    (("--hires", "2", "--hires-upscaler", "4x-UltraSharp"), "use one of Latent, Latent (antialiased)"),
    (("--hires", "0"), "a number above 0"),
    (("--hires", "-2"), "a number above 0"),
    (("--hires", "nan"), "--hires: it must be a finite number, not nan"),
    (("--hires", "0.1"), "too small"),
    (("--hires", "200", "--size", "64x64"), "over the limit of 67,108,864 (max_image_pixels in config.toml): use --hires 128"),
    (("--hires", "200"), "over the limit"),  # the model's own size: checked once it loads, before anything is written
    (("--hires", "2", "--init-image", "INIT"), "with --init-image this is img2img: leave out --hires"),
    (("--hires", "2", "--hires-strength", "1.5"), "is 0 (the upscale alone) to 1, not 1.5"),
    (("--hires", "2", "--hires-strength", "-0.1"), "is 0 (the upscale alone) to 1, not -0.1"),
    (("--hires", "2", "--hires-steps", "-1"), "hires steps are 1 or more, or 0"),
    (("--hires", "2", "--hires-steps", "900", "--hires-strength", "0.1"), "a schedule of 9000 steps"),
    (("--hires-strength", "0.5"), "--hires-strength is a setting of the hires fix: give --hires SCALE"),
    (("--hires", "2", "--variation-seed", "5", "--variation-strength", "0.5"), "a variation seed with the hires fix"),
    (("--hires", "2", "--model", "vqgan-clip:shapes-vae+shapes-clip"), "the CLIP-guided backend does not sample"),
])
def test_bad_hires_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, says):
    init = str(make_png(tmp_path / "init.png"))
    j = tmp_path / "j"
    args = [init if a == "INIT" else a for a in args]
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "2", "--clip", "none",
                           *args, "--journal", str(j))
    assert code != 0 and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not j.exists()  # nothing written, not even the journal


@pytest.mark.parametrize("hires_steps, strength", [(1, 0.7), (3, 0.5), (2, 1.0), (4, 0.999), (10, 0.3)])
def test_the_second_pass_runs_the_steps_a1111_runs(hires_steps, strength):
    """A1111 runs the last N steps of a schedule of int(N / min(strength, 0.999)); diffusers' img2img runs
    int(num_inference_steps × strength) of num_inference_steps."""
    total, given = schedule(hires_steps, strength)
    assert total == max(hires_steps, int(hires_steps / min(strength, 0.999)))
    assert int(total * given) == hires_steps and 0 < given <= 1


def test_the_hires_size_is_a1111s_rounded_down_to_a_multiple_of_8():
    assert hires_size(512, 768, 1.5) == (768, 1152)
    assert hires_size(512, 512, 1.3) == (664, 664)  # int(665.6) = 665 → latents of 83 → 664
    assert hires_size(64, 48, 2) == (128, 96)


INFOTEXT = ("a lighthouse at dusk, (glowing:1.3)\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, CFG scale: 5, "
            "Seed: 7, Size: 64x64, Model hash: 0123abcd, Model: tiny, Denoising strength: 0.5, {hires}")


def _rerun_import(tmp_path, capsys, hires: str, *extra: str):
    j = tmp_path / "j"
    src = make_png(tmp_path / "a1111.png", size=(128, 128), text={"parameters": INFOTEXT.format(hires=hires)})
    code, _, err = run_cli(capsys, "import", str(src), "--title", "From A1111", "--journal", str(j))
    assert code == 0, err
    code, out, err = run_cli(capsys, "rerun", "1", *extra, "--journal", str(j))
    assert code == 0, err
    runs = sorted(list_runs(Journal.open(j)), key=lambda r: r.record.created_ns)
    return runs[-1], out + err


def test_an_imported_a1111_hires_fix_is_made_again_with_it_and_twice_the_same(tmp_path, capsys):
    run, said = _rerun_import(tmp_path, capsys, "Hires upscale: 2, Hires steps: 3, Hires upscaler: Latent",
                              "--model", "tiny")
    assert _sizes(run) == [(128, 128)]
    p = run.record.params
    assert (p.width, p.hires, p.hires_steps, p.hires_strength, p.hires_upscaler) == (64, 2.0, 3, 0.5, "Latent")
    assert "not make" not in said and "hires" not in said.lower() and "no init image" not in said, said
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", str(tmp_path / "j"))
    assert code == 0, err
    again = max(list_runs(Journal.open(tmp_path / "j")), key=lambda r: r.record.created_ns)
    assert again.id != run.id and images_of(again) == images_of(run)


@pytest.mark.parametrize("hires, size, upscaler, says", [
    ("Hires upscale: 2, Hires upscaler: 4x-UltraSharp", (128, 128), "Lanczos",
     "Hires upscaler 4x-UltraSharp: not here (it needs its network's weights), so Lanczos"),
    ("Hires resize: 96x96, Hires upscaler: Latent (bicubic), Hires sampler: DPM++ 2M", (96, 96), "Latent (bicubic)",
     "Hires sampler (A1111 settings or extensions' fields promptism does not apply)"),
    ("Hires resize: 0x128, Hires upscaler: None", (128, 128), "None", None),
    ("Hires resize: 128x96, Hires upscaler: Latent", (64, 64), None,
     "Hires resize 128x96 does not keep 64x64's proportions, so A1111 cropped its second pass"),
])
def test_an_imported_hires_fix_promptism_cannot_make_as_it_was_is_said_in_one_line(tmp_path, capsys, hires, size,
                                                                                    upscaler, says):
    run, said = _rerun_import(tmp_path, capsys, hires)
    assert _sizes(run) == [size] and run.record.params.hires_upscaler == upscaler
    assert (says in said) if says else "hires" not in said.lower(), said


@pytest.mark.parametrize("upscaler", ["Latent (bicubic antialiased)", "Lanczos"])
def test_an_sdxl_pipeline_makes_both_passes_with_its_pooled_embeddings(sdxl, upscaler):  # noqa: F811
    """SDXL's img2img takes the first pass's latents (and its pooled prompt embeddings) as SD's does."""
    job = Job(0, "portrait of a gnome", "blurry", 3, 2, 5.0, 64, 48)
    made = [next(Engine(sdxl, hires=hires).run([job], [[0]])).pixels for hires in (
        Hires(2.0, 2, 0.6, upscaler), Hires(2.0, 2, 0.6, upscaler), Hires(2.0, 3, 0.6, upscaler))]
    assert made[0].shape == (1, 96, 128, 3)
    assert np.array_equal(made[0], made[1]) and not np.array_equal(made[0], made[2])
