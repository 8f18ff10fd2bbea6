"""Samplers by AUTOMATIC1111's names, as diffusers schedulers (the mapping of diffusers' scheduler documentation):
each is a scheduler class configured from the model's own scheduler config plus a few settings (Karras sigmas, the
SDE variant of DPM++ …), so the betas and timestep spacing stay the model's. ``--sampler NAME`` picks one for a run;
without it a run uses the model folder's scheduler. The run records the name and the class with its settings, and
``rerun`` and ``resume`` make the same scheduler again. Torch-free until a scheduler is made.
"""

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
    Sampler("DDIM", "DDIMScheduler"),
    Sampler("PLMS", "PNDMScheduler"),
    Sampler("UniPC", "UniPCMultistepScheduler"),
    Sampler("LCM", "LCMScheduler"),
)}


def sampler(name: str) -> Sampler:
    """The sampler of an A1111 name (case and spacing as A1111 writes it, or in any case); RunError listing them."""
    found = SAMPLERS.get(name) or {n.lower(): s for n, s in SAMPLERS.items()}.get(" ".join(name.lower().split()))
    if found is None:
        raise RunError(f"unknown sampler {quoted(name)}: use one of {', '.join(SAMPLERS)} (`promptism samplers` lists them)")
    return found


def make_scheduler(chosen: Sampler, config) -> object:
    """``chosen``'s scheduler, configured from a model's scheduler ``config``; RunError where that config cannot
    take it (a flow-matching model and an SD sampler, say)."""
    import diffusers

    try:
        return getattr(diffusers, chosen.scheduler).from_config(config, **chosen.settings)
    except Exception as exc:  # noqa: BLE001 - whatever the config lacks: one line naming the sampler
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        if isinstance(exc, ImportError):  # (LMS needs scipy)
            raise RunError(f"sampler {quoted(chosen.name)} needs a package that is not installed: {detail}") from None
        raise RunError(f"sampler {quoted(chosen.name)} cannot run with this model's scheduler config: {detail}") from None
