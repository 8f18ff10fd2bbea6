"""Samplers by AUTOMATIC1111's names, as diffusers schedulers (the mapping of diffusers' scheduler documentation):
each is a scheduler class configured from the model's own scheduler config plus a few settings (Karras sigmas, the
SDE variant of DPM++ …), so the betas and timestep spacing stay the model's. ``--sampler NAME`` picks one for a run;
without it a run uses the model folder's scheduler. The run records the name and the class with its settings, and
``rerun`` and ``resume`` make the same scheduler again. Torch-free until a scheduler is made.

Noise: ancestral and SDE samplers draw fresh noise every step. Most (Euler a, DPM2 a, DPM++ 2M SDE) draw it from
the generators the pipeline passes to each step — each image's own, seeded with its seed. DPM++ SDE (diffusers'
DPMSolverSDEScheduler) draws it from torchsde Brownian trees seeded at random unless told; here each image gets a
tree of its own seeded with the image's seed (as A1111 does), so its reruns are byte-identical and an image's noise
does not depend on the batch it is made in.

Schedules: a schedule type is a setting of the class (Karras' sigmas, trailing timesteps …: ``workshop/samplers.py``)
but for Align Your Steps, which diffusers offers only as lists to pass to a pipeline call: its sampler runs a
subclass whose Karras hook (``_convert_to_karras``, which every class that takes Karras sigmas calls with the step
count and then goes on as for Karras' sigmas) gives NVIDIA's 10-step sigmas for SD 1.x or SDXL — diffusers'
``AysSchedules``, ending, as A1111's do, at 0.029 — log-linearly interpolated to the step count as A1111 1.10 does
(at 11 steps the list itself), then 0. So the pipeline call is the same as for any sampler.
Euler a's diffusers class takes no Karras, Exponential or Beta sigmas (``EXTENDED`` in ``workshop/samplers.py``): a
name that asks for them runs a subclass that takes those options and computes the sigmas with EulerDiscreteScheduler's
own code, so "Euler a Karras" steps down Euler Karras' sigmas with diffusers' ancestral step (Align Your Steps through
the same Karras hook).
"""

from __future__ import annotations

import functools

from journal.text import quoted

from ..errors import RunError
from ..samplers import AYS, EXTENDED, Sampler

AYS_END = 0.029  # where A1111's Align Your Steps lists end (diffusers' end at 0: their 10th step goes to 0)


def align_your_steps(steps: int, sdxl: bool) -> list[float]:
    """The Align Your Steps sigmas of ``steps`` steps (the final 0 not included), as A1111 1.10 makes them: NVIDIA's
    list of 11 for SD 1.x (and 2.x) or SDXL, log-linearly interpolated to ``steps`` points unless there are 11."""
    import numpy as np
    from diffusers.schedulers.scheduling_utils import AysSchedules

    known = AysSchedules["StableDiffusionXLSigmas" if sdxl else "StableDiffusionSigmas"][:-1] + [AYS_END]
    if steps == len(known):
        return known
    logs = np.interp(np.linspace(0, 1, steps), np.linspace(0, 1, len(known)), np.log(known[::-1]))
    return np.exp(logs)[::-1].tolist()


def make_scheduler(chosen: Sampler, config, *, sdxl: bool = False) -> object:
    """``chosen``'s scheduler, configured from a model's scheduler ``config`` (``sdxl``: an SDXL model's, for the
    schedules that differ by model: Align Your Steps); RunError where that config cannot take it (a flow-matching
    model and an SD sampler, say)."""
    made = _scheduler_class(chosen.scheduler)
    if set(chosen.settings) & EXTENDED.get(chosen.scheduler, (frozenset(), ""))[0]:
        made = _with_sigmas(made)  # (only then: the plain names keep diffusers' class, whatever the model's config)
    if chosen.sigmas == AYS:
        made = _aligned(made, sdxl)
    try:
        return made.from_config(config, **chosen.settings)
    except Exception as exc:  # noqa: BLE001 - whatever the config lacks: one line naming the sampler
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise RunError(f"sampler {quoted(chosen.name)} cannot run with this model's scheduler config: {detail}") from None


def _scheduler_class(name: str) -> type:
    """The diffusers class of that name; DPMSolverSDEScheduler as its per-image-seeded subclass (see above)."""
    import diffusers

    return _seeded_sde() if name == "DPMSolverSDEScheduler" else getattr(diffusers, name)


@functools.cache
def _aligned(base: type, sdxl: bool) -> type:
    """``base`` (a class that takes Karras sigmas) with Align Your Steps' sigmas where it would compute Karras'."""
    import numpy as np

    def _convert_to_karras(self, in_sigmas, num_inference_steps=None):
        return np.array(align_your_steps(num_inference_steps or self.num_inference_steps, sdxl))

    return type(f"AlignYourSteps{base.__name__}", (base,), {"_convert_to_karras": _convert_to_karras})


#: EulerDiscreteScheduler's option → its method computing that schedule's sigmas (called as its set_timesteps does)
_SIGMA_HOOKS = {"use_karras_sigmas": "_convert_to_karras", "use_exponential_sigmas": "_convert_to_exponential",
                "use_beta_sigmas": "_convert_to_beta"}


@functools.cache
def _with_sigmas(base: type) -> type:
    """``base`` (diffusers' EulerAncestralDiscreteScheduler) taking EulerDiscreteScheduler's Karras, Exponential and
    Beta options: with one set, ``set_timesteps`` makes the timesteps of the spacing as ``base`` does, then the sigmas
    and timesteps as EulerDiscreteScheduler's ``set_timesteps`` does for that option — its own ``_convert_to_*`` from
    the model's sigmas at those timesteps, timesteps by its ``_sigma_to_t``, a final 0 — so they equal Euler's for the
    same config and step count. Everything else (the ancestral step and its noise) is ``base``'s."""
    import inspect

    import numpy as np
    import torch
    from diffusers import EulerDiscreteScheduler
    from diffusers.utils import is_scipy_available

    def __init__(self, *, use_karras_sigmas: bool = False, use_exponential_sigmas: bool = False,
                 use_beta_sigmas: bool = False, **kwargs):
        chosen = {"use_karras_sigmas": use_karras_sigmas, "use_exponential_sigmas": use_exponential_sigmas,
                  "use_beta_sigmas": use_beta_sigmas}
        if sum(map(bool, chosen.values())) > 1:  # (as EulerDiscreteScheduler refuses them)
            raise ValueError("Only one of `config.use_beta_sigmas`, `config.use_exponential_sigmas`, "
                             "`config.use_karras_sigmas` can be used.")
        if use_beta_sigmas and not is_scipy_available():
            raise ImportError("Make sure to install scipy if you want to use beta sigmas.")
        base.__init__(self, **kwargs)
        self.register_to_config(**chosen)

    # diffusers' from_config passes a class the config keys its __init__'s signature names: base's and these
    own = inspect.signature(base.__init__)
    __init__.__signature__ = own.replace(parameters=[*own.parameters.values(), *(
        inspect.Parameter(option, inspect.Parameter.KEYWORD_ONLY, default=False) for option in _SIGMA_HOOKS)])

    def set_timesteps(self, num_inference_steps: int, device=None):
        base.set_timesteps(self, num_inference_steps, device)  # the spacing's timesteps (Euler's, the same code)
        hook = next((getattr(self, name) for option, name in _SIGMA_HOOKS.items() if self.config.get(option)), None)
        if hook is None:
            return
        full = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        log_sigmas = np.log(full)
        spaced = np.interp(self.timesteps.cpu().numpy(), np.arange(0, len(full)), full)
        sigmas = hook(in_sigmas=spaced, num_inference_steps=self.num_inference_steps)
        timesteps = np.array([self._sigma_to_t(sigma, log_sigmas) for sigma in sigmas])
        sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32)).to(dtype=torch.float32, device=device)
        self.timesteps = torch.from_numpy(timesteps.astype(np.float32)).to(device=device)
        self.sigmas = sigmas.to("cpu")

    return type(f"Scheduled{base.__name__}", (base,), {
        "__init__": __init__, "set_timesteps": set_timesteps, "_sigma_to_t": EulerDiscreteScheduler._sigma_to_t,
        **{name: getattr(EulerDiscreteScheduler, name) for name in _SIGMA_HOOKS.values()}})


@functools.cache
def _seeded_sde() -> type:
    """DPMSolverSDEScheduler whose Brownian trees are seeded from each image's generator: one tree per image, seeded
    with the generator's seed. (The pipeline passes its generators to ``step`` because this one takes them; the
    scheduler makes its trees at the first step after each ``set_timesteps``, so each pipeline call gets its batch's.)"""
    import warnings

    from diffusers import DPMSolverSDEScheduler

    # torchsde's float round-off note at each tree query ("Should have tb<=t1 …"): harmless, and A1111 sees it too
    warnings.filterwarnings("ignore", message="Should have .*<=t1", module="torchsde")
    class SeededDPMSolverSDEScheduler(DPMSolverSDEScheduler):
        def step(self, model_output, timestep, sample, s_noise=1.0, return_dict=True, generator=None):
            if self.noise_sampler is None and generator is not None:
                seeds = [g.initial_seed() for g in generator] if isinstance(generator, list) else generator.initial_seed()
                self.noise_sampler_seed = seeds
            return super().step(model_output, timestep, sample, s_noise=s_noise, return_dict=return_dict)

    return SeededDPMSolverSDEScheduler
