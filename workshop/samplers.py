"""Samplers by AUTOMATIC1111's names (Euler a, DPM++ 2M Karras …): the table of those promptism has, each with the
diffusers scheduler class and settings it runs (``runner/samplers.py`` makes them), and the lookup every surface
uses — ``--sampler``, a spec's [params], the sampler setting, the TUI, the A1111 API. Pure data: no torch, no
diffusers, and no runner (the settings check their sampler with it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from journal.text import quoted

from .errors import RunError


@dataclass(frozen=True)
class Sampler:
    name: str  # AUTOMATIC1111's
    scheduler: str  # the diffusers class
    settings: dict = field(default_factory=dict)  # over the model's scheduler config
    ancestral: bool = False  # draws fresh noise every step (from each image's own generator)


_KARRAS = {"use_karras_sigmas": True}
_SDE = {"algorithm_type": "sde-dpmsolver++"}
_EXPONENTIAL = {"use_exponential_sigmas": True}
_HEUN = {"solver_type": "heun"}
_THIRD = {"solver_order": 3}
SAMPLERS = {s.name: s for s in (
    Sampler("Euler", "EulerDiscreteScheduler"),
    Sampler("Euler a", "EulerAncestralDiscreteScheduler", ancestral=True),
    Sampler("Heun", "HeunDiscreteScheduler"),
    Sampler("LMS", "LMSDiscreteScheduler"),
    Sampler("LMS Karras", "LMSDiscreteScheduler", _KARRAS),
    Sampler("DPM2", "KDPM2DiscreteScheduler"),
    Sampler("DPM2 Karras", "KDPM2DiscreteScheduler", _KARRAS),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", ancestral=True),
    Sampler("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", _KARRAS, ancestral=True),
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler"),
    Sampler("DPM++ 2M Karras", "DPMSolverMultistepScheduler", _KARRAS),
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", _SDE, ancestral=True),
    Sampler("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", {**_SDE, **_KARRAS}, ancestral=True),
    Sampler("DPM++ 2M SDE Exponential", "DPMSolverMultistepScheduler", {**_SDE, **_EXPONENTIAL}, ancestral=True),
    Sampler("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler", {**_SDE, **_HEUN}, ancestral=True),
    Sampler("DPM++ 2M SDE Heun Karras", "DPMSolverMultistepScheduler", {**_SDE, **_HEUN, **_KARRAS}, ancestral=True),
    Sampler("DPM++ 2M SDE Heun Exponential", "DPMSolverMultistepScheduler", {**_SDE, **_HEUN, **_EXPONENTIAL},
            ancestral=True),
    Sampler("DPM++ 3M SDE", "DPMSolverMultistepScheduler", {**_SDE, **_THIRD}, ancestral=True),
    Sampler("DPM++ 3M SDE Karras", "DPMSolverMultistepScheduler", {**_SDE, **_THIRD, **_KARRAS}, ancestral=True),
    Sampler("DPM++ 3M SDE Exponential", "DPMSolverMultistepScheduler", {**_SDE, **_THIRD, **_EXPONENTIAL},
            ancestral=True),
    Sampler("DPM++ SDE", "DPMSolverSDEScheduler", ancestral=True),
    Sampler("DPM++ SDE Karras", "DPMSolverSDEScheduler", _KARRAS, ancestral=True),
    Sampler("DDIM", "DDIMScheduler"),
    Sampler("PLMS", "PNDMScheduler"),
    Sampler("UniPC", "UniPCMultistepScheduler"),
    Sampler("LCM", "LCMScheduler"),
)}


def named(scheduler: str | None) -> str | None:
    """The A1111 name of a model's own scheduler (its diffusers class, as a run records it): the plain sampler that
    runs that class ("DDIMScheduler" → "DDIM"), so a client that sends it back gets that sampler; the class name
    where promptism has none."""
    return next((s.name for s in SAMPLERS.values() if s.scheduler == scheduler and not s.settings), scheduler)


OWN = "default"  # where a sampler name goes (--sampler, [params], the setting): the model folder's own scheduler


def sampler(name: str) -> Sampler:
    """The sampler of an A1111 name (case and spacing as A1111 writes it, or in any case); RunError listing them."""
    found = SAMPLERS.get(name) or {n.lower(): s for n, s in SAMPLERS.items()}.get(" ".join(name.lower().split()))
    if found is None:
        raise RunError(f"unknown sampler {quoted(name)}: use one of {', '.join(SAMPLERS)} (`promptism samplers` lists them)")
    return found
