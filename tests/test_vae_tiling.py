"""A1111's VAE, Tiling and Variation seed (issue 26): ``--vae NAME`` swaps a VAE from the install (or a file) in for
the model's own, ``--tiling`` makes images that wrap round, ``--variation-seed`` / ``--variation-strength`` slerp each
image's starting noise toward another seed's — each recorded, rerun byte for byte, never left in the warm pipeline
for the next run, and read from an imported A1111 infotext."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from journal import Journal
from tests.helpers import images_of, make_png, run_cli, tiny_pipeline
from tests.ldm_export import vae_to_ldm, write_vae_file
from workshop.runner.model_files import short_hash
from workshop.runner.runs import list_runs


@pytest.fixture
def webui(tmp_path):
    folder = tmp_path / "webui"
    vae = tiny_pipeline().vae
    write_vae_file(vae, folder / "models" / "VAE" / "tinyvae.safetensors", change=0.02)  # slightly other weights
    write_vae_file(vae, folder / "models" / "VAE" / "own.safetensors")  # the model's own, as a file
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{folder}"\n', encoding="utf-8")
    return folder


def made(capsys, journal: Path, *args: str, seeds: str = "1"):
    """The run ``promptism generate "a red circle" ARGS`` made (tiny, 2 steps, no scorer, ``seeds``)."""
    before = {r.id for r in list_runs(Journal.open(journal))} if journal.exists() else set()
    code, _, err = run_cli(capsys, "generate", "a red circle", *args, "--model", "tiny", "--steps", "2", "--seeds",
                           seeds, "--clip", "none", "--journal", str(journal))
    assert code == 0, err
    (new,) = [r for r in list_runs(Journal.open(journal)) if r.id not in before]
    return new


def one_line_and_nothing_written(capsys, tmp_path, *args: str) -> str:
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "1", "--clip", "none", *args,
                           "--journal", str(tmp_path / "bad"))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "bad").exists()
    return err


def _accept_and_rerun(capsys, journal: Path, run) -> str:
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Kept", "--journal", str(journal))
    assert code == 0, err
    number = len(Journal.open(journal).search(limit=None))
    code, out, err = run_cli(capsys, "rerun", str(number), "--verify", "--journal", str(journal))
    assert code == 0 and "pixel-identical" in out, out + err
    return out


# ---------------------------------------------------------------------------------------------------- VAE

def test_a_vae_changes_the_pixels_the_models_own_gives_its_bytes_and_it_stays_out_of_the_warm_pipeline(webui, tmp_path, capsys):
    j = tmp_path / "j"
    plain = images_of(made(capsys, j))
    other = made(capsys, j, "--vae", "tinyvae.safetensors")
    assert images_of(other) != plain
    assert other.record.params.vae == f"tinyvae.safetensors: {short_hash(webui / 'models' / 'VAE' / 'tinyvae.safetensors')}"
    assert images_of(made(capsys, j)) == plain  # the next run, on the same warm pipeline, has the model's own VAE
    own = made(capsys, j, "--vae", "own")  # the model's own weights from a file: its bytes
    assert images_of(own) == plain and own.record.params.vae.startswith("own.safetensors: ")
    for same in ("None", "Automatic"):  # A1111's names for the model's own VAE
        run = made(capsys, j, "--vae", same)
        assert images_of(run) == plain and run.record.params.vae is None
    by_path = made(capsys, j, "--vae", str(webui / "models" / "VAE" / "tinyvae.safetensors"))  # a path: the same file
    assert images_of(by_path) == images_of(other) and by_path.record.params.vae == other.record.params.vae
    outside = write_vae_file(tiny_pipeline().vae, tmp_path / "elsewhere" / "mine.safetensors", change=0.02)
    mine = made(capsys, j, "--vae", str(outside))
    assert images_of(mine) == images_of(other) and mine.record.params.vae == f"{outside}: {short_hash(outside)}"


def test_a_diffusers_vae_folder_and_a_spec_params_vae(webui, tmp_path, capsys):
    from diffusers import AutoencoderKL

    from workshop.runner.vae import VaeFile, _state

    vae = AutoencoderKL.from_config(tiny_pipeline().vae.config)  # tinyvae's weights, saved as a diffusers folder
    vae.load_state_dict(_state(VaeFile("x", webui / "models" / "VAE" / "tinyvae.safetensors"), vae.config))
    vae.save_pretrained(tmp_path / "vae-folder")
    j = tmp_path / "j"
    by_file = made(capsys, j, "--vae", "tinyvae")
    assert images_of(made(capsys, j, "--vae", str(tmp_path / "vae-folder"))) == images_of(by_file)
    spec = tmp_path / "spec.toml"
    spec.write_text('prompt = "a red circle"\nseeds = 1\n[params]\nvae = "tinyvae"\nsteps = 2\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "grid", str(spec), "--model", "tiny", "--clip", "none", "--journal", str(j))
    assert code == 0, err
    newest = max(list_runs(Journal.open(j)), key=lambda r: r.record.created_ns)
    assert images_of(newest) == images_of(by_file) and newest.record.params.vae == by_file.record.params.vae


def test_a_run_with_a_vae_reruns_byte_for_byte_and_names_the_file_that_is_missing_or_changed(webui, tmp_path, capsys):
    j = tmp_path / "j"
    run = made(capsys, j, "--vae", "tinyvae")
    _accept_and_rerun(capsys, j, run)
    file = webui / "models" / "VAE" / "tinyvae.safetensors"
    hashed = short_hash(file)
    renamed = file.with_name("renamed.safetensors")
    file.rename(renamed)  # found again by its hash
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "pixel-identical" in out, out + err
    write_vae_file(tiny_pipeline().vae, file, change=0.05, seed=1)  # the name back, with other weights
    renamed.unlink()
    runs = len(list_runs(Journal.open(j)))
    code, _, err = run_cli(capsys, "rerun", "1", "--journal", str(j))
    assert code != 0 and f"the VAE tinyvae.safetensors has changed since #1 was made (hash {short_hash(file)}, then " \
        f"{hashed})" in err and len(err.strip().splitlines()) == 1, err
    file.unlink()
    code, _, err = run_cli(capsys, "rerun", "1", "--journal", str(j))
    assert code != 0 and f"the VAE tinyvae.safetensors (hash {hashed}) that #1 was made with is not here" in err, err
    assert len(err.strip().splitlines()) == 1 and len(list_runs(Journal.open(j))) == runs


def test_a_vae_that_cannot_be_used_is_one_line_and_nothing_is_written(webui, tmp_path, capsys):
    from diffusers import AutoencoderKL

    vaes = webui / "models" / "VAE"
    small = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), norm_num_groups=8,
                          down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    write_vae_file(small, vaes / "other-arch.safetensors")  # another architecture's VAE
    torch.save({"state_dict": vae_to_ldm(small.state_dict(), small.config)}, vaes / "pickled.pt")
    (vaes / "broken.safetensors").write_bytes(b"not a safetensors file")
    assert "no vae 'nosuch' here; found: broken, other-arch, own, pickled, tinyvae" in \
        one_line_and_nothing_written(capsys, tmp_path, "--vae", "nosuch")
    assert "the VAE other-arch.safetensors does not fit this model's VAE (size mismatch" in \
        one_line_and_nothing_written(capsys, tmp_path, "--vae", "other-arch")
    assert "the VAE pickled.pt is a pickle file, which can run code when loaded" in \
        one_line_and_nothing_written(capsys, tmp_path, "--vae", "pickled")
    assert "broken.safetensors is not a readable safetensors file" in \
        one_line_and_nothing_written(capsys, tmp_path, "--vae", "broken")
    assert f"--vae '{tmp_path / 'nowhere.safetensors'}': no such file" in \
        one_line_and_nothing_written(capsys, tmp_path, "--vae", str(tmp_path / "nowhere.safetensors"))
    assert "is for diffusion models; the vqgan-clip backend has its own decoder" in \
        one_line_and_nothing_written(capsys, tmp_path, "--vae", "tinyvae", "--model", "vqgan-clip:shapes+shapes-clip")


# ---------------------------------------------------------------------------------------------------- tiling

def test_a_tiled_image_wraps_round(tmp_path):
    """Tiling makes every convolution pad circularly, so the picture lives on a torus: noise shifted sideways makes
    the same picture shifted sideways, what goes past the right edge coming back on the left — a seamless tile. An
    untiled picture's edges are walls: the shift changes it. (The tiny model's pictures are noise, whose neighbouring
    columns differ as much as its two edges do, so the shift, not an edge difference, is what tells them apart.)"""
    from workshop.runner.engine import circular

    pipe = tiny_pipeline()
    factor = pipe.vae_scale_factor
    noise = torch.randn((1, 4, 64 // factor, 64 // factor), generator=torch.Generator().manual_seed(0))

    def picture(latents, tiled: bool) -> np.ndarray:
        with circular(pipe, tiled):
            return pipe("a red circle", latents=latents.clone(), num_inference_steps=2, output_type="np").images[0]

    shift = 8  # latent columns: a whole number of the UNet's downsamplings
    for tiled in (True, False):
        moved = np.abs(np.roll(picture(noise, tiled), shift * factor, axis=1) - picture(torch.roll(noise, shift, 3), tiled))
        assert bool(moved.max() < 1e-5) == tiled, moved.max()
    assert all(m.padding_mode == "zeros" for m in pipe.unet.modules() if isinstance(m, torch.nn.Conv2d))  # put back


def test_tiling_is_recorded_reruns_byte_for_byte_and_does_not_stay_in_the_warm_pipeline(tmp_path, capsys):
    j = tmp_path / "j"
    plain = images_of(made(capsys, j))
    tiled = made(capsys, j, "--tiling")
    assert images_of(tiled) != plain and tiled.record.params.tiling is True
    assert images_of(made(capsys, j)) == plain  # the warm pipeline's convolutions are its own again
    assert made(capsys, j, "--no-tiling").record.params.tiling is None
    _accept_and_rerun(capsys, j, tiled)
    assert "--tiling switches the UNet's convolutions to wrap round, which a compiled UNet has fixed" in \
        one_line_and_nothing_written(capsys, tmp_path, "--tiling", "--compile")


# ---------------------------------------------------------------------------------------------------- variation seed

def test_variation_strength_0_is_the_seeds_own_picture_1_the_variation_seeds_and_between_is_neither(tmp_path, capsys):
    """The tiny model samples with DDIM (eta 0): its picture is its starting noise's alone, so strength 1 — the
    variation seed's noise — is the variation seed's own picture."""
    j = tmp_path / "j"
    own, seven = images_of(made(capsys, j)), images_of(made(capsys, j, seeds="7"))
    at_0 = made(capsys, j, "--variation-seed", "7", "--variation-strength", "0")
    assert images_of(at_0) == own  # the noise drawn as the pipeline draws it, to the bit
    assert images_of(made(capsys, j, "--variation-seed", "7", "--variation-strength", "1")) == seven
    half = made(capsys, j, "--variation-seed", "7", "--variation-strength", "0.5")
    assert images_of(half)[0] not in (own[0], seven[0])
    assert (half.record.params.variation_seed, half.record.params.variation_strength) == (7, 0.5)
    assert images_of(made(capsys, j, "--variation-seed", "8", "--variation-strength", "0.5")) != images_of(half)
    # the variation seed is the run's: every seed of a grid moves toward the same noise (at 1, all the same picture)
    both = made(capsys, j, "--variation-seed", "7", "--variation-strength", "1", seeds="1,2")
    assert images_of(both) == seven * 2
    _accept_and_rerun(capsys, j, half)


def test_the_slerp_keeps_the_noise_on_its_sphere_and_its_ends():
    from workshop.runner.engine import slerp

    a, b = (torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    assert torch.equal(slerp(0.0, a, b), a) and torch.equal(slerp(1.0, a, b), b)
    half = slerp(0.5, a, b)
    assert torch.allclose(half.norm(dim=1), ((a.norm(dim=1) + b.norm(dim=1)) / 2), rtol=0.2)  # not lerp's shrinking
    assert half.norm() > (a + b).norm() / 2 * 1.2
    assert torch.allclose(slerp(0.3, a, a), a)  # the same noise: nothing to turn (and no division by nothing)


@pytest.mark.parametrize("args, said", [
    (["--variation-seed", "7", "--variation-strength", "1.5"], "the variation strength must be a number from 0"),
    (["--variation-seed", "7", "--variation-strength", "nan"], "--variation-strength: it must be a finite number"),
    (["--variation-seed", "7"], "--variation-seed goes with --variation-strength"),
    (["--variation-strength", "0.3"], "--variation-strength goes with --variation-seed"),
    (["--variation-seed", "-1", "--variation-strength", "0.3"], "the variation seed must be between 0 and 4294967295"),
])
def test_a_variation_seed_that_cannot_apply_is_one_line(tmp_path, capsys, args, said):
    assert said in one_line_and_nothing_written(capsys, tmp_path, *args)


def test_a_variation_seed_with_an_init_image_is_one_line(tmp_path, capsys):
    init = make_png(tmp_path / "init.png")
    assert "--variation-seed shapes the noise a run starts from; with --init-image it starts from the image" in \
        one_line_and_nothing_written(capsys, tmp_path, "--variation-seed", "3", "--variation-strength", "0.3",
                                     "--init-image", str(init))


# ---------------------------------------------------------------------------------------------------- import

INFOTEXT = ("a lighthouse at dusk\nNegative prompt: blurry\nSteps: 2, Sampler: DDIM, CFG scale: 5, Seed: 1, Size: 64x64, "
            "Model hash: 0123abcd, Model: tiny{extra}, Version: v1.10.1")


def _import(tmp_path, capsys, text: str) -> str:
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "import", str(make_png(tmp_path / "a1111.png", text={"parameters": text})), "--title",
                           "From A1111", "--journal", j)
    assert code == 0, err
    return j


def test_an_infotexts_vae_tiling_and_variation_seed_are_read_and_made_again(webui, tmp_path, capsys):
    file = webui / "models" / "VAE" / "tinyvae.safetensors"
    extra = (f", VAE hash: {short_hash(file)}, VAE: tinyvae.safetensors, Tiling: True, Variation seed: 9, "
             "Variation seed strength: 0.4, Seed resize from: -1x-1")
    j = _import(tmp_path, capsys, INFOTEXT.format(extra=extra))
    params = Journal.open(j).get(1).params
    assert {k: params.get(k) for k in ("vae", "vae_hash", "tiling", "variation_seed", "variation_strength")} == {
        "vae": "tinyvae.safetensors", "vae_hash": short_hash(file), "tiling": True, "variation_seed": 9,
        "variation_strength": 0.4}
    assert "not_applied" not in params  # (Seed resize from -1x-1 is A1111's "off")
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0 and "not applied" not in out + err, out + err
    (run,) = list_runs(Journal.open(j))
    p = run.record.params
    assert (p.vae, p.tiling, p.variation_seed, p.variation_strength) == (
        f"tinyvae.safetensors: {short_hash(file)}", True, 9, 0.4)


def test_an_infotexts_vae_is_found_by_its_hash_and_a_missing_one_is_named(webui, tmp_path, capsys):
    file = webui / "models" / "VAE" / "tinyvae.safetensors"
    j = _import(tmp_path, capsys, INFOTEXT.format(extra=f", VAE hash: {short_hash(file)}, VAE: vae-ft-mse.safetensors"))
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)  # another name here: the same file by its hash
    assert code == 0 and "not applied" not in out + err, out + err
    assert list_runs(Journal.open(j))[0].record.params.vae == f"tinyvae.safetensors: {short_hash(file)}"
    j2 = str(tmp_path / "j2")
    src = make_png(tmp_path / "b.png", text={"parameters": INFOTEXT.format(
        extra=", VAE hash: 235745af8d, VAE: sdxl-vae.safetensors, Seed resize from: 96x64")})
    assert run_cli(capsys, "import", str(src), "--title", "Elsewhere", "--journal", j2)[0] == 0
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j2)
    assert code == 0, err
    assert ("VAE sdxl-vae.safetensors (hash 235745af8d): no such file in the installs' VAE folders (models/VAE of the "
            "a1111 / comfyui installs config.toml names), so the model's own VAE is used") in out, out
    assert "Seed resize from (A1111 settings or extensions' fields promptism does not apply)" in out, out
    assert list_runs(Journal.open(j2))[0].record.params.vae is None

