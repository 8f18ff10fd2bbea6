"""The built-in ``shapes`` model and ``shapes-clip`` as shipped in the package: they follow prompts offline, they are
the defaults, and they are small and quick enough for this suite."""

import fnmatch
import tomllib

import numpy as np
import pytest
import torch
from PIL import Image

from journal import Journal
from tests.helpers import REPO, run_cli
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner.models import WEIGHTS, load_pipeline, resolve
from workshop.runner.runs import list_runs
from workshop.runner.scoring import load_scorer
from workshop.runner.execution import RunOptions, execute
from workshop.shapes.dataset import COLOURS, colour_mask


def test_shipped_weights_are_safetensors_under_25_mb_and_packaged():
    files = [p for p in WEIGHTS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 25_000_000
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".pkl")]
    assert len(weights) == 4 and all(p.suffix == ".safetensors" for p in weights)  # unet, vae, text encoder, clip
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["workshop.runner"]
    package = WEIGHTS.parent
    for path in files:  # every shipped file is package data, so a wheel carries it
        assert any(fnmatch.fnmatch(path.relative_to(package).as_posix(), p) for p in patterns), path


def test_shapes_is_the_default_model_at_its_native_size(tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", "two large yellow stars on a black background", "--seed", "3",
                             "--journal", str(tmp_path / "j"))
    assert code == 0, err
    run = list_runs(Journal.open(tmp_path / "j"))[0]
    assert run.record.model.id == "shapes" and run.record.params.steps == 12
    assert run.record.params.guidance == 2.0  # its own default guidance
    assert run.record.clip == "shapes-clip"  # its own scorer, unless told otherwise
    image = Image.open(run.image(run.done[0]))
    assert image.size == (32, 32)
    assert colour_mask(image, "black").mean() > 0.3 and colour_mask(image, "yellow").mean() > 0.05
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and out.index("shapes") < out.index("tiny") and "shapes world" in out and "shapes-clip" in out


def test_generate_a_red_circle_on_a_blue_background(tmp_path, capsys):
    out_dir = tmp_path / "out"
    for seed in (1, 2, 3):
        code, _, err = run_cli(capsys, "generate", "a red circle on a blue background", "--model", "shapes", "--seed",
                               str(seed), "--out", str(out_dir), "--journal", str(tmp_path / "j"), "--clip", "none")
        assert code == 0, err
    images = sorted(out_dir.glob("*.png"))
    assert len(images) == 3
    for path in images:
        image = Image.open(path)
        red, blue = colour_mask(image, "red"), colour_mask(image, "blue")
        assert blue.mean() > 0.4, f"{path.name}: a blue field"
        assert 0.03 < red.mean() < 0.5, f"{path.name}: a red region"
        rows, cols = np.nonzero(red)
        assert blue[rows.min():rows.max() + 1].any() and (rows.max() - rows.min()) < 28  # a region inside the field


def test_removing_red_lowers_the_red_circle_score_for_every_seed(tmp_path):
    """The issue's leave-one-out grid on "a red circle on a blue background", as keywords; scored against "red circle"."""
    seeds = list(range(1, 9))
    grid = build_grid(spec_from({"prompt": "a circle", "keywords": ["red", "blue background"], "mode": "leave-one-out",
                                 "seeds": seeds}))
    run = execute(grid, RunOptions(model="shapes"), Journal.open(tmp_path / "j", create=True))
    scorer = load_scorer("shapes-clip", torch.device("cpu"))
    score = {(cell.prompt, cell.seed): float(scorer.similarity([Image.open(run.image(cell))], ["red circle"])[0, 0])
             for cell in run.done}
    assert len(score) == 3 * len(seeds)
    for seed in seeds:
        assert score[("a circle, red, blue background", seed)] > score[("a circle, blue background", seed)], seed
    assert run.record.effects["red"].effect > 0.05  # the runner's own keyword measurement agrees
    reds = [colour_mask(Image.open(run.image(c)), "red").mean() for c in run.done if c.prompt == "a circle, red, blue background"]
    others = [colour_mask(Image.open(run.image(c)), "red").mean() for c in run.done if c.prompt == "a circle, blue background"]
    assert min(reds) > max(others)  # and the pixels say so too


@pytest.mark.parametrize("colour", ["red", "green", "yellow", "white"])
def test_shapes_clip_tells_colours_apart_on_real_drawings(colour):
    from workshop.shapes.dataset import Scene, draw

    scorer = load_scorer("shapes-clip", torch.device("cpu"))
    image = draw(Scene("square", colour, "black", 1, "large", (), seed=5), 32)
    texts = [f"a large {c} square on a black background" for c in COLOURS if c != "black"]
    assert texts[int(scorer.similarity([image], texts)[0].argmax())] == f"a large {colour} square on a black background"


def test_native_size_is_32_and_twelve_steps_draw_the_background():
    pipe = load_pipeline(resolve("shapes"), torch.device("cpu"))
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 32
    images = pipe(["a green triangle on a white background"] * 4, num_inference_steps=12, height=32, width=32,
                  generator=[torch.Generator("cpu").manual_seed(s) for s in range(4)]).images
    assert [colour_mask(im, "white").mean() > 0.3 for im in images] == [True] * 4
