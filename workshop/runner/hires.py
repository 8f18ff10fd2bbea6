"""AUTOMATIC1111's hires fix: a txt2img first pass at the run's size, its result upscaled, then an img2img second
pass over it at the hires size — the two passes A1111's ``StableDiffusionProcessingTxt2Img.sample_hr_pass`` makes.
The engine calls ``second_pass`` after its first pass; the rest (names, sizes, checks) is torch-free, for the options.

What A1111 does, read from its code, and what promptism does alike:
- The hires size is ``int(side × scale)`` (A1111's ``hr_upscale_to_x``), and its latents are that over 8, rounded
  down: the images are ``int(side × scale) // 8 × 8``, a multiple of 8 as every promptism size is.
- The upscalers: the ``Latent`` ones interpolate the first pass's latents (``torch.nn.functional.interpolate`` with
  A1111's mode and antialias for each name), so the first pass hands its latents on, undecoded. ``Lanczos`` and
  ``Nearest`` decode the first pass and resize its pixels with Pillow (by the scale with that filter, then with
  Lanczos to the exact size where that differs, as A1111's ``Upscaler.upscale`` does); the second pass encodes them.
  ``None`` is no upscaler, not no second pass: A1111 then resizes the pixels with plain Lanczos and still makes the
  second pass. Upscalers that are networks (R-ESRGAN, 4x-UltraSharp, SwinIR …) need weights promptism has not got:
  refused, with the names it has (a rerun of an imported experiment that used one takes Lanczos, and says so).
- The second pass: A1111 runs exactly ``hires steps`` denoising steps (0: the first pass's), the last ones of a
  schedule of ``int(hires steps / min(strength, 0.999))`` (its ``setup_img2img_steps``); its noise is drawn again
  from each image's seed, and it is conditioned on the same prompt. Its size, steps and strength are recorded beside
  the first pass's (``ParamsRecord.hires*``), as A1111 records ``Size`` and ``Hires upscale``.
Only Stable Diffusion 1.x/2.x and SDXL models take it here (A1111's own; their img2img pipelines take latents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from journal.limits import pixel_limit
from journal.text import quoted

from ..errors import RunError, option, settings_without
from .models import is_guided

LATENT = "Latent"
#: A1111's latent upscalers (its ``shared.latent_upscale_modes``): interpolate's mode and antialias
LATENT_MODES = {LATENT: ("bilinear", False), "Latent (antialiased)": ("bilinear", True),
                "Latent (bicubic)": ("bicubic", False), "Latent (bicubic antialiased)": ("bicubic", True),
                "Latent (nearest)": ("nearest", False), "Latent (nearest-exact)": ("nearest-exact", False)}
PIXEL = ("None", "Lanczos", "Nearest")  # its upscalers of pixels that need no weights, as its /upscalers lists them
UPSCALERS = (*LATENT_MODES, *PIXEL)
DEFAULT_STRENGTH = 0.7  # A1111's denoising strength of the second pass, as its txt2img page has it
STRENGTH_MAX = 0.999  # A1111 counts the second pass's schedule with the strength at most this


def upscaler(name: str, choices: tuple[str, ...] = UPSCALERS, what: str = "hires") -> str:
    """An upscaler of ``choices`` (the hires fix's, or SD upscale's) by its A1111 name (any case); RunError naming
    those there are."""
    found = next((u for u in choices if u.lower() == name.strip().lower()), None)
    if found is None:
        shown = quoted(name) if len(name) <= 80 else "of that name"
        raise RunError(f"the {what} upscaler {shown} is not one promptism has (those that need weights, as R-ESRGAN "
                       f"or 4x-UltraSharp do, are not here): use one of {', '.join(choices)}")
    return found


def hires_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The second pass's size: A1111's ``int(side × scale)``, rounded down to a multiple of 8 as its latents are."""
    return int(width * scale) // 8 * 8, int(height * scale) // 8 * 8


def made_size(params, width: int, height: int) -> tuple[int, int]:
    """The size of the images a run (its ``ParamsRecord``) makes of a ``width``×``height`` first pass (with SD
    upscale, of tiles of that size: the upscaled init image's, recorded)."""
    if made := getattr(params, "sd_upscale_size", None):
        return made[0], made[1]
    scale = getattr(params, "hires", None)
    return hires_size(width, height, scale) if scale else (width, height)


def check(options) -> None:
    """A run's hires settings (``RunOptions``), as far as they are checked without a model: RunError, one line."""
    if options.hires is None:
        settings_without("the hires fix", f"{option('hires')} SCALE (e.g. 2)",
                         [(name.replace("_", "-"), getattr(options, name))
                          for name in ("hires_steps", "hires_strength", "hires_upscaler")])
        return
    if not (math.isfinite(options.hires) and options.hires > 0):
        raise RunError(f"the hires scale multiplies the size: a number above 0 (A1111's Hires upscale, e.g. 2), not "
                       f"{options.hires:g}")
    if options.hires_steps is not None and options.hires_steps < 0:
        raise RunError(f"hires steps are 1 or more, or 0 for the first pass's steps, not {options.hires_steps}")
    strength = options.hires_strength
    if strength is not None and not (math.isfinite(strength) and 0 <= strength <= 1):
        raise RunError(f"the hires strength (the second pass's denoising strength) is 0 (the upscale alone) to 1, not "
                       f"{strength:g}")
    if options.init_image is not None:
        raise RunError(f"the hires fix upscales a txt2img run; with {option('init-image')} this is img2img: leave out "
                       f"{option('hires')}, or the init image")
    if options.variation_seed is not None:
        raise RunError(f"a variation seed with the hires fix: A1111 varies its second pass's noise too, which promptism "
                       f"does not: leave out {option('variation-seed')} or {option('hires')}")
    if is_guided(options.model):
        raise RunError(f"the hires fix is a second diffusion pass; the CLIP-guided backend does not sample: leave out "
                       f"{option('hires')}")
    if options.hires_upscaler is not None:
        upscaler(options.hires_upscaler)
    if options.size is not None:
        check_size(*options.size, options.hires)


def check_size(width: int, height: int, scale: float) -> None:
    """The hires size of a ``width``×``height`` first pass: at least 8 a side, within the pixel limit."""
    w, h = hires_size(width, height, scale)
    if w < 8 or h < 8:
        raise RunError(f"hires {scale:g} makes {width}x{height} into {max(w, 0)}x{max(h, 0)}: too small (8 a side at least); "
                       f"use a larger {option('hires')}")
    if w * h > pixel_limit():
        most = math.sqrt(pixel_limit() / (width * height))
        raise RunError(f"hires {scale:g} makes {width}x{height} into {w}x{h}, {w * h:,} pixels, over the limit of "
                       f"{pixel_limit():,} (max_image_pixels in config.toml): use {option('hires')} "
                       f"{math.floor(most * 100) / 100:g} or less, or a smaller {option('size')}")


def params(options) -> dict:
    """The hires settings a run records (``ParamsRecord``): none without the hires fix; with it, every one, its
    defaults (A1111's) resolved, so a rerun makes the same whatever the defaults become."""
    if options.hires is None:
        return {}
    return {"hires": options.hires, "hires_steps": options.hires_steps or None,
            "hires_strength": DEFAULT_STRENGTH if options.hires_strength is None else options.hires_strength,
            "hires_upscaler": options.hires_upscaler or LATENT}


def check_model(options, family: str | None, name: str, sizes, steps, most: int | None) -> None:
    """The hires fix where the model takes it: a Stable Diffusion 1.x/2.x or SDXL model (``family``), each first-pass
    size of ``sizes`` within the limits at the hires size, and each second pass's schedule (of ``steps``, the first
    passes') no longer than the model's scheduler (``most`` timesteps)."""
    if family not in ("sd", "sdxl"):
        raise RunError(f"the hires fix is for Stable Diffusion 1.x/2.x and SDXL models, as A1111 makes it; {name} is "
                       f"not one: leave out {option('hires')}")
    for width, height in dict.fromkeys(sizes):
        check_size(width, height, options.hires)
    strength = DEFAULT_STRENGTH if options.hires_strength is None else options.hires_strength
    for first in dict.fromkeys(steps) if strength > 0 else ():  # (at 0 there is no second pass to schedule)
        total = schedule(options.hires_steps or first, strength)[0]
        if most is not None and total > most:
            raise RunError(f"hires steps {options.hires_steps or first} at hires strength {strength:g} take a schedule "
                           f"of {total} steps (A1111's: steps / strength), over the {most} timesteps {name}'s scheduler has: "
                           f"fewer {option('hires-steps')} or a higher {option('hires-strength')}")


@dataclass(frozen=True)
class Hires:
    """A run's hires fix as its engine makes it (from its ``ParamsRecord``)."""

    scale: float
    steps: int  # 0: the first pass's
    strength: float
    upscaler: str

    @classmethod
    def of(cls, params) -> Hires | None:
        if not getattr(params, "hires", None):
            return None
        strength = DEFAULT_STRENGTH if params.hires_strength is None else params.hires_strength
        return cls(params.hires, params.hires_steps or 0, strength, params.hires_upscaler or LATENT)

    @property
    def first_output(self) -> str:
        """What the first pass hands on: its latents to a latent upscaler, else its pixels."""
        return "latent" if self.upscaler in LATENT_MODES else "pil"

    def steps_of(self, job) -> int:
        """The denoising steps the second pass runs for ``job`` (its first pass's where none were given, as A1111;
        none at strength 0, where A1111's schedule has no step: the upscale is the image)."""
        return 0 if self.strength == 0 else self.steps or job.steps


def schedule(steps: int, strength: float) -> tuple[int, float]:
    """diffusers' ``num_inference_steps`` and ``strength`` that run the ``steps`` A1111 runs. A1111 makes a schedule of
    ``T = int(steps / min(strength, 0.999))`` steps and runs its last ``steps``; diffusers' img2img makes a schedule of
    ``num_inference_steps`` and runs its last ``int(num_inference_steps × strength)``. So: ``num_inference_steps`` T,
    and a strength of ``(steps + ½) / T`` (at most 1), whose product with T is ``steps + ½`` — rounded down,
    ``steps``, whatever the float error — starting from the same timestep of the same schedule as A1111."""
    total = max(steps, int(steps / min(strength, STRENGTH_MAX)))
    return total, min(1.0, (steps + 0.5) / total)


def upscaled(hires: Hires, first, jobs) -> object:
    """The first pass's output at the hires size: latents interpolated, or pixels (PIL images) resized."""
    import torch
    from PIL import Image

    size = hires_size(jobs[0].width, jobs[0].height, hires.scale)
    if hires.upscaler in LATENT_MODES:
        mode, antialias = LATENT_MODES[hires.upscaler]
        factor = jobs[0].width // first.shape[-1]  # the VAE's (8 for SD; the tiny model's is 2)
        return torch.nn.functional.interpolate(first, size=(size[1] // factor, size[0] // factor), mode=mode,
                                               antialias=antialias)
    if hires.upscaler == "None":  # A1111 resizes with Lanczos when no upscaler is named
        return [image.resize(size, Image.LANCZOS) for image in first]
    return [_pixel_upscale(image, size, Image.LANCZOS if hires.upscaler == "Lanczos" else Image.NEAREST)
            for image in first]


def _pixel_upscale(image, size: tuple[int, int], resample) -> object:
    """A1111's Upscaler for Lanczos / Nearest: the image by the scale, then Lanczos to the size where that differs."""
    from PIL import Image

    scale = max(size[0] / image.width, size[1] / image.height)
    image = image.resize((int(image.width * scale), int(image.height * scale)), resample)
    return image if image.size == size else image.resize(size, Image.LANCZOS)


RESAMPLE = {"Lanczos": "LANCZOS", "Nearest": "NEAREST"}  # the pixel upscalers' Pillow filters, by name


def a1111_upscale(image, name: str, scale: float) -> object:
    """A1111's ``Upscaler.upscale`` with a pixel upscaler (``Lanczos``, ``Nearest``; ``None`` resizes with Lanczos
    alone): the image by ``scale`` with its filter, again up to three times until it reaches the size (not at all
    where it is there already, unless the scale is 1), then with Lanczos to ``int(side × scale)`` rounded down to a
    multiple of 8 where that differs. The extras routes and the SD upscale script (``sd_upscale.py``) use it."""
    from PIL import Image

    dest = upscale_size(image.size, scale)
    for i in range(3):
        if image.width >= dest[0] and image.height >= dest[1] and (i > 0 or scale != 1):
            break
        before = image.size
        if name != "None":
            image = image.resize((int(image.width * scale), int(image.height * scale)),
                                 getattr(Image, RESAMPLE[name]))
        if image.size == before:
            break
    return image if image.size == dest else image.resize(dest, Image.LANCZOS)


def upscale_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The size A1111's ``Upscaler.upscale`` makes of ``size``: each side times ``scale``, rounded down to a multiple
    of 8."""
    return int(size[0] * scale // 8 * 8), int(size[1] * scale // 8 * 8)


def upscale_alone(pipe, hires: Hires, first, jobs):
    """The images of a hires fix at strength 0 (A1111 makes a schedule of no steps): the upscaled latents decoded,
    or the upscaled pixels, as the pipeline's ``output_type="pt"`` gives its images."""
    import numpy as np
    import torch

    up = upscaled(hires, first, jobs)
    if isinstance(up, list):
        return torch.from_numpy(np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) / 255 for image in up])
                                ).permute(0, 3, 1, 2)
    decoded = pipe.vae.decode(up.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="pt")


def second_pass(hires: Hires, first, jobs, guidance: float, inputs: dict) -> dict:
    """The img2img call's arguments: ``first`` (the first pass's ``images``) upscaled, the first pass's ``guidance``,
    the prompt conditioning and step callback of ``inputs`` (the engine's, scheduled over this pass's steps), each
    image's generator seeded again with its seed (A1111 draws the second pass's noise from the seeds again), and
    A1111's steps (``schedule``)."""
    import torch

    total, strength = schedule(hires.steps_of(jobs[0]), hires.strength)
    return {**inputs, "image": upscaled(hires, first, jobs), "strength": strength, "num_inference_steps": total,
            "guidance_scale": guidance, "generator": [torch.Generator("cpu").manual_seed(j.seed) for j in jobs],
            "output_type": "pt"}
