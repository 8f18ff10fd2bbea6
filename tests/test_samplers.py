"""Samplers by AUTOMATIC1111's names: mapped to diffusers schedulers configured from the model's own config, recorded
in the run and the journal by name and class, used again by rerun — byte-identical for an ancestral sampler (fresh
noise each step, from each image's own generator) and a multistep one; schedule types (A1111 1.10's) as the sigmas
and timesteps they make; bad names and combinations diffusers cannot make refused in one line."""

import json
import os
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import generated, images_of, run_cli, tiny_pipeline
from workshop.errors import RunError
from workshop.runner.models import load_pipeline, resolve
from workshop.runner.options import run_sampler
from workshop.runner.runs import list_runs
from workshop.runner.samplers import align_your_steps, make_scheduler
from workshop.samplers import EXTENDED, NAMES, OPTIONS, SAMPLERS, SCHEDULES, sampler, schedules_of
from workshop.settings import load_settings

PROMPT = "a red circle on a blue background"


def test_each_sampler_is_its_diffusers_scheduler_on_the_models_own_config():
    import diffusers
    import torch

    pipe = load_pipeline(resolve("tiny"), torch.device("cpu"))
    own = pipe.scheduler.config
    for name, chosen in NAMES.items():
        made = make_scheduler(chosen, own)
        assert isinstance(made, getattr(diffusers, chosen.scheduler)), name  # (DPM++ SDE: a subclass, seeded per image)
        assert made.config.beta_start == own.beta_start and made.config.beta_schedule == own.beta_schedule
        assert all(made.config[k] == v for k, v in chosen.settings.items()), name
    assert make_scheduler(NAMES["DPM++ 2M Karras"], own).config.use_karras_sigmas is True
    assert make_scheduler(NAMES["DPM++ 2M SDE"], own).config.algorithm_type == "sde-dpmsolver++"
    three = make_scheduler(NAMES["DPM++ 3M SDE Exponential"], own).config
    assert (three.solver_order, three.use_exponential_sigmas, three.algorithm_type) == (3, True, "sde-dpmsolver++")
    assert make_scheduler(NAMES["DPM++ 2M SDE Heun"], own).config.solver_type == "heun"
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # the warm pipeline keeps its own


def _sde_steps(name: str, seeds: list[int], *, seeded: bool = True):
    """The samples a sampler's scheduler makes over 4 steps from fixed latents and model outputs, for images of
    ``seeds`` in one batch (the pipeline passes each step the images' generators); ``seeded=False``: diffusers' own
    class, whose trees are seeded at random."""
    import diffusers
    import torch

    config = load_pipeline(resolve("tiny"), torch.device("cpu")).scheduler.config
    chosen = NAMES[name]
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
    assert sampler("euler a sgm_uniform").name == sampler("Euler a SGMUniform").name == "Euler a SGM Uniform"
    assert sampler("Euler a Uniform") == sampler("Euler a Normal") == sampler("Euler a Automatic") == sampler("Euler a")
    assert sampler("DPM++ 2M Automatic").name == "DPM++ 2M Karras"  # A1111 1.10's default for it
    assert sampler("DPM2 a automatic").name == "DPM2 a Karras" and sampler("DPM++ 3M SDE Automatic").name == "DPM++ 3M SDE Exponential"
    with pytest.raises(RunError) as caught:
        sampler("Euler b")
    assert "unknown sampler 'Euler b': use one of Euler, Euler a" in str(caught.value) and "DPM++ 2M" in str(caught.value)


#: The table before schedule types were a dimension of their own: recorded runs name these, so each must make the
#: same scheduler class with the same settings (in the same order) as it did.
BEFORE = {
    "Euler": ("EulerDiscreteScheduler", {}), "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}), "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}), "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ 2M SDE Exponential": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++",
                                                                 "use_exponential_sigmas": True}),
    "DPM++ 2M SDE Heun": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}),
    "DPM++ 2M SDE Heun Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun",
                                                                 "use_karras_sigmas": True}),
    "DPM++ 2M SDE Heun Exponential": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++",
                                                                      "solver_type": "heun", "use_exponential_sigmas": True}),
    "DPM++ 3M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    "DPM++ 3M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3,
                                                            "use_karras_sigmas": True}),
    "DPM++ 3M SDE Exponential": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3,
                                                                 "use_exponential_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}), "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}), "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}


def test_every_name_of_the_old_table_makes_the_same_scheduler_and_settings_as_before():
    """(PLMS aside: it ran with a Runge-Kutta warm-up wherever a model's config did not skip it — the tiny model's,
    SDXL's — which A1111's PLMS, LDM's, never has; it now always skips it, as SD 1.x's own config does.)"""
    for name, (scheduler, settings) in BEFORE.items():
        made = sampler(name)
        assert (made.name, made.scheduler, list(made.settings.items()), made.sigmas) == (
            name, scheduler, list(settings.items()), None), name


def test_the_schedule_types_each_class_takes_are_the_options_its_diffusers_init_has():
    """The pure-data table against the installed diffusers: a class takes a schedule type exactly where its __init__
    has that type's option (LCM's timestep_spacing aside: its set_timesteps never reads it), or where promptism
    extends it with one — an option diffusers' class still lacks (were diffusers to add it, its own would do) and the
    runner's subclass has."""
    import inspect

    import diffusers

    from workshop.runner.samplers import _with_sigmas

    options = {s.needs for s in SCHEDULES.values()}
    for name, takes in OPTIONS.items():
        has = options & set(inspect.signature(getattr(diffusers, name).__init__).parameters)
        assert takes == (has - {"timestep_spacing"} if name == "LCMScheduler" else has), name
    assert {s.scheduler for s in SAMPLERS.values()} == set(OPTIONS)
    for name, (added, why) in EXTENDED.items():
        assert added and why and not added & OPTIONS[name] and added <= options, name
        assert added <= set(inspect.signature(_with_sigmas(getattr(diffusers, name)).__init__).parameters), name
    assert schedules_of(SAMPLERS["Euler a"]) == list(SCHEDULES) == schedules_of(SAMPLERS["Euler"])


def _sigmas(name: str, steps: int, *, sdxl: bool = False):
    import torch

    made = make_scheduler(sampler(name), load_pipeline(resolve("tiny"), torch.device("cpu")).scheduler.config, sdxl=sdxl)
    made.set_timesteps(steps)
    return made


def test_each_schedule_type_makes_its_own_sigmas_as_a1111_computes_them():
    import numpy as np
    from scipy import stats

    plain = _sigmas("DPM++ 2M", 6)
    full = np.sqrt((1 - plain.alphas_cumprod.numpy()) / plain.alphas_cumprod.numpy())  # the model's sigmas, t = 0 … 999
    low, high = full[0], full[-1]  # A1111's sigma_min, sigma_max (its model_wrap.sigmas)
    made = {label: _sigmas(f"DPM++ 2M {label}", 6).sigmas.numpy()[:-1].astype(np.float64) for label in SCHEDULES}
    ramp = np.linspace(0, 1, 6)
    karras = (high ** (1 / 7) + ramp * (low ** (1 / 7) - high ** (1 / 7))) ** 7  # k-diffusion's get_sigmas_karras, rho 7
    assert np.allclose(made["Karras"], karras, rtol=1e-5) and not np.allclose(made["Karras"], plain.sigmas.numpy()[:-1])
    assert np.allclose(made["Exponential"], np.exp(np.linspace(np.log(high), np.log(low), 6)), rtol=1e-5)
    assert np.array_equal(made["Polyexponential"], made["Exponential"])  # (A1111's rho for it: 1)
    beta = low + stats.beta.ppf(1 - ramp, 0.6, 0.6) * (high - low)  # A1111's beta_scheduler, its alpha = beta = 0.6
    assert np.allclose(made["Beta"], beta, rtol=1e-5)
    assert len({tuple(np.round(sigmas, 4)) for sigmas in made.values()}) == len(made) - 2  # (Simple = SGM Uniform)
    assert all(made[label][-1] > 0 for label in made) and _sigmas("DPM++ 2M Karras", 6).sigmas[-1] == 0


@pytest.mark.parametrize("spacing", [None, "linspace", "trailing"])
def test_euler_a_takes_each_schedule_type_with_the_sigmas_and_timesteps_euler_makes(spacing):
    """Euler a's diffusers class has no Karras, Exponential or Beta sigmas: promptism's subclass computes them with
    Euler's code, so they are Euler's exactly, on the model's own timestep spacing (leading) or another, at any step
    count; Align Your Steps too, through the same Karras hook. Its steps stay diffusers' Euler a."""
    import torch
    from diffusers import EulerAncestralDiscreteScheduler

    config = dict(tiny_pipeline().scheduler.config, **({"timestep_spacing": spacing} if spacing else {}))
    for label in ("Karras", "Exponential", "Polyexponential", "Beta", "Align Your Steps"):
        for steps in (1, 3, 8, 25):
            ancestral, euler = (make_scheduler(sampler(f"{name} {label}"), config) for name in ("Euler a", "Euler"))
            ancestral.set_timesteps(steps)
            euler.set_timesteps(steps)
            assert isinstance(ancestral, EulerAncestralDiscreteScheduler) and ancestral.step.__func__ is (
                EulerAncestralDiscreteScheduler.step)
            assert torch.equal(ancestral.sigmas, euler.sigmas) and ancestral.sigmas[-1] == 0, (label, steps)
            assert torch.equal(ancestral.timesteps, euler.timesteps), (label, steps)
            assert ancestral.init_noise_sigma == euler.init_noise_sigma
    plain = make_scheduler(sampler("Euler a"), config)
    karras = make_scheduler(sampler("Euler a Karras"), config)
    plain.set_timesteps(8)
    karras.set_timesteps(8)
    assert type(plain) is EulerAncestralDiscreteScheduler and not torch.equal(plain.sigmas, karras.sigmas)


def test_euler_a_takes_one_schedule_at_a_time_as_euler_does():
    """A model's scheduler config that asks for Exponential sigmas with "Euler a Karras": one line, as for Euler."""
    config = dict(tiny_pipeline().scheduler.config, use_exponential_sigmas=True)
    for name in ("Euler Karras", "Euler a Karras"):
        with pytest.raises(RunError, match=f"sampler '{name}' cannot run with this model's scheduler config: Only one"):
            make_scheduler(sampler(name), config)


def test_euler_a_karras_alone_and_batched_within_1_of_255_and_its_own_seeds_noise():
    """Each image's fresh noise comes from its own generator: in a batch or alone, the same image within 1/255."""
    import copy

    import numpy as np

    from workshop.runner.engine import Engine, Job
    from workshop.runner.pixels import uint8_pixels

    pipe = copy.copy(tiny_pipeline())
    pipe.scheduler = make_scheduler(sampler("Euler a Karras"), pipe.scheduler.config)
    jobs = [Job(i, PROMPT, "", seed, 4, 7.5, 64, 64) for i, seed in enumerate((1, 2, 3))]

    def made(layout):
        return {i: np.asarray(uint8_pixels(pixels), dtype=np.int16) for batch in Engine(pipe).run(jobs, layout)
                for i, pixels in zip(batch.cells, batch.pixels)}

    batched, alone = made([[0, 1, 2]]), made([[0], [1], [2]])
    assert all(np.abs(batched[i] - alone[i]).max() <= 1 for i in range(3))
    assert not np.array_equal(batched[0], batched[1])


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M", "DDIM", "DPM2"])
def test_sgm_uniform_and_simple_step_from_timestep_999_in_even_strides_as_a1111s_do(name):
    """diffusers' trailing spacing: A1111's SGM Uniform (fractional timesteps 999 … in n+1 even parts) and Simple (the
    model's timesteps from the last, every 1000/n) within a timestep."""
    import numpy as np

    own = _sigmas(name, 4).timesteps.numpy()
    for steps in (4, 7):
        sgm = np.linspace(999, 0, steps + 1)[:-1]
        simple = np.array([999 - int(x * 1000 / steps) for x in range(steps)])
        for label, a1111 in (("SGM Uniform", sgm), ("Simple", simple)):
            timesteps = _sigmas(f"{name} {label}", steps).timesteps.numpy().astype(np.float64)
            timesteps = timesteps[::2] if name == "DPM2" else timesteps  # (DPM2's second-order midpoints between)
            assert np.abs(timesteps - a1111).max() <= 1, (label, steps, timesteps)
    assert own[0] < 999  # the model's own spacing ("leading") does not start there


def test_align_your_steps_is_nvidias_list_for_the_models_family_interpolated_as_a1111_does():
    import numpy as np
    from diffusers.schedulers.scheduling_utils import AysSchedules

    sd, xl = AysSchedules["StableDiffusionSigmas"], AysSchedules["StableDiffusionXLSigmas"]
    eleven = _sigmas("DPM++ 2M Align Your Steps", 11)
    assert np.allclose(eleven.sigmas.numpy()[:10], sd[:10]) and np.isclose(eleven.sigmas[10], 0.029) and eleven.sigmas[11] == 0
    nvidia = np.array(AysSchedules["StableDiffusionTimesteps"])  # NVIDIA's own timesteps, within diffusers' rounding
    assert np.abs(eleven.timesteps.numpy()[:10] - nvidia).max() <= 1
    assert np.allclose(_sigmas("Euler Align Your Steps", 11, sdxl=True).sigmas.numpy()[:10], xl[:10])
    # other step counts: the log-linear interpolation of the 11, through each of them at 21 steps (every other one)
    many = _sigmas("Euler Align Your Steps", 21).sigmas.numpy()
    assert np.allclose(many[:-1:2], sd[:10] + [0.029]) and np.allclose(many[1:-1:2], np.sqrt(many[:-2:2] * many[2:-1:2]))
    four = align_your_steps(4, False)
    assert len(four) == 4 and np.allclose([four[0], four[-1]], [sd[0], 0.029])
    assert not np.allclose(_sigmas("DPM++ 2M Align Your Steps", 4).sigmas, _sigmas("DPM++ 2M Karras", 4).sigmas)


@pytest.mark.parametrize("name, scheduler", [("Euler a", "EulerAncestralDiscreteScheduler"),
                                             ("DPM++ 2M Karras", "DPMSolverMultistepScheduler"),
                                             ("DPM++ SDE Karras", "DPMSolverSDEScheduler"),
                                             ("DPM++ 3M SDE Exponential", "DPMSolverMultistepScheduler"),  # A1111 1.10
                                             ("Euler a SGM Uniform", "EulerAncestralDiscreteScheduler"),
                                             ("Euler a Karras", "EulerAncestralDiscreteScheduler"),
                                             ("DPM++ SDE Align Your Steps", "DPMSolverSDEScheduler")])
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
    for extra in ([], ["--sampler", "Euler a"], ["--sampler", "Euler a Karras"]):
        code, _, err = run_cli(capsys, "generate", PROMPT, "--seed", "3", "--model", "tiny", *extra, "--journal", j)
        assert code == 0, err
    karras, euler, own = list_runs(Journal.open(j))
    assert own.record.params.sampler is None and own.record.params.scheduler == "DDIMScheduler"
    assert euler.image(euler.done[0]).read_bytes() != own.image(own.done[0]).read_bytes()
    assert karras.image(karras.done[0]).read_bytes() != euler.image(euler.done[0]).read_bytes()  # (the same seed)


def test_schedule_types_change_the_images(tmp_path, capsys):
    """One sampler, four schedules, one seed: four pictures (a sampler axis, as a grid compares them)."""
    j = str(tmp_path / "j")
    names = ["DPM++ 2M", "DPM++ 2M SGM Uniform", "DPM++ 2M Align Your Steps", "DPM++ 2M Beta"]
    code, _, err = run_cli(capsys, "grid", "-p", PROMPT, "--x", "sampler=" + ",".join(names), "--seeds", "3",
                           "--steps", "4", "--model", "tiny", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    made = {c.sampler: run.image(c).read_bytes() for c in run.done}
    assert sorted(made) == sorted(names) and len(set(made.values())) == len(names)


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
    (["--sampler", "DDIM Karras"], "DDIM (DDIMScheduler) takes the schedule types Automatic, Uniform, Normal, SGM "
                                   "Uniform, Simple, not Karras"),
    (["--sampler", "LCM Karras"], "LCM (LCMScheduler) takes the schedule types Automatic, Uniform, Normal, not Karras"),
    (["--sampler", "DPM++ 2S a Karras"], "which promptism does not run: diffusers has no singlestep ancestral"),
    (["--sampler", "Restart"], "diffusers has no Restart sampler"),
    (["--sampler", "DPM++ 2M KL Optimal"], "promptism has no KL Optimal schedule type"),
    (["--sampler", "Euler", "--model", "vqgan-clip"], "--sampler is for diffusion models"),
])
def test_bad_samplers_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", PROMPT, "--model", "tiny", *args, "--journal", str(j))
    assert code != 0 and message in err and err.count("\n") == 1, err
    assert not j.exists()


def test_samplers_lists_them(capsys):
    code, out, _ = run_cli(capsys, "samplers")
    assert code == 0 and "DPM++ 2M Karras" in out and "DPMSolverMultistepScheduler" in out and "fresh each step" in out
    assert "Align Your Steps" in out and "timestep_spacing=trailing" in out and "DPM++ 2S a" in out
    assert "promptism extends EulerAncestralDiscreteScheduler with use_beta_sigmas, use_exponential_sigmas, " \
           "use_karras_sigmas" in " ".join(out.split())
    code, out, _ = run_cli(capsys, "samplers", "--json")
    listed = {s["name"]: s for s in json.loads(out)}
    assert set(listed) == set(SAMPLERS) and listed["Euler a"]["ancestral"] is True
    assert list(listed["DDIM"]["schedules"]) == ["SGM Uniform", "Simple"] == schedules_of(SAMPLERS["PLMS"])
    assert listed["Euler a"]["schedules"]["Karras"] == {"use_karras_sigmas": True}
    assert listed["DPM++ 2M"]["schedules"]["Karras"] == {"use_karras_sigmas": True}
    assert {f"{n} {label}" for n, s in listed.items() for label in s["schedules"]} | set(listed) == set(NAMES)


def test_plms_is_a1111s_without_a_runge_kutta_warm_up_whatever_the_models_config(tmp_path, capsys):
    """A1111's own API test runs PLMS at 3 steps; the tiny model's config (DDIM's, no skip_prk_steps) made diffusers'
    PNDM warm up with Runge-Kutta steps, which need 4."""
    from diffusers import PNDMScheduler

    made = make_scheduler(sampler("PLMS"), tiny_pipeline().scheduler.config)
    assert isinstance(made, PNDMScheduler) and made.config.skip_prk_steps is True
    made.set_timesteps(3)
    assert len(made.prk_timesteps) == 0 and len(made.timesteps) == 4  # (PLMS's first step evaluates the model twice)
    run = generated(capsys, tmp_path / "j", PROMPT, "--sampler", "PLMS", "--steps", "3")
    assert len(images_of(run)) == 1


def test_a_models_own_pndm_with_its_warm_up_below_four_steps_is_one_line(tmp_path, capsys):
    """A model whose own scheduler is PNDM with Runge-Kutta steps (diffusers' default) needs 4 steps: said before a
    run, not a broadcast error mid-run."""
    from diffusers import PNDMScheduler

    pipe = tiny_pipeline()
    pipe.scheduler = PNDMScheduler.from_config(pipe.scheduler.config)
    pipe.save_pretrained(tmp_path / "prk-model", safe_serialization=True)
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, "generate", PROMPT, "--model", str(tmp_path / "prk-model"), "--steps", "3",
                           "--journal", str(j))
    assert code != 0 and "needs 4 steps or more, not 3: give --steps 4 or more" in err and err.count("\n") == 1, err
    assert not j.exists()
