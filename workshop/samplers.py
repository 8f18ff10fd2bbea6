"""Samplers by AUTOMATIC1111's names: a sampler (Euler a, DPM++ 2M …) with, as A1111 1.9+ has it, a schedule type
(Karras, Exponential, SGM Uniform, Align Your Steps …) — "DPM++ 2M Karras", "Euler a SGM Uniform" — each the diffusers
scheduler class and settings it runs (``runner/samplers.py`` makes them), and the lookup every surface uses —
``--sampler``, a spec's [params], the sampler setting, the TUI, the A1111 API. Pure data: no torch, no diffusers, and
no runner (the settings check their sampler with it).

The schedule types are A1111 1.10's (its ``sd_schedulers``), each as diffusers makes it:
- Uniform and Normal (A1111's are one: its discrete model's timesteps evenly from 999 to 0) and no type at all: the
  sampler on the model's own timestep spacing, as promptism has always run the plain names (recorded runs name them;
  SD 1.x's folders say "leading", which starts lower than A1111's 999);
- Automatic: the sampler's own default in A1111 1.10 (``journal.samplers.AUTOMATIC``: DPM++ 2M → Karras …);
- Karras, Exponential, Beta: diffusers' ``use_karras_sigmas``, ``use_exponential_sigmas``, ``use_beta_sigmas`` (the
  same formulas; Beta with A1111's default alpha = beta = 0.6); Polyexponential is Exponential (A1111's rho for it is
  1, where k-diffusion's polyexponential is the exponential schedule);
  for Euler a, whose diffusers class lacks them, promptism's subclass computes them as EulerDiscreteScheduler does
  (``EXTENDED``);
- SGM Uniform and Simple: ``timestep_spacing="trailing"`` (diffusers' documented equivalent of SGM Uniform; both
  step from timestep 999 in even strides, A1111's within a timestep of diffusers' rounding);
- Align Your Steps: NVIDIA's 10-step sigmas for SD 1.x or SDXL, log-linearly interpolated to the step count as A1111
  does (``sigmas``: the runner computes them where diffusers computes Karras').
A1111's KL Optimal (it ends at the model's smallest sigma, ComfyUI's at 0), DDIM (it adds a step at some step
counts) and ComfyUI's beta (not A1111's) have no faithful diffusers mapping, and are refused by name. A class takes a
type where its ``__init__`` has the option (diffusers 0.42.1; a test checks this table against the installed
diffusers) or promptism extends it with that option (``EXTENDED``); another is refused in one line naming those it
takes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from journal.samplers import AUTOMATIC
from journal.text import quoted

from .errors import RunError


@dataclass(frozen=True)
class Sampler:
    name: str  # AUTOMATIC1111's
    scheduler: str  # the diffusers class
    settings: dict = field(default_factory=dict)  # over the model's scheduler config
    ancestral: bool = False  # draws fresh noise every step (from each image's own generator)
    sigmas: str | None = None  # a schedule the runner computes ("align_your_steps"); None: diffusers' own


@dataclass(frozen=True)
class Schedule:
    label: str  # A1111's "Schedule type"
    key: str  # its name in A1111's API (``scheduler``, /sdapi/v1/schedulers)
    settings: dict  # over the sampler's
    needs: str  # the option of a diffusers scheduler class's __init__ it sets (a class without it cannot make it)
    sigmas: str | None = None  # a schedule the runner computes (see Sampler.sigmas)


_KARRAS = {"use_karras_sigmas": True}
_SDE = {"algorithm_type": "sde-dpmsolver++"}
_EXPONENTIAL = {"use_exponential_sigmas": True}
_TRAILING = {"timestep_spacing": "trailing"}
_HEUN = {"solver_type": "heun"}
_THIRD = {"solver_order": 3}
AYS = "align_your_steps"

#: The plain samplers (A1111's, no schedule type): each alone runs on the model's own timestep spacing.
SAMPLERS = {s.name: s for s in (
    Sampler("Euler", "EulerDiscreteScheduler"),
    Sampler("Euler a", "EulerAncestralDiscreteScheduler", ancestral=True),
    Sampler("Heun", "HeunDiscreteScheduler"),
    Sampler("LMS", "LMSDiscreteScheduler"),
    Sampler("DPM2", "KDPM2DiscreteScheduler"),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", ancestral=True),
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler"),
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", _SDE, ancestral=True),
    Sampler("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler", {**_SDE, **_HEUN}, ancestral=True),
    Sampler("DPM++ 3M SDE", "DPMSolverMultistepScheduler", {**_SDE, **_THIRD}, ancestral=True),
    Sampler("DPM++ SDE", "DPMSolverSDEScheduler", ancestral=True),
    Sampler("DDIM", "DDIMScheduler"),
    Sampler("PLMS", "PNDMScheduler", {"skip_prk_steps": True}),  # (A1111's and LDM's PLMS: no Runge-Kutta warm-up)
    Sampler("UniPC", "UniPCMultistepScheduler"),
    Sampler("LCM", "LCMScheduler"),
)}

#: A1111 1.10's schedule types that name a schedule of their own (Automatic, Uniform and Normal: see PLAIN).
SCHEDULES = {s.label: s for s in (
    Schedule("Karras", "karras", _KARRAS, "use_karras_sigmas"),
    Schedule("Exponential", "exponential", _EXPONENTIAL, "use_exponential_sigmas"),
    Schedule("Polyexponential", "polyexponential", _EXPONENTIAL, "use_exponential_sigmas"),
    Schedule("SGM Uniform", "sgm_uniform", _TRAILING, "timestep_spacing"),
    Schedule("Align Your Steps", AYS, _KARRAS, "use_karras_sigmas", sigmas=AYS),  # (Karras' hook, AYS' sigmas)
    Schedule("Simple", "simple", _TRAILING, "timestep_spacing"),
    Schedule("Beta", "beta", {"use_beta_sigmas": True}, "use_beta_sigmas"),
)}
PLAIN = {"automatic": "Automatic", "uniform": "Uniform", "normal": "Normal"}  # the sampler's own schedule
#: Schedule types of A1111 1.10 promptism does not make, and why (said when one is asked for).
NOT_MADE = {"kloptimal": ("KL Optimal", "diffusers has no schedule that ends, as A1111's does, at the model's "
                                        "smallest noise level"),
            "ddim": ("DDIM", "A1111's adds a step at some step counts, which diffusers' leading spacing does not"),
            "comfyuibeta": ("ComfyUI Beta", "ComfyUI's beta takes the model's sigmas at the beta quantiles' timesteps; "
                                            "A1111's Beta, which promptism makes, spaces the sigmas by them")}
#: A1111 1.10 samplers promptism does not run, and the nearest it has (said when one is asked for).
NOT_RUN = {
    "DPM++ 2S a": "diffusers has no singlestep ancestral DPM++ solver (its DPMSolverSinglestepScheduler with "
                  "sde-dpmsolver++ adds SDE noise, not ancestral steps, on another step grid): the nearest are "
                  "DPM++ SDE and DPM++ 2M SDE",
    "Restart": "diffusers has no Restart sampler: the nearest are Heun and DPM++ 2M Karras",
    "DPM fast": "diffusers has no DPM-Solver fast (its step count is its own): the nearest is DPM++ 2M",
    "DPM adaptive": "diffusers has no adaptive-step DPM-Solver (it ignores the step count): the nearest is DPM++ 2M",
    "HeunPP2": "diffusers has no Heun++ (its third-order correction): the nearest is Heun",
    "IPNDM": "diffusers' IPNDMScheduler is made for another noise schedule than SD's: the nearest is PLMS",
    "IPNDM_V": "diffusers has no variable-step iPNDM: the nearest is PLMS",
    "DEIS": "diffusers' DEISMultistepScheduler is another DEIS variant than k-diffusion's: the nearest is UniPC",
    "DDIM CFG++": "diffusers has no CFG++ guidance: the nearest is DDIM",
}

_SIGMA_OPTIONS = frozenset({"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "timestep_spacing"})
#: The schedule options each class's __init__ takes (diffusers 0.42.1; tests/test_samplers.py checks the installed
#: diffusers). LCM's ``timestep_spacing`` is not used by its ``set_timesteps``, so it takes none.
OPTIONS = {
    "EulerDiscreteScheduler": _SIGMA_OPTIONS, "HeunDiscreteScheduler": _SIGMA_OPTIONS,
    "LMSDiscreteScheduler": _SIGMA_OPTIONS, "KDPM2DiscreteScheduler": _SIGMA_OPTIONS,
    "KDPM2AncestralDiscreteScheduler": _SIGMA_OPTIONS, "DPMSolverMultistepScheduler": _SIGMA_OPTIONS,
    "DPMSolverSDEScheduler": _SIGMA_OPTIONS, "UniPCMultistepScheduler": _SIGMA_OPTIONS,
    "EulerAncestralDiscreteScheduler": frozenset({"timestep_spacing"}), "DDIMScheduler": frozenset({"timestep_spacing"}),
    "PNDMScheduler": frozenset({"timestep_spacing"}), "LCMScheduler": frozenset(),
}
#: The schedule options promptism adds to a class whose diffusers __init__ lacks them, and why: the runner makes such
#: a class as a subclass that takes them and computes their sigmas with EulerDiscreteScheduler's own code
#: (``runner/samplers.py``; a test checks the sigmas equal Euler's, and that diffusers' class still lacks the options).
EXTENDED = {
    "EulerAncestralDiscreteScheduler": (
        frozenset({"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"}),
        "A1111 runs Euler a (k-diffusion's sample_euler_ancestral) on any schedule type's sigmas; diffusers' class "
        "computes only its timestep spacing's"),
}


def options_of(scheduler: str) -> frozenset:
    """The schedule options a diffusers class takes as promptism makes it: its __init__'s, and those it extends."""
    return OPTIONS[scheduler] | EXTENDED.get(scheduler, (frozenset(), ""))[0]


def schedules_of(base: Sampler) -> list[str]:
    """The schedule types ``base`` takes, by A1111's labels (Automatic, Uniform and Normal: every sampler)."""
    return [s.label for s in SCHEDULES.values() if s.needs in options_of(base.scheduler)]


def _combined(base: Sampler, schedule: Schedule) -> Sampler:
    return replace(base, name=f"{base.name} {schedule.label}", settings={**base.settings, **schedule.settings},
                   sigmas=schedule.sigmas)


#: Every name promptism runs: each plain sampler, and each with each schedule type it takes.
NAMES = {**SAMPLERS, **{f"{b.name} {label}": _combined(b, SCHEDULES[label])
                        for b in SAMPLERS.values() for label in schedules_of(b)}}
_FOLDED = {name.lower(): s for name, s in NAMES.items()}


def named(scheduler: str | None) -> str | None:
    """The A1111 name of a model's own scheduler (its diffusers class, as a run records it): the plain sampler that
    runs that class ("DDIMScheduler" → "DDIM"), so a client that sends it back gets that sampler; the class name
    where promptism has none."""
    return next((s.name for s in SAMPLERS.values() if s.scheduler == scheduler and not s.settings), scheduler)


def a1111_fields(name: str) -> tuple[str, str]:
    """A sampler promptism runs as A1111 1.10 writes it in an infotext: "Sampler" and "Schedule type" ("DPM++ 2M
    Karras" → "DPM++ 2M", "Karras"). A plain name is the sampler on its own spacing, which is A1111's Uniform, and
    its Automatic where A1111 has no other default for it: "DPM++ 2M" → "DPM++ 2M", "Uniform" (its Automatic is
    Karras); "Euler a" → "Euler a", "Automatic"."""
    made = sampler(name)
    if made.name in SAMPLERS:
        return made.name, ("Uniform" if AUTOMATIC.get(made.name) else "Automatic")
    base, rest = _split(made.name)
    return base.name, rest


OWN = "default"  # where a sampler name goes (--sampler, [params], the setting): the model folder's own scheduler


class SamplerRefused(RunError):
    """A sampler name promptism does not run; ``reason`` says why without the name ("" for a name unknown)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


def sampler(name: str) -> Sampler:
    """The sampler of an A1111 name — a sampler, optionally followed by a schedule type ("DPM++ 2M Karras"), as
    A1111 writes it or in any case; "Uniform" and "Normal" are the plain sampler's, "Automatic" A1111's default for
    it. SamplerRefused in one line: an unknown name listing the samplers, a sampler promptism lacks naming the
    nearest, a schedule type the sampler's diffusers class cannot make naming those it takes."""
    spaced = " ".join(name.split())
    if found := _FOLDED.get(spaced.lower()):
        return found
    base, rest = _split(spaced)
    if base is None:
        missing = next((n for n in NOT_RUN if spaced.lower() == n.lower() or spaced.lower().startswith(n.lower() + " ")),
                       None)
        if missing:
            raise SamplerRefused(f"the sampler {quoted(name)} is A1111's {missing}, which promptism does not run: "
                                 f"{NOT_RUN[missing]}", NOT_RUN[missing])
        raise SamplerRefused(f"unknown sampler {quoted(name)}: use one of {', '.join(SAMPLERS)}, alone or with a "
                             "schedule type (`promptism samplers` lists which each takes)")
    label = schedule_label(rest)
    if label in PLAIN.values():
        return _FOLDED[_plain(base, label).lower()]
    if label in schedules_of(base):  # by its API key ("sgm_uniform") or alias ("SGMUniform")
        return NAMES[f"{base.name} {label}"]
    takes = ", ".join([*PLAIN.values(), *schedules_of(base)])
    if label is not None:  # a type this sampler's class cannot make
        reason = f"{base.name} ({base.scheduler}) takes the schedule types {takes}, not {label}"
        raise SamplerRefused(f"the sampler {quoted(name)} cannot be made: {reason}", reason)
    if (key := _folded(rest)) in NOT_MADE:
        made, why = NOT_MADE[key]
        reason = f"promptism has no {made} schedule type ({why}); {base.name} takes {takes}"
        raise SamplerRefused(f"the sampler {quoted(name)} cannot be made: {reason}", reason)
    raise SamplerRefused(f"unknown sampler {quoted(name)}: use one of {', '.join(SAMPLERS)}, alone or with a schedule "
                         f"type ({base.name} takes {takes})", f"{base.name} takes the schedule types {takes}")


def _folded(text: str) -> str:
    return "".join(text.lower().split()).replace("_", "")


def schedule_label(text: str) -> str | None:
    """A1111's label of a schedule type promptism makes, named by its label, its API key or its alias, in any case
    ("sgm_uniform", "SGMUniform" → "SGM Uniform"); None for another."""
    return next((label for key, label in [*PLAIN.items(), *((s.key, s.label) for s in SCHEDULES.values())]
                 if _folded(text) == _folded(key)), None)


def _split(spaced: str) -> tuple[Sampler | None, str]:
    """The plain sampler a name starts with (the longest: "DPM++ 2M SDE Heun", not "DPM++ 2M"), and the rest."""
    for base in sorted(SAMPLERS.values(), key=lambda s: -len(s.name)):
        if spaced.lower().startswith(base.name.lower() + " "):
            return base, spaced[len(base.name) + 1:]
    return None, ""


def _plain(base: Sampler, label: str) -> str:
    """The name of ``base`` with the schedule A1111's Automatic, Uniform or Normal gives it."""
    default = AUTOMATIC.get(base.name, "") if label == "Automatic" else ""
    return f"{base.name} {default}" if default else base.name


def with_schedule(base: str, schedule: str | None) -> Sampler:
    """The sampler of an A1111 sampler and schedule type given apart (A1111 1.9+'s "Sampler" and "Schedule type",
    its API's ``sampler_name`` and ``scheduler``, by label or key: "DPM++ 2M" + "karras"); Automatic, Uniform or
    Normal with an older name that holds its schedule ("DPM++ 2M Karras") leave it as it is. RunError as ``sampler``."""
    made = sampler(base)
    schedule = " ".join((schedule or "").split())
    label = schedule_label(schedule) or schedule
    if not schedule or label in PLAIN.values() and made.name not in SAMPLERS:
        return made
    if made.name.lower().endswith(" " + label.lower()):  # "DPM++ 2M Karras" + "Karras"
        return made
    return sampler(f"{made.name} {label}")
