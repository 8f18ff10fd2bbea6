"""AUTOMATIC1111's HTTP API on promptism's service, with A1111's field names and shapes, so existing clients
(``webuiapi`` and the like) work: ``POST /sdapi/v1/txt2img`` and ``/img2img``, ``GET /sdapi/v1/sd-models``,
``/samplers``, ``/schedulers``, ``/progress`` and ``POST /interrupt``; ``a1111_settings`` adds ``/options`` (GET and
POST) and the other lists.

Each call becomes a grid job (plain mode, one cell per image, seeds ``seed + i`` for ``batch_size × n_iter`` images,
``batch_size`` images per pipeline call) in the journal the service was started for (``serve --journal``), else the
user's default journal: the run is there to browse and accept later (``promptism runs``, ``promptism accept``).

Decisions, where A1111 and promptism differ:
- Sampler: ``sampler_name`` (or the older ``sampler_index``) with the newer ``scheduler`` ("DPM++ 2M" + "Karras",
  or "DPM++ 2M Karras" alone) is the run's sampler by its A1111 name, as ``--sampler`` takes it (``GET /samplers``
  and ``/schedulers`` list them); "", "Default" or "automatic" ask for the ``sampler`` setting, else the model's own
  scheduler; ``scheduler`` is any of A1111 1.10's schedule types promptism makes (``karras``, ``sgm_uniform``,
  ``align_your_steps``, ``normal`` …, by name or label); an unknown sampler, or a schedule type promptism or that
  sampler cannot make, is a 422 naming the valid ones. DDIM, PLMS and UniPC run on their own timesteps whatever the
  schedule type, as A1111 1.10 runs its timestep samplers (said in "Not applied"). ``info`` names the sampler that
  ran by promptism's name (a client may send it back); the infotexts as A1111 1.10 writes them ("Sampler: DPM++ 2M,
  Schedule type: Karras"; a plain name's own spacing is Uniform, or Automatic where that is the same). What
  promptism does not do — override settings other than ``sd_model_checkpoint``, ``CLIP_stop_at_last_layers``
  (Clip skip) and ``sd_vae`` — is accepted and named in ``extra_generation_params["Not applied"]`` (also in the infotexts), never silently dropped.
- ``enable_hr`` makes the hires fix (``runner/hires.py``): ``hr_scale`` (or ``hr_resize_x/y`` in the first pass's
  proportions: A1111 crops another shape, refused), ``hr_second_pass_steps``, ``denoising_strength``, ``hr_upscaler``;
  a second pass with its own checkpoint, sampler or prompts is refused (promptism's is the first pass's).
- ``tiling``, ``override_settings.sd_vae`` and ``subseed`` / ``subseed_strength`` (the variation seed; -1: a random
  one, reported in info) are applied. A1111 keeps one seed and steps the subseed per image where the strength is not
  0; promptism's images keep their seeds ``seed + i`` and share the subseed (its variation seed is the run's), said in
  "Not applied" where there are several images.
- ``mask`` inpaints (``runner/masks.py``): ``inpaint_full_res`` (its API's default, "only masked") paints the mask's
  box, ``inpaint_full_res_padding`` wider, at width × height and returns images of the init image's size (as A1111);
  false paints the whole picture at width × height. ``inpainting_fill`` 0-3 (fill, original, latent noise, latent
  nothing; latent noise drawn from each image's own seed, where A1111 takes the first images' seeds for every batch),
  ``mask_blur`` (or ``mask_blur_x`` across and ``mask_blur_y`` down) and ``inpainting_mask_invert``. A1111 finds the only-masked box in
  the mask and cuts it from the init image even where their sizes differ; promptism refuses such a mask with a 422,
  and one with no white (A1111 falls back to img2img), rather than paint the wrong part.
- img2img's ``script_name`` "SD upscale" (any case, as A1111 matches it) with ``script_args`` ``[info, overlap,
  upscaler, scale_factor]`` is the run's SD upscale (``runner/sd_upscale.py``): width × height is the tile, n_iter
  images of seeds seed + n, ``batch_size`` tiles per pipeline call (tile k seeded seed + k: A1111's at batch_size 1;
  a larger batch_size, which A1111 also seeds by, is said in "Not applied"); bad script_args are a 422 naming the one.
- Features that would change the picture past recognition are refused with a 422, as A1111 refuses an unknown script:
  face restoration, styles, other scripts, resize modes other than "just resize", more than one init image, and the
  CLIP-guided backend (it has no cfg_scale).
- Steps, cfg_scale, width and height left out mean the model's own defaults (not A1111's 50, 7 and 512).
- Init images are decoded under the journal's pixel limit and stored, pixels only, in the journal's scratch area
  (``.promptism/inputs/<sha256>.png``): the run records that path as ``--init-image`` does.
- Returned PNGs are the run's own files (pixels only); the generation parameters travel in the JSON ``info``, to the
  client that sent the prompt. Nothing here logs a prompt.
- ``/interrupt`` cancels the running job only if it came through this API (a TUI grid is not an A1111 client's to
  stop); ``/progress`` reports whatever job runs, with its latest live preview as ``current_image`` (every 10 steps,
  as A1111's default; the latents mapped to RGB, no VAE) unless ``skip_current_image``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from starlette.concurrency import run_in_threadpool

from journal import InvalidInput, Journal, JournalError
from journal.atomic import write_atomic
from journal.images import clean_png, open_image
from journal.journal import tool_version
from journal.text import one_line

from ..compose.errors import SpecError
from ..compose.grid import DEFAULT_MAX_CELLS, SEED_MAX, build_grid
from ..compose.spec import spec_from
from ..contract import GivenOptions, Spec, valid_text
from ..errors import RunError, from_wire, worded
from ..paths import journal_dir
from ..runner.masks import refusal
from ..runner.options import resolve, run_sampler
from ..runner.records import CellRecord
from ..runner.runs import Run, load_run
from ..runner import sd_upscale
from ..runner.sd_upscale import UPSCALERS as SD_UPSCALERS, upscaler as sd_upscaler
from ..samplers import NOT_MADE, OWN, PLAIN, SAMPLERS, a1111_fields, named, sampler, schedule_label, with_schedule
from ..settings import Settings, load_settings
from .api import JobInfo, JobRequest

INPUTS = "inputs"  # init images sent over the API, in the journal's scratch area
SD_UPSCALE = "sd upscale"  # the one script promptism has: img2img's, by its A1111 title (matched in any case)
OWN_SAMPLER = {"", OWN, "automatic"}  # sampler names that ask for nothing in particular
#: A1111 1.10's timestep samplers: they take no schedule type (A1111 ignores the request's ``scheduler`` for them)
TIMESTEP_SAMPLERS = ("DDIM", "PLMS", "UniPC")
#: The schedule types promptism's samplers take, as A1111 1.10's /schedulers lists them (its name, label, aliases,
#: default rho and whether it needs the model); others are refused by name.
SCHEDULERS = {"automatic": ("Automatic", None, -1, False), "uniform": ("Uniform", None, -1, True),
              "karras": ("Karras", None, 7.0, False), "exponential": ("Exponential", None, -1, False),
              "polyexponential": ("Polyexponential", None, 1.0, False),
              "sgm_uniform": ("SGM Uniform", ["SGMUniform"], -1, True),
              "align_your_steps": ("Align Your Steps", None, -1, False), "simple": ("Simple", None, -1, True),
              "normal": ("Normal", None, -1, True), "beta": ("Beta", None, -1, True)}


Prose = Annotated[str, AfterValidator(valid_text)]  # a prompt: valid Unicode, of a bounded length (contract.TEXT_MAX)


class _Request(BaseModel):
    """The fields txt2img and img2img share. Unknown fields are ignored, as A1111 does."""

    model_config = ConfigDict(extra="ignore")

    prompt: Prose = ""
    negative_prompt: Prose = ""
    seed: int = Field(-1, ge=-1, le=SEED_MAX)  # -1: a random seed, reported in info
    subseed: int = -1
    subseed_strength: float = Field(0.0, allow_inf_nan=False)
    steps: int | None = Field(None, ge=1)
    cfg_scale: float | None = Field(None, ge=0, allow_inf_nan=False)
    width: int | None = Field(None, ge=8, multiple_of=8)
    height: int | None = Field(None, ge=8, multiple_of=8)
    batch_size: int = Field(1, ge=1)
    n_iter: int = Field(1, ge=1)
    sampler_name: str | None = None
    sampler_index: str | None = None  # A1111's older name for sampler_name
    scheduler: str | None = None
    override_settings: dict[str, Any] = {}
    restore_faces: bool | None = None
    tiling: bool | None = None
    styles: list[str] | None = None
    script_name: str | None = None  # img2img's "SD upscale" (runner/sd_upscale.py), with its script_args
    script_args: list[Any] = []
    alwayson_scripts: dict[str, Any] = {}
    send_images: bool = True
    save_images: bool = False

    @field_validator("restore_faces", "styles", "alwayson_scripts")
    @classmethod
    def _not_offered(cls, value, info: ValidationInfo):
        if value:
            raise ValueError(f"promptism does not offer {info.field_name}: leave it out")
        return value

    @field_validator("script_name")
    @classmethod
    def _script_offered(cls, value: str | None):
        if value and (cls.__name__ != "Img2ImgRequest" or value.lower() != SD_UPSCALE):  # (A1111: any case)
            shown = json.dumps(value) if len(value) <= 80 else "of that name"
            raise ValueError(f"promptism offers no script {shown} here: img2img's \"SD upscale\" is the one it has; "
                             "leave script_name out")
        return value

    @field_validator("override_settings")
    @classmethod
    def _checkpoint_named(cls, value: dict[str, Any]):
        name = value.get("sd_model_checkpoint")
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise ValueError("sd_model_checkpoint must name a model (see /sdapi/v1/sd-models)")
        return value

    @model_validator(mode="after")
    def _count(self):
        count = self.count  # (SD upscale's: n_iter images, batch_size being its tiles per call)
        if count > DEFAULT_MAX_CELLS:
            raise ValueError(f"{'n_iter' if count != self.batch_size * self.n_iter else 'batch_size × n_iter'} is "
                             f"{count} images, over promptism's cap of {DEFAULT_MAX_CELLS} a run")
        if self.seed + count - 1 > SEED_MAX:
            raise ValueError(f"seeds seed … seed + {count - 1} run past {SEED_MAX}: start from a lower seed")
        return self

    @property
    def count(self) -> int:
        return self.batch_size * self.n_iter


class Txt2ImgRequest(_Request):
    enable_hr: bool = False  # A1111's hires fix (runner/hires.py): a second, image-to-image pass at hr_scale
    denoising_strength: float | None = Field(None, allow_inf_nan=False)  # its second pass's (A1111: hires fix only)
    hr_scale: float = Field(2.0, gt=0, allow_inf_nan=False)
    hr_upscaler: str | None = None  # None or "": A1111's default, Latent
    hr_second_pass_steps: int = Field(0, ge=0)  # 0: the first pass's
    hr_resize_x: int = Field(0, ge=0)  # a target size instead of hr_scale
    hr_resize_y: int = Field(0, ge=0)
    hr_checkpoint_name: str | None = None  # (A1111 1.6+: the second pass's own model, sampler, prompts; promptism
    hr_sampler_name: str | None = None  # makes it with the first pass's: empty or "Use same …" only)
    hr_scheduler: str | None = None
    hr_prompt: Prose = ""
    hr_negative_prompt: Prose = ""

    @model_validator(mode="after")
    def _second_pass_as_the_first(self):
        if not self.enable_hr:
            return self
        same = {"hr_checkpoint_name": self.hr_checkpoint_name, "hr_sampler_name": self.hr_sampler_name,
                "hr_scheduler": self.hr_scheduler}
        for name, value in same.items():
            if value and not value.lower().startswith("use same"):
                raise ValueError(f"{name}: promptism makes the hires fix's second pass with the first pass's model, "
                                 f"sampler and schedule: leave {name} out")
        for name, value, first in (("hr_prompt", self.hr_prompt, self.prompt),
                                   ("hr_negative_prompt", self.hr_negative_prompt, self.negative_prompt)):
            if value and value != first:
                raise ValueError(f"{name}: promptism makes the hires fix's second pass with the first pass's prompts: "
                                 f"leave {name} out")
        return self

    def hires_scale(self) -> float | None:
        """The hires fix's scale: hr_scale, or hr_resize_x/y's where they keep the first pass's proportions."""
        if not self.enable_hr:
            return None
        if not (self.hr_resize_x or self.hr_resize_y):
            return self.hr_scale
        if self.width is None or self.height is None:
            raise BadValue(["hr_resize_x"], "hr_resize_x/hr_resize_y need width and height: give them, or hr_scale")
        scales = {side / first for side, first in ((self.hr_resize_x, self.width), (self.hr_resize_y, self.height))
                  if side}
        if len(scales) > 1:
            raise BadValue(["hr_resize_x"], f"hr_resize {self.hr_resize_x}x{self.hr_resize_y} is not {self.width}x"
                           f"{self.height} scaled (A1111 crops it); promptism scales: give hr_scale, or a size of the "
                           "same proportions")
        return scales.pop()


class Img2ImgRequest(_Request):
    init_images: list[str] | None = Field(None, validate_default=True)
    denoising_strength: float = Field(0.75, gt=0, le=1)
    resize_mode: int = 0
    mask: str | None = None  # inpainting (runner/masks.py): base64, white is painted again
    mask_blur: int | None = Field(None, ge=0)  # (A1111 1.10: both of mask_blur_x / _y where given)
    mask_blur_x: int = Field(4, ge=0)
    mask_blur_y: int = Field(4, ge=0)
    inpainting_fill: int = Field(0, ge=0, le=3)  # 0 fill, 1 original, 2 latent noise, 3 latent nothing
    inpaint_full_res: bool = True  # A1111's "Only masked" (its API's default): the mask's box painted at width × height
    inpaint_full_res_padding: int = Field(0, ge=0)  # (only masked: pixels round the box)
    inpainting_mask_invert: int = Field(0, ge=0, le=1)
    include_init_images: bool = False

    @field_validator("init_images")
    @classmethod
    def _one_image(cls, value: list[str] | None):
        if not value:
            raise ValueError("img2img needs an init image (base64 PNG, JPEG or WebP)")
        if len(value) > 1:
            raise ValueError(f"promptism starts a run from one init image, not {len(value)}")
        return value

    @field_validator("resize_mode")
    @classmethod
    def _just_resize(cls, value: int):
        if value != 0:
            raise ValueError("promptism resizes the init image to width × height (resize_mode 0) and nothing else")
        return value

    @property
    def count(self) -> int:
        """The images made: SD upscale makes n_iter (batch_size is its tiles per call), else batch_size × n_iter."""
        return self.n_iter if self.script_name else self.batch_size * self.n_iter

    def sd_upscale(self) -> dict:
        """The run options SD upscale's ``script_args`` ask for — ``[info, overlap, upscaler, scale_factor]``, as
        A1111's script takes them (the upscaler by name, any case, or its place in A1111's list) — none without the
        script; BadValue naming the argument at fault."""
        if not self.script_name:
            return {}
        if len(self.script_args) != 4:
            raise BadValue(["script_args"], f"SD upscale takes 4 script_args, [info, tile overlap, upscaler, scale "
                           f"factor] (e.g. [\"\", 64, \"Lanczos\", 2]), not {len(self.script_args)}")
        _, overlap, name, scale = self.script_args
        whole = isinstance(overlap, int) or isinstance(overlap, float) and overlap.is_integer()
        if isinstance(overlap, bool) or not whole or overlap < 0:
            raise BadValue(["script_args", 1], f"SD upscale's tile overlap is a whole number of pixels, 0 or more, not "
                           f"{json.dumps(overlap)[:40]}")
        if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(SD_UPSCALERS):
            name = SD_UPSCALERS[name]  # (A1111's list starts None, Lanczos, Nearest)
        if not isinstance(name, str):
            raise BadValue(["script_args", 2], f"SD upscale's upscaler: one of {', '.join(SD_UPSCALERS)} by name (or "
                           f"its place in /sdapi/v1/upscalers), not {json.dumps(name)[:40]}")
        try:
            name = sd_upscaler(name)
        except RunError as exc:
            raise BadValue(["script_args", 2], f"{exc} (see /sdapi/v1/upscalers)") from None
        number = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        try:
            number = number and math.isfinite(scale)
        except OverflowError:  # (an int past a float's range)
            number = False
        if not number or not scale > 0:
            raise BadValue(["script_args", 3], f"SD upscale's scale factor multiplies the init image's size: a number "
                           f"above 0 (e.g. 2), not {json.dumps(scale)[:40]}")
        return {"sd_upscale": float(scale), "sd_upscale_overlap": int(overlap), "sd_upscale_upscaler": name}

    def inpainting(self) -> dict:
        """The run options the mask asks for (none without one); BadValue for what promptism does not make."""
        if not self.mask:
            return {}
        area = {"mask_area": "masked", "mask_padding": self.inpaint_full_res_padding} if self.inpaint_full_res else {}
        across, down = (self.mask_blur, None) if self.mask_blur is not None else (self.mask_blur_x, self.mask_blur_y)
        return {"mask_blur": across, "mask_blur_y": None if down == across else down,
                "mask_invert": bool(self.inpainting_mask_invert) or None,
                "mask_fill": ("fill", "original", "latent-noise", "latent-nothing")[self.inpainting_fill], **area}


class ImagesResponse(BaseModel):
    images: list[str] | None = None  # base64 PNG, pixels only
    parameters: dict
    info: str  # JSON, as A1111's Processed.js()


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: dict
    current_image: str | None = None
    textinfo: str | None = None


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, str]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float = -1
    need_inner_model: bool = False


class BadValue(Exception):
    """A request value promptism refuses, answered as FastAPI answers a validation error (422)."""

    def __init__(self, loc: list[str], msg: str):
        super().__init__(msg)
        self.loc = loc

    def response(self) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": [{"loc": ["body", *self.loc], "msg": str(self),
                                                                  "type": "value_error"}]})


# ------------------------------------------------------------------ request → job


@dataclass(frozen=True)
class Mapped:
    """A request as the job it becomes, and what the response needs to say about it."""

    job: JobRequest
    seeds: list[int]
    defaults: dict[str, Any] | None = None  # the override settings POST /options gave it (a1111_settings)


def seeds_for(seed: int, count: int) -> list[int]:
    """A1111's rule: image i gets seed + i; seed -1 picks a random first seed (one that leaves room for all)."""
    first = secrets.randbelow(SEED_MAX - count + 2) if seed == -1 else seed
    return [first + i for i in range(count)]


def model_name(req: _Request, default: str) -> str:
    return req.override_settings.get("sd_model_checkpoint") or default


def sampler_of(req: _Request, setting: str | None, model: str) -> str | None:
    """The run's sampler by promptism's name: ``sampler_name`` (else ``sampler_index``), or the sampler setting where
    it names none, with ``scheduler``'s schedule; None for the model's own scheduler. BadValue for a name promptism
    lacks."""
    asked = req.sampler_name or req.sampler_index or ""
    field = "sampler_name" if req.sampler_name else "sampler_index" if req.sampler_index else "scheduler"
    schedule = " ".join((req.scheduler or "").split())
    label = schedule_label(schedule) if schedule else "Automatic"
    if label is None:
        made, why = NOT_MADE.get(schedule.lower().replace(" ", "").replace("_", ""), (None, None))
        said = f"promptism does not make {made} ({why})" if made else "unknown scheduler"
        raise BadValue(["scheduler"], f"{said} {schedule!r}: promptism's samplers take "
                       f"{', '.join(name for name in SCHEDULERS)} (see /sdapi/v1/schedulers)")
    from_setting = asked.strip().lower() in OWN_SAMPLER
    base = run_sampler(None, setting, model) if from_setting else asked
    if from_setting and base is not None and label == "Automatic":
        return sampler(base).name  # the setting's sampler as promptism names it (A1111's Automatic is a named one's)
    if base is None:
        if label == "Automatic":
            return None  # the model's own scheduler
        raise BadValue(["scheduler"], f"scheduler {schedule!r} goes with a sampler: name one in sampler_name "
                       "(see /sdapi/v1/samplers)")
    try:
        chosen = sampler(base)
    except RunError as exc:
        raise BadValue([field], f"{exc} (see /sdapi/v1/samplers)") from None
    if chosen.name in TIMESTEP_SAMPLERS:
        return chosen.name  # (A1111 runs them on their own timesteps whatever the schedule type: said in info)
    try:
        return with_schedule(base, label).name
    except RunError as exc:  # a schedule type this sampler cannot take: the line names those it can
        raise BadValue(["scheduler"], f"{exc} (see /sdapi/v1/schedulers)") from None


def job_request(req: _Request, journal: Path, *, seeds: list[int], sampler_name: str | None = None,
                init_image: Path | None = None, mask: Path | None = None) -> JobRequest:
    """The grid job an A1111 request asks for: one plain cell per seed, ``batch_size`` images a pipeline call; what
    the request leaves out, the settings decide (``runner.options.resolve``), as for every job."""
    if (req.width is None) != (req.height is None):  # (it was made square; A1111 would take 512 for the other)
        raise BadValue(["height" if req.height is None else "width"], "give width and height together, or neither "
                       "for the model's own size")
    size = (req.width, req.height) if req.width is not None else None
    img2img = isinstance(req, Img2ImgRequest)
    varied = req.subseed_strength != 0
    subseed = (secrets.randbelow(SEED_MAX + 1) if req.subseed == -1 else req.subseed) if varied else None
    try:
        given = GivenOptions(model=req.override_settings.get("sd_model_checkpoint") or None, steps=req.steps,
                             clip_skip=req.override_settings.get(CLIP_SKIP), emphasis=req.override_settings.get(EMPHASIS),
                             vae=req.override_settings.get(SD_VAE) or None,
                             tiling=req.tiling or None, variation_seed=subseed, **_hires(req),
                             **(req.sd_upscale() if img2img else {}),
                             preview_every=PREVIEW_EVERY,
                             variation_strength=req.subseed_strength if varied else None,
                             guidance=req.cfg_scale, max_batch=req.batch_size, sampler=sampler_name, size=size,
                             init_image=str(init_image) if img2img and init_image else None,
                             strength=req.denoising_strength if img2img else None,
                             **({"mask": str(mask), **req.inpainting()} if img2img and mask else {}))
        spec = Spec(prompt=req.prompt, negative=req.negative_prompt, seeds=seeds, max_cells=len(seeds))
    except ValidationError as exc:  # a value the request's own model let through (a model name with a lone surrogate)
        error = exc.errors(include_input=False)[0]
        name = str(error["loc"][0]).replace("_", "-") if error["loc"] else ""  # (an option as errors name it)
        carried = A1111_FIELDS.get(name, name)
        raise BadValue(carried.split(".") if carried else [], error["msg"]) from None
    return JobRequest(kind="grid", journal=str(journal), spec=spec, options=given, create=True)  # the service's own


def _hires(req: _Request) -> dict:
    """The hires fix's options a txt2img request asks for (none without enable_hr)."""
    scale = req.hires_scale() if isinstance(req, Txt2ImgRequest) else None
    if scale is None:
        return {}
    return {"hires": scale, "hires_steps": req.hr_second_pass_steps or None, "hires_strength": req.denoising_strength,
            "hires_upscaler": req.hr_upscaler or None}


def check_job(job: JobRequest, settings: Settings) -> None:
    """What the runner would refuse without loading a model, refused now as a 422 (nothing is written)."""
    from ..runner.models import check_name, is_guided

    try:
        build_grid(spec_from(job.spec))
    except SpecError as exc:
        raise BadValue(["prompt"], exc.worded(as_a1111)) from None
    try:
        options = resolve(job.spec, job.options, settings)
    except RunError as exc:
        raise BadValue([], exc.worded(as_a1111)) from None
    if is_guided(options.model):
        raise BadValue(["override_settings", "sd_model_checkpoint"], f"{options.model} is CLIP-guided (it has no "
                       "cfg_scale or sampler): the A1111 API serves diffusion models; use `promptism generate` for it")
    try:
        check_name(options.model)
    except RunError as exc:
        raise BadValue(["override_settings", "sd_model_checkpoint"], exc.worded(as_a1111)) from None
    if options.vae:
        from ..runner.vae import find_vae

        try:
            find_vae(options.vae, allow_pickle=False)
        except RunError as exc:
            raise BadValue(["override_settings", SD_VAE], exc.worded(as_a1111)) from None


WARM_WAIT_S = 300  # how long an A1111 route waits for the service's warm-up before a 503
PREVIEW_EVERY = 10  # steps between live previews (/progress's current_image): A1111's show_progress_every_n_steps
CLIP_SKIP = "CLIP_stop_at_last_layers"  # A1111's setting for Clip skip
SD_VAE = "sd_vae"  # A1111's setting for the VAE
EMPHASIS = "emphasis"  # A1111's setting for the Emphasis mode
APPLIED_SETTINGS = ("sd_model_checkpoint", CLIP_SKIP, SD_VAE, EMPHASIS)  # the override_settings a request's job applies
# promptism's options (as errors name them, errors.option) → the fields of an A1111 request that carry them
A1111_FIELDS = {"guidance": "cfg_scale", "steps": "steps", "size": "width/height", "init-image": "init_images",
                "strength": "denoising_strength", "sampler": "sampler_name", "seeds": "seed", "seed": "seed",
                "model": "override_settings.sd_model_checkpoint", "negative": "negative_prompt", "prompt": "prompt",
                "clip-skip": f"override_settings.{CLIP_SKIP}", "vae": f"override_settings.{SD_VAE}", "emphasis": f"override_settings.{EMPHASIS}", "tiling": "tiling",
                "variation-seed": "subseed", "variation-strength": "subseed_strength", "hires": "hr_scale",
                "hires-steps": "hr_second_pass_steps", "hires-strength": "denoising_strength",
                "hires-upscaler": "hr_upscaler", "mask": "mask", "mask-blur": "mask_blur",
                "mask-fill": "inpainting_fill", "mask-invert": "inpainting_mask_invert", "mask-area": "inpaint_full_res",
                "mask-padding": "inpaint_full_res_padding", "sd-upscale": "script_args[3]",
                "sd-upscale-overlap": "script_args[1]", "sd-upscale-upscaler": "script_args[2]"}
# …and those the service's settings (config.toml) decide for A1111 jobs
SETTINGS = {"max-batch", "compile", "channels-last", "tf32", "clip"}


def as_a1111(name: str, metavar: str) -> str:
    """How the A1111 routes name an option in an error: the request field that carries it, else the setting of the
    service's config.toml that does, else promptism's own option, which this API does not take."""
    if name in A1111_FIELDS:
        return A1111_FIELDS[name]
    if name in SETTINGS:
        return f"the {name.replace('-', '_')} setting (the service's config.toml)"
    return f"promptism's --{name} (not taken by this API)"


def decode_image(data: str, field: str = "init_images[0]"):
    """A base64 image (a ``data:`` URL too, as webuiapi sends), decoded under the pixel limit."""
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadValue([field], "not base64: send the image file's bytes in base64") from None
    try:
        image = open_image(_Named(raw, field))
    except InvalidInput as exc:
        raise BadValue([field], str(exc)) from None
    if min(image.size) < 8:
        raise BadValue([field], f"the init image is {image.width}x{image.height}; it must be at least 8x8")
    return image


class _Named(io.BytesIO):
    """Bytes that name themselves as the request field they came from in open_image's messages."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.field = name

    def __str__(self) -> str:
        return self.field


def store_image(journal: Journal, image) -> Path:
    """The init image, pixels only, in the journal's scratch area under its sha256 (stored once)."""
    clean = clean_png(image)
    path = journal.scratch / INPUTS / f"{clean.sha256}.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, clean.data)
    return path


def map_request(req: _Request, journal: Path, settings: Settings, defaults: dict[str, Any] | None = None) -> Mapped:
    """Check a request and turn it into its job; an img2img's init image is stored in the journal (created if
    need be) only once everything else has passed. ``defaults``: the override settings where the request's say
    nothing (what POST /options switched: a1111_settings). BadValue for what the runner would refuse."""
    if defaults:
        req = req.model_copy(update={"override_settings": {**defaults, **req.override_settings}})
    seeds = seeds_for(req.seed, req.count)
    chosen = sampler_of(req, settings.sampler, model_name(req, settings.model))
    image = decode_image(req.init_images[0]) if isinstance(req, Img2ImgRequest) else None
    if image is not None and (upscale := req.sd_upscale()):  # the image it makes, within the limits
        try:
            size = sd_upscale.check_image(image.size, upscale["sd_upscale"], upscale["sd_upscale_upscaler"])
        except RunError as exc:
            raise BadValue(["script_args", 3], exc.worded(as_a1111)) from None
        try:
            sd_upscale.check_tiles(size, (req.width, req.height) if req.width and req.height else None,
                                   upscale["sd_upscale_overlap"])
        except RunError as exc:
            raise BadValue(["script_args", 1], exc.worded(as_a1111)) from None
    mask = decode_image(req.mask, "mask") if isinstance(req, Img2ImgRequest) and req.mask else None
    check_job(job_request(req, journal, seeds=seeds, sampler_name=chosen,
                          init_image=Path("init_images[0]") if image else None, mask=Path("mask") if mask else None),
              settings)
    asked = req.inpainting() if mask is not None else {}  # (the run options the job was given above)
    if mask is not None and (problem := refusal(image, mask, invert=bool(asked["mask_invert"]),
                                                 area=asked.get("mask_area", "whole"), blur=asked["mask_blur"],
                                                 blur_y=asked["mask_blur_y"])):
        raise BadValue(["mask"], problem)
    stored = store_image(Journal.open(journal, create=True), image) if image else None
    stored_mask = store_image(Journal.open(journal, create=True), mask) if mask else None
    return Mapped(job_request(req, journal, seeds=seeds, sampler_name=chosen, init_image=stored, mask=stored_mask),
                  seeds, defaults)


# ------------------------------------------------------------------ finished run → response


def not_applied(req: _Request, ran: str | None) -> list[str]:
    """What the request asked for that promptism did not do (reported in info, never silently dropped); ``ran``: the
    sampler that ran (promptism's name), whatever named it."""
    notes = []
    if req.subseed_strength and req.count > 1:
        notes.append("subseed + i per image (promptism's images keep their seeds, seed + i, and share the subseed)")
    if getattr(req, "script_name", None) and req.batch_size > 1:
        notes.append(f"SD upscale's seeds per batch of {req.batch_size} tiles (promptism seeds tile k of an image "
                     "seed + k, as A1111 does at batch_size 1; batch_size is its tiles per pipeline call)")
    schedule = schedule_label(" ".join((req.scheduler or "").split())) if req.scheduler else None
    if ran in TIMESTEP_SAMPLERS and schedule not in (None, *PLAIN.values()):
        notes.append(f"scheduler {schedule} ({ran} runs on its own timesteps: A1111 ignores the schedule type for "
                     f"{', '.join(TIMESTEP_SAMPLERS)})")
    notes += [f"override_settings.{key}" for key in req.override_settings if key not in APPLIED_SETTINGS]
    return notes


def build_response(req: _Request, run: Run, seeds: list[int]) -> ImagesResponse:
    """A1111's response for a finished (or interrupted) run: its images in seed order, the request echoed as
    ``parameters``, and ``info`` as A1111's JSON with the values that were applied (from the run's record)."""
    record, params = run.record, run.record.params
    vae_name, _, vae_hash = (params.vae or "").rpartition(": ")
    vae_name, vae_hash = vae_name or None, vae_hash or None
    notes = "; ".join(not_applied(req, params.sampler))
    extra = {"Not applied": notes} if notes else {}
    cells = run.done
    infotexts = [_infotext(run, cell, extra) for cell in cells]
    info = {
        "prompt": req.prompt, "all_prompts": [c.prompt for c in cells],
        "negative_prompt": req.negative_prompt, "all_negative_prompts": [c.negative for c in cells],
        "seed": seeds[0], "all_seeds": [c.seed for c in cells], "subseed": _or(params.variation_seed, -1),
        "all_subseeds": [_or(params.variation_seed, -1) for _ in cells], "subseed_strength": params.variation_strength or 0, "width": params.width, "height": params.height,
        "sampler_name": params.sampler or named(params.scheduler),
        "cfg_scale": params.guidance, "steps": params.steps, "batch_size": req.batch_size, "restore_faces": False,
        "face_restoration_model": None, "sd_model_name": record.model.credited, "sd_model_hash": record.model.info.hash,
        "sd_vae_name": vae_name,
        "sd_vae_hash": vae_hash, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": params.strength if params.strength is not None else params.hires_strength,
        "extra_generation_params": extra, "index_of_first_image": 0,
        "infotexts": infotexts, "styles": [], "job_timestamp": re.sub(r"\D", "", record.created or "")[:14],
        "clip_skip": params.clip_skip or 1, "is_using_inpainting_conditioning": False, "version": f"promptism {tool_version()}",
        "promptism_run": run.id, "promptism_state": run.state,
    }
    parameters = _echoed(req)
    encoded = [base64.b64encode(run.image(c).read_bytes()).decode("ascii") for c in cells] if req.send_images else []
    return ImagesResponse(images=encoded, parameters=parameters, info=json.dumps(info, ensure_ascii=False))


def _or(value, otherwise):
    return otherwise if value is None else value


def _infotext(run: Run, cell: CellRecord, extra: dict[str, str]) -> str:
    """A1111's infotext for one image: the prompt, the negative prompt, then ``Key: value`` pairs."""
    p = run.record.params
    ran, schedule = _sampler_fields(p.sampler or named(p.scheduler))
    pairs = {"Steps": p.steps, "Sampler": ran, "Schedule type": schedule, "CFG scale": p.guidance, "Seed": cell.seed,
             "Size": f"{p.width}x{p.height}", "Model hash": run.record.model.info.hash, "Model": run.record.model.credited,
             "VAE hash": (p.vae or "").rpartition(": ")[2] or None,
             "VAE": (p.vae or "").rpartition(": ")[0] or None, "Variation seed": p.variation_seed,
             "Variation seed strength": p.variation_strength,
             "Denoising strength": p.strength if p.strength is not None else p.hires_strength,
             "Hires upscale": p.hires, "Hires steps": p.hires_steps, "Hires upscaler": p.hires_upscaler,
             "Clip skip": p.clip_skip, "Emphasis": p.emphasis_mode, "SD upscale overlap": p.sd_upscale_overlap,
             "SD upscale upscaler": p.sd_upscale_upscaler, "Tiling": "True" if p.tiling else None,
             **_mask_fields(p), **extra, "Version": f"promptism {tool_version()}"}
    text = ", ".join(f"{k}: {json.dumps(v) if ',' in str(v) else v}" for k, v in pairs.items() if v is not None)
    negative = f"\nNegative prompt: {cell.negative}" if cell.negative else ""
    return f"{cell.prompt}{negative}\n{text}"


def _mask_fields(p) -> dict:
    """The inpainting fields A1111 writes in an infotext (and only where it writes them)."""
    if p.mask is None:
        return {}
    return {"Mask blur": None if p.mask_blur_y is not None else p.mask_blur or None,  # (A1111: none where X ≠ Y)
            "Mask mode": "Inpaint not masked" if p.mask_invert else None,
            "Inpaint area": "Only masked" if p.mask_area == "masked" else None,
            "Masked area padding": p.mask_padding if p.mask_area == "masked" else None,
            "Masked content": {"fill": "fill", "latent-noise": "latent noise", "latent-nothing": "latent nothing"}.get(
                p.mask_fill or "original")}


def _sampler_fields(name: str | None) -> tuple[str | None, str | None]:
    """The run's sampler as A1111 1.10's infotext names it, "Sampler" and "Schedule type" (``samplers.a1111_fields``);
    a model's own scheduler promptism has no name for, by its class."""
    try:
        return a1111_fields(name) if name else (None, None)
    except RunError:
        return name, None


def _echoed(req: _Request) -> dict:
    """The request as A1111 sends it back in ``parameters`` (init images only when asked for)."""
    parameters = req.model_dump()
    if isinstance(req, Img2ImgRequest) and not req.include_init_images:
        parameters |= {"init_images": None, "mask": None}
    return parameters


def nothing_made(req: _Request) -> ImagesResponse:
    """A1111's answer for a job cancelled before it began: no images (as A1111 answers an interrupt that came before
    the first one), said in ``info``."""
    info = {"prompt": req.prompt, "negative_prompt": req.negative_prompt, "all_seeds": [], "infotexts": [],
            "promptism_state": "cancelled"}
    return ImagesResponse(images=[], parameters=_echoed(req), info=json.dumps(info))


def failed(error: str) -> JSONResponse:
    """What went wrong on the service's side (a job that made no run, a journal that cannot be written), answered
    as A1111 answers an exception: a 500 with the error."""
    return JSONResponse(status_code=500, content={"error": "JobFailed", "detail": error, "body": "", "errors": error})


# ------------------------------------------------------------------ the routes


def journal_for(service) -> Path:
    """The journal A1111 calls write their runs to: the service's (``serve --journal``), else the user's default."""
    return Path(service.journal or journal_dir()).expanduser().absolute()


def _sd_models(settings: Settings) -> list[SDModelItem]:
    """The models a request may name: promptism's (built-ins, folders, the Hugging Face cache) by their names, and the
    installs' checkpoints by A1111's title — ``name.safetensors [hash]`` where its hash is known (computed once and
    cached; never here, where hashing every checkpoint would take minutes), else ``name.safetensors``."""
    from ..runner.model_files import cached_hashes, model_files
    from ..runner.models import available

    found = [SDModelItem(title=s.id, model_name=s.id, filename=str(s.path)) for s in available(settings)
             if s.kind != "guided"]
    for file in model_files(settings, "checkpoint"):
        known = cached_hashes(file.path)
        found.append(SDModelItem(title=file.title(), model_name=file.name, hash=known[0][:10] if known else None,
                                 sha256=known[0] if known else None, filename=str(file.path)))
    return found


def _png_b64(image) -> str:
    """A live preview as A1111's ``current_image``: a PNG, base64 (pixels only)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def progress_of(job: JobInfo | None, step, interrupted: bool) -> ProgressResponse:
    """A1111's progress for the running job (from its last step event), or an idle one."""
    if job is None:
        state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "", "job_count": 0,
                 "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
        return ProgressResponse(progress=0.0, eta_relative=0.0, state=state)
    state = {"skipped": False, "interrupted": interrupted, "stopping_generation": False, "job": job.id,
             "job_count": 1, "job_timestamp": re.sub(r"\D", "", job.started or job.created)[:14], "job_no": 0,
             "sampling_step": step.step if step else 0, "sampling_steps": step.steps if step else 0}
    done = step.done / step.total if step and step.total else 0.0
    eta = step.eta_s if step and step.eta_s is not None else 0.0
    return ProgressResponse(progress=min(done, 1.0), eta_relative=eta, state=state)


class _A1111Route(APIRoute):
    """A1111's routes answer a malformed request in FastAPI's default shape (``{"detail": [{"loc", "msg", "type"}]}``,
    what A1111 clients get), whatever error shape the app gives its own routes — without FastAPI's ``input``: the
    request's own values (its prompt) are not sent back, and each message is one escaped line."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def handle(request: Request):
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return JSONResponse(status_code=422, content={"detail": [
                    {"loc": list(e.get("loc", ())), "msg": one_line(str(e.get("msg", "invalid"))), "type": e.get("type")}
                    for e in exc.errors()]})

        return handle


def router(service) -> APIRouter:
    """A1111's routes on ``service`` (submit, wait, current, last_step, cancel, journal), for the app to mount at
    ``/sdapi/v1``."""
    from . import a1111_extras, a1111_settings  # (they import this module)

    async def warmed(request: Request) -> None:
        """Every route but the progress ones waits for the service's warm-up: they import the runner."""
        if request.url.path.rpartition("/")[2] not in ("progress", "interrupt", "skip"):
            if not await run_in_threadpool(service.wait_warm, WARM_WAIT_S):
                raise HTTPException(503, "the service is still getting its runner ready: try again in a minute")

    api = APIRouter(tags=["AUTOMATIC1111"], route_class=_A1111Route, dependencies=[Depends(warmed)])
    ours: set[str] = set()  # jobs submitted through these routes and not yet answered
    interrupted: set[str] = set()

    async def generate(req: _Request):
        journal = journal_for(service)
        try:
            settings = load_settings()
            mapped = await run_in_threadpool(a1111_settings.map_with_options, req, journal, settings, service)
        except BadValue as exc:
            return exc.response()
        except JournalError as exc:  # the journal cannot take the init image: the service's, not the request's, fault
            return failed(str(exc))
        job = service.submit(mapped.job)
        ours.add(job.id)
        try:
            job = await service.wait(job.id)
        finally:
            ours.discard(job.id)
            interrupted.discard(job.id)
        if job.state == "cancelled" and job.run is None:  # by another client while it waited: nothing was made
            return nothing_made(req)
        if job.state not in ("finished", "cancelled") or job.run is None:
            said = worded(from_wire(job.error), as_a1111) if job.error else f"the job ended {job.state}"
            if job.error_type not in (None, "machine", "internal"):  # the request's own fault, found as it ran
                return a1111_settings.with_origin(BadValue([], said), req, mapped.defaults).response()
            return failed(said)
        run = await run_in_threadpool(lambda: load_run(Journal.open(journal), job.run))
        return await run_in_threadpool(build_response, req, run, mapped.seeds)

    @api.post("/txt2img", response_model=ImagesResponse)
    async def txt2img(req: Txt2ImgRequest):
        return await generate(req)

    @api.post("/img2img", response_model=ImagesResponse)
    async def img2img(req: Img2ImgRequest):
        return await generate(req)

    @api.get("/progress", response_model=ProgressResponse)
    async def progress(skip_current_image: bool = False):
        job = service.current()
        answer = progress_of(job, service.last_step(job.id) if job else None, job is not None and job.id in interrupted)
        if job is not None and not skip_current_image and (preview := service.last_preview(job.id)) is not None:
            answer.current_image = await run_in_threadpool(_png_b64, preview.images[0])
        return answer

    @api.post("/interrupt")
    async def interrupt():
        job = service.current()
        if job is not None and job.id in ours:
            service.cancel(job.id)
            interrupted.add(job.id)
        return {}

    @api.get("/sd-models", response_model=list[SDModelItem])
    async def sd_models():
        return await run_in_threadpool(_sd_models, load_settings())

    @api.get("/samplers", response_model=list[SamplerItem])
    async def samplers():
        return [SamplerItem(name=s.name, aliases=[], options={"scheduler": s.scheduler, **{k: str(v) for k, v in
                                                                                         s.settings.items()}})
                for s in SAMPLERS.values()]

    @api.get("/schedulers", response_model=list[SchedulerItem])
    async def schedulers():
        return [SchedulerItem(name=name, label=label, aliases=aliases, default_rho=rho, need_inner_model=inner)
                for name, (label, aliases, rho, inner) in SCHEDULERS.items()]

    a1111_extras.add_routes(api, service)  # png-info, interrogate, extra-single-image, extra-batch-images
    a1111_settings.add_routes(api, service, interrupt=interrupt)  # /options, the lists, /skip, refresh and unload
    return api
