"""Samplers by AUTOMATIC1111's names: mapped to diffusers schedulers configured from the model's own config, recorded
in the run and the journal by name and class, used again by rerun — byte-identical for an ancestral sampler (fresh
noise each step, from each image's own generator) and a multistep one; bad names refused in one line."""

import json
import os
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import run_cli
from workshop.errors import RunError
from workshop.runner.models import load_pipeline, resolve
from workshop.runner.options import run_sampler
from workshop.runner.runs import list_runs
from workshop.runner.samplers import make_scheduler
from workshop.samplers import SAMPLERS, sampler
from workshop.settings import load_settings

PROMPT = "a red circle on a blue background"


def test_each_sampler_is_its_diffusers_scheduler_on_the_models_own_config():
    import diffusers
    import torch

    pipe = load_pipeline(resolve("tiny"), torch.device("cpu"))
    own = pipe.scheduler.config
    for name, chosen in SAMPLERS.items():
        made = make_scheduler(chosen, own)
        assert isinstance(made, getattr(diffusers, chosen.scheduler)), name  # (DPM++ SDE: a subclass, seeded per image)
        assert made.config.beta_start == own.beta_start and made.config.beta_schedule == own.beta_schedule
        assert all(made.config[k] == v for k, v in chosen.settings.items()), name
    assert make_scheduler(SAMPLERS["DPM++ 2M Karras"], own).config.use_karras_sigmas is True
    assert make_scheduler(SAMPLERS["DPM++ 2M SDE"], own).config.algorithm_type == "sde-dpmsolver++"
    three = make_scheduler(SAMPLERS["DPM++ 3M SDE Exponential"], own).config
    assert (three.solver_order, three.use_exponential_sigmas, three.algorithm_type) == (3, True, "sde-dpmsolver++")
    assert make_scheduler(SAMPLERS["DPM++ 2M SDE Heun"], own).config.solver_type == "heun"
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # the warm pipeline keeps its own


def _sde_steps(name: str, seeds: list[int], *, seeded: bool = True):
    """The samples a sampler's scheduler makes over 4 steps from fixed latents and model outputs, for images of
    ``seeds`` in one batch (the pipeline passes each step the images' generators); ``seeded=False``: diffusers' own
    class, whose trees are seeded at random."""
    import diffusers
    import torch

    config = load_pipeline(resolve("tiny"), torch.device("cpu")).scheduler.config
    chosen = SAMPLERS[name]
    scheduler = (make_scheduler(chosen, config) if seeded
                 else getattr(diffusers, chosen.scheduler).from_config(config, **chosen.settings))
    scheduler.set_timesteps(4)
    fixed = torch.Generator().manual_seed(0)
    sample = torch.randn(len(seeds), 4, 8, 8, generator=fixed) * scheduler.init_noise_sigma
    outputs = [torch.randn(len(seeds), 4, 8, 8, generator=fixed) for _ in scheduler.timesteps]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    for t, out in zip(scheduler.timesteps, outputs):
        kwargs = {"generator": generators} if "generator" in scheduler.step.__code__.co_varnames else {}
        sample = scheduler.step(out, t, sample, **kwargs).prev_sample
    return sample


@pytest.mark.parametrize("name", ["DPM++ SDE", "DPM++ SDE Karras", "DPM++ 2M SDE"])
def test_sde_noise_comes_from_each_images_seed_whatever_its_batch(name):
    """DPM++ SDE's torchsde trees, seeded per image: the same seeds give the same noise, and an image's noise does
    not depend on the images beside it (diffusers' own class seeds its trees at random: two runs differ)."""
    import torch

    if name.startswith("DPM++ SDE"):
        assert not torch.equal(_sde_steps(name, [5, 6], seeded=False), _sde_steps(name, [5, 6], seeded=False))
    together = _sde_steps(name, [5, 6])
    assert torch.equal(together, _sde_steps(name, [5, 6]))
    # each image alone: its noise is its seed's (the fixed latents differ by batch size, so compare the noise:
    # the same latents with another seed beside it)
    beside_other = _sde_steps(name, [5, 9])
    assert torch.equal(together[0], beside_other[0]) and not torch.equal(together[1], beside_other[1])


def test_names_are_a1111s_in_any_case_and_unknown_ones_are_refused_listing_them():
    assert sampler("dpm++ 2m  karras").name == "DPM++ 2M Karras" and sampler("Euler a").scheduler == "EulerAncestralDiscreteScheduler"
    with pytest.raises(RunError) as caught:
        sampler("Euler b")
    assert "unknown sampler 'Euler b'" in str(caught.value) and "DPM++ 2M Karras" in str(caught.value)


@pytest.mark.parametrize("name, scheduler", [("Euler a", "EulerAncestralDiscreteScheduler"),
                                             ("DPM++ 2M Karras", "DPMSolverMultistepScheduler"),
                                             ("DPM++ SDE Karras", "DPMSolverSDEScheduler"),
                                             ("DPM++ 3M SDE Exponential", "DPMSolverMultistepScheduler")])  # A1111 1.10
def test_a_run_with_a_sampler_records_it_and_reruns_byte_identical(tmp_path, capsys, name, scheduler):
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", PROMPT, "-k", "glowing", "--mode", "leave-one-out", "--seeds", "1-2",
                           "--model", "tiny", "--sampler", name, "--accept", "--title", "Sampled", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    assert run.record.params.sampler == name and run.record.params.scheduler == scheduler
    exp = Journal.open(j).get(1)
    assert exp.params["sampler"] == name and exp.params["scheduler"] == scheduler
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0 and "pixel-identical" in out, out + err
    rerun = list_runs(Journal.open(j))[0]
    assert rerun.record.rerun_of == 1 and rerun.record.params.sampler == name


def test_the_sampler_changes_the_images_and_the_default_is_the_models_own(tmp_path, capsys):
    j = str(tmp_path / "j")
    for extra in ([], ["--sampler", "Euler a"]):
        code, _, err = run_cli(capsys, "generate", PROMPT, "--seed", "3", "--model", "tiny", *extra, "--journal", j)
        assert code == 0, err
    euler, own = list_runs(Journal.open(j))
    assert own.record.params.sampler is None and own.record.params.scheduler == "DDIMScheduler"
    assert euler.image(euler.done[0]).read_bytes() != own.image(own.done[0]).read_bytes()


def test_the_sampler_setting_is_the_default_a_spec_key_wins_over_it_and_the_flag_over_both(tmp_path, capsys):
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\nsampler = "euler  A"\n', encoding="utf-8")
    assert load_settings().sampler == "Euler a"  # checked and spelled as promptism spells it when read
    spec = tmp_path / "s.toml"
    spec.write_text(f'prompt = "{PROMPT}"\nseeds = [3]\n[params]\nsampler = "DPM++ 2M"\n', encoding="utf-8")
    j = str(tmp_path / "j")
    for args in (["generate", PROMPT, "--seed", "3"], ["grid", str(spec)], ["grid", str(spec), "--sampler", "DDIM"],
                 ["generate", PROMPT, "--seed", "3", "--sampler", "Default"]):
        code, _, err = run_cli(capsys, *args, "--journal", j)
        assert code == 0, err
    made = [(r.record.params.sampler, r.record.params.scheduler) for r in reversed(list_runs(Journal.open(j)))]
    assert made == [("Euler a", "EulerAncestralDiscreteScheduler"), ("DPM++ 2M", "DPMSolverMultistepScheduler"),
                    ("DDIM", "DDIMScheduler"), (None, "DDIMScheduler")]  # (the last: the model's own, DDIM)


def test_the_sampler_setting_leaves_the_clip_guided_backend_alone_and_default_means_the_models_own():
    assert run_sampler(None, "Euler a", "vqgan-clip:x+y") is None  # it does not sample: no sampler to default
    assert run_sampler("Euler", "Euler a", "vqgan-clip:x+y") == "Euler"  # given: refused by check_options
    assert run_sampler(None, "Euler a", "tiny") == "Euler a" and run_sampler(" default ", "Euler a", "tiny") is None
    assert run_sampler(None, "default", "tiny") is None and run_sampler(None, None, "tiny") is None


@pytest.mark.parametrize("args, message", [
    (["--sampler", "Euler b"], "unknown sampler 'Euler b': use one of Euler, Euler a"),
    (["--sampler", "Euler", "--model", "vqgan-clip"], "--sampler is for diffusion models"),
    (["--sampler", "PLMS", "--steps", "3"], "needs 4 steps or more, not 3: give --steps 4 or more"),  # (a broadcast error)
])
def test_bad_samplers_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", PROMPT, "--model", "tiny", *args, "--journal", str(j))
    assert code != 0 and message in err and err.count("\n") == 1, err
    assert not j.exists()


def test_samplers_lists_them(capsys):
    code, out, _ = run_cli(capsys, "samplers")
    assert code == 0 and "DPM++ 2M Karras" in out and "DPMSolverMultistepScheduler" in out and "fresh each step" in out
    code, out, _ = run_cli(capsys, "samplers", "--json")
    listed = {s["name"]: s for s in json.loads(out)}
    assert set(listed) == set(SAMPLERS) and listed["Euler a"]["ancestral"] is True
