"""Sampler names as other tools write them, in AUTOMATIC1111's naming — the names promptism's samplers go by.

AUTOMATIC1111 wrote "DPM++ 2M Karras" until 1.9 and "DPM++ 2M" with a separate schedule type ("Karras") since;
ComfyUI (and Fooocus, NovelAI with ``k_``) names a sampler and a scheduler (``dpmpp_2m`` + ``karras``); InvokeAI one
scheduler name (``dpmpp_2m_k``; 2.x ``k_lms``).
Each maps to one A1111 name here, the old single-name spelling ("DPM++ 2M Karras"). A name with no A1111 counterpart
is kept as it was written, so an import records what the tool said; whether promptism can run it is the runner's
call (``workshop.runner.samplers``, which refuses an unknown name listing the known ones). Kept in the journal, which
imports nothing of the app, because both the importer (``metadata``) and the app (the A1111 API) read these names.
"""

from __future__ import annotations

#: A1111 schedule types that ask for the sampler's own noise schedule (no suffix on the old name).
_PLAIN_SCHEDULES = {"", "automatic", "uniform", "normal"}
#: A1111 1.9+'s default schedule of a sampler, which "Schedule type: Automatic" means (its k-diffusion samplers'
#: options); the others' is uniform
AUTOMATIC = {"DPM++ 2M": "Karras", "DPM++ SDE": "Karras", "DPM++ 2S a": "Karras", "DPM++ 2M SDE": "Exponential",
             "DPM++ 2M SDE Heun": "Exponential", "DPM++ 3M SDE": "Exponential", "DPM2": "Karras", "DPM2 a": "Karras",
             "Restart": "Karras"}

_COMFYUI_SAMPLERS = {
    "euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "lms": "LMS", "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE", "dpmpp_sde": "DPM++ SDE", "dpmpp_sde_gpu": "DPM++ SDE", "ddim": "DDIM",
    "uni_pc": "UniPC", "lcm": "LCM", "dpmpp_2s_ancestral": "DPM++ 2S a", "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive",
}
#: ComfyUI's schedulers by A1111's schedule types; its "beta" is not A1111's Beta (it takes the model's sigmas at
#: the beta quantiles' timesteps, A1111 spaces the sigmas themselves by them), so it keeps a name of its own
_COMFYUI_SCHEDULERS = {"normal": "", "karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform",
                       "simple": "Simple", "ddim_uniform": "", "beta": "ComfyUI Beta", "kl_optimal": "KL Optimal"}
_INVOKEAI = {
    "ddim": "DDIM", "pndm": "PLMS", "lms": "LMS", "lms_k": "LMS Karras", "euler": "Euler", "euler_a": "Euler a",
    "heun": "Heun", "kdpm_2": "DPM2", "kdpm_2_k": "DPM2 Karras", "kdpm_2_a": "DPM2 a", "kdpm_2_a_k": "DPM2 a Karras",
    "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_k": "DPM++ 2M Karras", "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_k": "DPM++ 2M SDE Karras", "dpmpp_sde": "DPM++ SDE", "dpmpp_sde_k": "DPM++ SDE Karras",
    "unipc": "UniPC", "lcm": "LCM",
    # InvokeAI 2.x (its Dream line's -A and sd-metadata's sampler)
    "plms": "PLMS", "k_lms": "LMS", "k_euler": "Euler", "k_euler_a": "Euler a", "k_heun": "Heun", "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a", "k_dpmpp_2": "DPM++ 2M", "k_dpmpp_2_a": "DPM++ 2S a",
}


def a1111_sampler(name: str, schedule: str | None = None) -> str:
    """The A1111 name of a sampler and a schedule type (A1111 1.9+'s "Schedule type", its API's ``scheduler``):
    "DPM++ 2M" + "Karras" → "DPM++ 2M Karras"; "Automatic" is the sampler's own default schedule in A1111 1.9+
    ("DPM++ 2M" + "Automatic" → "DPM++ 2M Karras"); a uniform schedule, or one the name already ends with, adds
    nothing."""
    name = " ".join(name.split())
    schedule = " ".join((schedule or "").split())
    if schedule.lower() == "automatic":
        schedule = AUTOMATIC.get(name, "")
    if schedule.lower() in _PLAIN_SCHEDULES or name.lower().endswith(" " + schedule.lower()):
        return name
    return f"{name} {schedule}"


def comfyui_sampler(sampler_name: str, scheduler: str | None = None) -> str:
    """The A1111 name of a ComfyUI KSampler's ``sampler_name`` and ``scheduler`` (dpmpp_2m + karras → DPM++ 2M
    Karras); unknown ones as ComfyUI wrote them."""
    schedule = _COMFYUI_SCHEDULERS.get(scheduler or "", scheduler)
    return a1111_sampler(_COMFYUI_SAMPLERS.get(sampler_name, sampler_name), schedule)


def invokeai_sampler(scheduler: str) -> str:
    """The A1111 name of an InvokeAI ``scheduler`` (dpmpp_2m_k → DPM++ 2M Karras); unknown ones as InvokeAI wrote them."""
    return _INVOKEAI.get(scheduler, scheduler)
