"""The CLIP-guided backend ("VQGAN+CLIP") on tiny real parts: the tiny pipeline's VAE, a tiny VQModel built here,
the shapes VAE, tiny-clip and shapes-clip — determinism, falling loss, init images, animations, the journal record,
cancel, rerun --verify, and one-line errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from journal import Journal
from tests.helpers import make_png, run_cli
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.errors import RunError
from workshop.contract import GuidedSettings
from workshop.runner.guided import load_guided, parse_spec, prompt_parts
from workshop.runner.models import resolve
from workshop.runner.runs import accept_run, list_runs
from workshop.runner.execution import RunOptions, execute, rerun

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vqgan(tmp_path_factory):
    """A tiny VQModel (a VQGAN's shape: encoder, codebook, decoder), saved as safetensors like any downloaded one."""
    from diffusers import VQModel

    torch.manual_seed(0)
    model = VQModel(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                    up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=3, num_vq_embeddings=64, vq_embed_dim=3,
                    norm_num_groups=8, sample_size=32)
    folder = tmp_path_factory.mktemp("vqgan")
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def generate(spec: str, prompts, seeds, steps=6, settings=GuidedSettings(cutouts=4), **kw):
    pipe = load_guided(parse_spec(spec), CPU)
    losses = []
    images, done = pipe(prompts, [""] * len(prompts), seeds, width=32, height=32, steps=steps, settings=settings,
                        on_step=lambda step, loss, frames: losses.append(loss.tolist()) or False, **kw)
    return images, losses, done


def test_model_names_and_weighted_prompts():
    assert parse_spec("vqgan-clip") == parse_spec("vqgan-clip:shapes+shapes-clip")
    spec = parse_spec("vqgan-clip:/models/vqgan+ViT-B-32:/ckpt/clip.safetensors+shapes-clip")
    assert spec.decoder == "/models/vqgan" and spec.clips == ("ViT-B-32:/ckpt/clip.safetensors", "shapes-clip")
    assert spec.credit == "vqgan-clip:vqgan+ViT-B-32:clip.safetensors+shapes-clip"  # no local paths in the credit
    assert parse_spec("vqgan-clip-models/x") is None
    assert parse_spec("shapes") is None
    assert prompt_parts("a red circle|pixel art:0.5|blurry:-1") == [("a red circle", 1.0), ("pixel art", 0.5), ("blurry", -1.0)]
    assert prompt_parts("pixel art: a red circle") == [("pixel art: a red circle", 1.0)]  # not a number: part of the text
    assert prompt_parts("a red circle|blurry:-1, glowing, pixel art") == [  # keywords a grid appends stay positive
        ("a red circle", 1.0), ("blurry", -1.0), ("glowing, pixel art", 1.0)]
    assert prompt_parts("a red circle", negative="blurry") == [("a red circle", 1.0), ("blurry", -1.0)]
    with pytest.raises(RunError, match="positive weight"):
        prompt_parts("blurry:-1")


def test_deterministic_for_a_seed_and_the_loss_falls():
    a, losses, done = generate("vqgan-clip:tiny+tiny-clip", ["a red circle", "a red circle"], [1, 2], steps=12)
    b, _, _ = generate("vqgan-clip:tiny+tiny-clip", ["a red circle"], [1], steps=12)
    assert done == 12 and len(losses) == 12
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))  # alone or in a batch, the same seed
    assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))  # another seed, another image
    for i in range(2):
        assert np.mean([step[i] for step in losses[-3:]]) < np.mean([step[i] for step in losses[:3]])


def test_a_vqgan_decoder_quantises_each_step_or_optimises_continuous_codes(vqgan):
    spec = f"vqgan-clip:{vqgan}+tiny-clip"
    quantised, losses, _ = generate(spec, ["a blue square"], [3], steps=8)
    continuous, _, _ = generate(spec, ["a blue square"], [3], steps=8, settings=GuidedSettings(cutouts=4, quantize=False))
    assert losses[-1][0] < losses[0][0]
    assert not np.array_equal(np.asarray(quantised[0]), np.asarray(continuous[0]))
    pipe = load_guided(parse_spec(spec), CPU)
    assert pipe.decoder.kind == "vq" and pipe.native_size == 32


def test_an_init_image_keeps_its_layout(tmp_path):
    init = Image.new("RGB", (32, 32), (40, 80, 220))
    init.paste((40, 170, 60), (6, 6, 20, 20))  # a green square on blue
    settings = GuidedSettings(cutouts=4, lr=0.05)
    from_init, _, _ = generate("vqgan-clip:shapes+shapes-clip", ["a red circle"], [0], steps=10, settings=settings,
                               init_image=init)
    from_grey, _, _ = generate("vqgan-clip:shapes+shapes-clip", ["a red circle"], [0], steps=10, settings=settings)

    def distance(image):
        return np.abs(np.asarray(image, dtype=float) - np.asarray(init, dtype=float)).mean()

    assert distance(from_init[0]) < distance(from_grey[0]) / 2


def test_generate_with_animation_and_accept_records_everything(tmp_path, capsys):
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", "a red circle|blurry:-0.5", "--model", "vqgan-clip:tiny+tiny-clip",
                             "--seeds", "4,5", "--steps", "12", "--animate", "4", "--lr", "0.2", "--cutouts", "3",
                             "--accept", "--title", "Guided", "--journal", str(j))
    assert code == 0, err
    exp = Journal.open(j).get(1)
    assert exp.model.id == "vqgan-clip:tiny+tiny-clip" and [i.seed for i in exp.images] == [4, 5]
    p = exp.params
    assert (p["backend"], p["decoder"], p["clips"], p["lr"], p["cutouts"], p["steps"], p["animate_every"]) == \
           ("vqgan-clip", "tiny", ["tiny-clip"], 0.2, 3, 12, 4)
    for image in exp.images:
        with Image.open(j / exp.dir / image.animation) as gif:
            assert gif.n_frames == 12 // 4 + 1 and gif.size == (32, 32)  # steps 0, 4, 8, and the image itself
            assert "comment" not in gif.info
    doc = json.loads((j / exp.dir / "experiment.json").read_text())
    assert doc["images"][0]["animation"] == "01-s4.gif"
    code, out, _ = run_cli(capsys, "rerun", "1", "--verify", "--journal", str(j))
    assert code == 0 and "pixel-identical" in out
    code, out, _ = run_cli(capsys, "doctor", "--check", "--journal", str(j))
    assert code == 0, out


def test_cancel_keeps_the_latest_frame(tmp_path):
    grid = build_grid(spec_from({"prompt": "a red circle", "seeds": [1, 2]}))
    steps = []
    journal = Journal.open(tmp_path / "j", create=True)
    run = execute(grid, RunOptions(model="vqgan-clip:tiny+tiny-clip", steps=50, max_batch=2,
                                   guided=GuidedSettings(cutouts=2)), journal,
                  on_event=lambda e: steps.append(e) if type(e).__name__ == "Step" else None, cancel=lambda: len(steps) >= 5)
    assert run.state == "cancelled" and len(run.done) == 2
    assert [c.steps_done for c in run.done] == [5, 5]
    assert all(Image.open(run.image(c)).size == (32, 32) for c in run.done)
    accept_run(journal, run, "Stopped early")
    _, identical = rerun(journal, 1, RunOptions())  # reruns the 5 steps the kept images had
    assert identical


@pytest.mark.parametrize("args, fragment", [
    (["--model", "vqgan-clip:{unet}+tiny-clip"], "neither|is a UNet2DConditionModel"),
    (["--model", "vqgan-clip:tiny+ViT-B-32:/nowhere/clip.safetensors"], "does not exist"),
    (["--model", "vqgan-clip:tiny+no-such-arch:laion2b_s34b_b79k"], "unknown CLIP architecture"),
    (["--model", "vqgan-clip:tiny+tiny-clip", "--init-image", "{small}"], "at least 8x8"),
    (["--model", "vqgan-clip:tiny+tiny-clip", "--lr", "-1"], "learning rate"),
    (["--model", "tiny", "--animate", "3"], "for the vqgan-clip backend"),
    (["--model", "vqgan-clip:tiny+tiny-clip", "--no-quantize"], "for VQGAN (VQModel) decoders"),
    (["--model", "vqgan-clip:tiny+tiny-clip", "--guidance", "5"], "no guidance scale"),
    (["--model", "vqgan-clip:tiny+tiny-clip", "--strength", "0.5"], "no strength"),
])
def test_bad_guided_input_is_one_line_and_writes_nothing(args, fragment, tmp_path, capsys):
    small = make_png(tmp_path / "small.png", size=(4, 4))
    unet = resolve("tiny").path / "unet"
    args = [a.format(unet=unet, small=small) for a in args]
    code, out, err = run_cli(capsys, "generate", "a red circle", *args, "--journal", str(tmp_path / "j"))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert any(f in err for f in fragment.split("|")), err
    assert not list_runs(Journal.open(tmp_path / "j", create=True))


async def test_the_tui_plays_a_guided_animation_frame_by_frame(tmp_path):
    from workshop.tui.app import create_app
    from workshop.tui.screens.grid import GridScreen, ZoomScreen

    grid = build_grid(spec_from({"prompt": "a red circle", "seeds": [1]}))
    journal = Journal.open(tmp_path / "j", create=True)
    run = execute(grid, RunOptions(model="vqgan-clip:tiny+tiny-clip", steps=9, animate_every=3,
                                   guided=GuidedSettings(cutouts=2)), journal)
    app = create_app(tmp_path / "j", "vqgan-clip:tiny+tiny-clip", "halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(GridScreen(run=run))
        await pilot.press("enter")
        zoom = app.screen
        assert isinstance(zoom, ZoomScreen) and len(zoom.frames) == 9 // 3 + 1
        await pilot.press("p")  # pause, then step by hand
        shown = zoom.frame
        await pilot.press("full_stop")
        assert zoom.frame == (shown + 1) % len(zoom.frames) and not zoom.playing
        assert f"frame {zoom.frame + 1}/4" in str(zoom.query_one("#zoom-frame").render())


def test_a_prompt_with_no_positive_part_is_refused_before_the_run_starts(tmp_path, capsys):
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle:-1", "-k", "glowing", "--mode", "add-one", "--model",
                           "vqgan-clip:tiny+tiny-clip", "--journal", str(tmp_path / "j"))
    assert code != 0 and "positive weight" in err and len(err.strip().splitlines()) == 1
    assert not list_runs(Journal.open(tmp_path / "j", create=True))


def test_a_decoder_only_repo_from_the_hugging_face_cache(vqgan, capsys, tmp_path):
    import os
    import shutil
    from pathlib import Path

    cache = Path(os.environ["HF_HUB_CACHE"])
    snapshot = cache / "models--someone--tiny-vqgan" / "snapshots" / "fedcba9876543210"
    shutil.copytree(vqgan, snapshot)
    (cache / "models--someone--tiny-vqgan" / "refs").mkdir()
    (cache / "models--someone--tiny-vqgan" / "refs" / "main").write_text("fedcba9876543210")
    code, out, err = run_cli(capsys, "generate", "a red circle", "--model", "vqgan-clip:someone/tiny-vqgan+tiny-clip",
                             "--steps", "3", "--cutouts", "2", "--accept", "--title", "From the cache", "--journal",
                             str(tmp_path / "j"))
    assert code == 0, err
    exp = Journal.open(tmp_path / "j").get(1)
    assert exp.model.id == "vqgan-clip:someone/tiny-vqgan+tiny-clip" and exp.params["decoder_class"] == "VQModel"
