"""The GPU benchmark's shaped pipelines (tests/bench/shaped.py): at full size they have SD-1.5's and SDXL's
parameter counts (built on the meta device: no memory, no time); shrunk, they go the whole way — built, saved as an
fp16 safetensors folder, loaded by promptism's runner and generated from."""

from __future__ import annotations

import pytest
from PIL import Image
from safetensors import safe_open

from tests.bench import shaped
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner.execution import RunOptions, execute

CLIP_L_TEXT = 123_060_480  # CLIP ViT-L/14's text tower
SD_VAE = 83_653_863


@pytest.mark.parametrize("shape, expected", [
    (shaped.SD15, {"unet": 859_520_964, "text_encoder": CLIP_L_TEXT, "vae": SD_VAE}),
    (shaped.SDXL, {"unet": 2_567_463_684, "text_encoder": CLIP_L_TEXT, "text_encoder_2": 694_659_840, "vae": SD_VAE}),
], ids=["sd15", "sdxl"])
def test_full_size_shapes_have_the_real_models_parameter_counts(shape, expected):
    assert shaped.parameter_counts(shape) == expected


@pytest.mark.parametrize("shape, pipeline, scheduler", [
    (shaped.SD15_SMALL, "StableDiffusionPipeline", "PNDMScheduler"),
    (shaped.SDXL_SMALL, "StableDiffusionXLPipeline", "EulerDiscreteScheduler"),
], ids=["sd15", "sdxl"])
def test_a_small_shape_is_saved_in_fp16_and_the_runner_generates_from_it(tmp_path, journal, shape, pipeline, scheduler):
    folder = tmp_path / "model"
    counts = shaped.build(shape, folder, device="cpu")
    assert counts == shaped.parameter_counts(shape)  # the meta-device count is the real build's
    with safe_open(folder / "unet" / "diffusion_pytorch_model.safetensors", "pt") as weights:
        assert {str(weights.get_slice(k).get_dtype()) for k in weights.keys()} == {"F16"}
    grid = build_grid(spec_from({"prompt": "a red circle on a blue background", "seeds": [1, 2]}))
    run = execute(grid, RunOptions(model=str(folder), steps=2, size=(32, 32), clip="none"), journal)
    assert run.record.state == "finished"
    assert (run.record.model.info.pipeline, run.record.model.info.scheduler) == (pipeline, scheduler)
    assert [Image.open(run.image(c)).size for c in run.record.cells] == [(32, 32), (32, 32)]
