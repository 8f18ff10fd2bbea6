"""The benchmark's stand-in pipeline (tests/bench/null_pipeline.py) is called and answers as a diffusers pipeline
does, and grid_throughput --null runs promptism's real runner on it and times it."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from tests.bench import grid_throughput
from tests.bench.null_pipeline import NullPipeline
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner import backends
from workshop.runner.execution import RunOptions


def call(pipe, seeds, output_type, **kwargs):
    return pipe(prompt=["a red circle"] * len(seeds), negative_prompt=[""] * len(seeds), num_inference_steps=3,
                guidance_scale=7.5, width=32, height=16, output_type=output_type,
                generator=[torch.Generator().manual_seed(s) for s in seeds], **kwargs).images


@pytest.mark.parametrize("content", ["noise", "smooth"])
def test_the_stand_in_answers_each_output_type_with_the_same_pixels_per_seed(content):
    pipe = NullPipeline(torch.device("cpu"), size=64, content=content)
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64
    pt = call(pipe, [1, 2, 1], "pt")
    assert pt.shape == (3, 3, 16, 32) and pt.dtype == torch.float32 and 0 <= pt.min() and pt.max() <= 1
    assert torch.equal(pt[0], pt[2]) and not torch.equal(pt[0], pt[1])
    array = call(pipe, [1, 2, 1], "np")
    assert array.dtype == np.float32 and np.array_equal(array, pt.permute(0, 2, 3, 1).numpy())
    pil = call(pipe, [1, 2, 1], "pil")
    assert [im.size for im in pil] == [(32, 16)] * 3
    assert np.array_equal(np.asarray(pil[1]), (array[1] * 255).round().astype(np.uint8))


def test_the_stand_in_calls_back_after_each_step_sleeps_and_can_be_interrupted():
    pipe = NullPipeline(torch.device("cpu"), ms_per_image=30)
    steps = []

    def on_step_end(p, step, timestep, tensors):
        steps.append((step, tuple(tensors["latents"].shape)))
        p._interrupt = step == 1
        return tensors

    call(pipe, [1, 2], "pt", callback_on_step_end=on_step_end)
    assert steps == [(0, (2, 4, 2, 4)), (1, (2, 4, 2, 4))]  # the third step was skipped
    assert pipe.call_s >= pipe.device_s >= 0.03 * 2 * 2 / 3  # its own account of the device time it stood in for
    pipe._interrupt = False
    assert call(pipe, [1], "pt").shape == (1, 3, 16, 32)  # a new call runs every step again


def test_the_runner_runs_on_the_stand_in_and_is_timed(tmp_path, journal, monkeypatch):
    monkeypatch.setattr(backends, "load_pipeline", backends.load_pipeline)  # null_model replaces it: restored after
    pipe = NullPipeline(torch.device("cpu"), size=64, ms_per_image=5)
    model = grid_throughput.null_model(tmp_path, pipe)
    grid = build_grid(spec_from({"prompt": "a red circle", "seeds": [1, 2, 3]}))
    timed = grid_throughput.time_runner(grid, RunOptions(model=model, steps=2, max_batch=2), journal, 2, null=pipe)
    assert timed.identical and timed.max_batch == 2 and not timed.compile
    assert timed.seconds > timed.call_s >= timed.device_s >= 0.005 * 3
    written = sorted(journal.scratch.glob("runs/*/cell-000-s1.png"))
    assert len(written) == 2  # the two timed runs (the warm-up is the caller's)
    made = pipe(prompt="a red circle", num_inference_steps=1, width=64, height=64, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(np.asarray(Image.open(written[0])), np.asarray(made.images[0]))
