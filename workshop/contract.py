"""The typed job contract: what a grid job asks for, as every surface writes it — a spec file, the CLI's flags, the
TUI's composer, an AUTOMATIC1111 request, an imported experiment made again — and as the service's API carries it
(``service.api.JobRequest``; its OpenAPI schema is these models). Pydantic only: no torch, no journal, so the warm
client imports it cheaply.

- ``Spec``: the grid spec (prompt, keywords, mode, seeds, axes …, a ``model`` and ``params``). Its types are checked
  here; what they mean (a seed range, an axis, a mode) is ``compose.spec.spec_from``'s.
- ``RunParams``: a spec's ``[params]`` table, the run flags' settings.
- ``GivenOptions``: the run options a surface was given; None is "not given". ``runner.options.resolve`` makes the
  run's options of (spec, given, settings), by the one precedence: given › the spec's model and [params] › the
  settings (config.toml) › the model's own default.

Numbers are strict (no "12" for 12, no true for 1) and finite; unknown keys are refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic_core import PydanticCustomError


TEXT_MAX = 65_536  # characters in any one text of a job (a prompt, a keyword, a path): ~10,000 words, far past
# what a text encoder reads (A1111's longest prompts are a few thousand characters); a longer one is refused, so that
# no request can hold the service's worker in a tokenizer for minutes


def valid_text(text: str) -> str:
    """Text a job can carry: valid Unicode (no lone surrogate, which no file or journal could store: JSON allows
    "\\ud800", UTF-8 does not) and at most TEXT_MAX characters."""
    if len(text) > TEXT_MAX:
        raise PydanticCustomError("too_long", "is {length} characters long; at most {most} are taken",
                                  {"length": len(text), "most": TEXT_MAX})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("lone_surrogate", "holds a lone surrogate (U+{code}) at character {at}, which is "
                                  "not text: send valid UTF-8", {"code": f"{ord(text[exc.start]):04X}", "at": exc.start}) from None
    return text


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,4})?", text):
        raise PydanticCustomError("device", "names no device: write auto, cpu, mps, cuda or cuda:N")
    return text


def _not_blank(text: str) -> str:
    if not text.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return text


Whole = Annotated[int, Strict()]
Number = Annotated[float, Strict()]  # an int is a number too
Text = Annotated[str, Strict(), AfterValidator(valid_text)]
Named = Annotated[str, Strict(), AfterValidator(valid_text), AfterValidator(_not_blank)]
Flag = Annotated[bool, Strict()]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


class RunParams(Contract):
    """A spec's ``[params]``: the same settings as the run flags (which win over them). Ranges (steps of 1 or more,
    a size in multiples of 8 …) are checked where flags' are, by the runner."""

    steps: Whole | None = None
    guidance: Number | None = None
    size: Named | None = None  # WIDTHxHEIGHT
    strength: Number | None = None
    init_image: Named | None = None  # a path (a spec file's is relative to the file) or #N[:K]
    mask: Named | None = None  # inpainting: an image whose white marks what of the init image to paint again
    mask_blur: Whole | None = None
    mask_blur_y: Whole | None = None  # down, where it differs from mask_blur (across)
    mask_invert: Flag | None = None
    mask_fill: Named | None = None  # original, fill, latent-noise or latent-nothing (A1111's masked content)
    mask_area: Named | None = None  # whole (the whole picture) or masked (A1111's "only masked")
    mask_padding: Whole | None = None  # pixels round the masked area (with mask_area "masked")
    max_batch: Whole | None = None
    clip: Named | None = None
    sampler: Named | None = None  # an AUTOMATIC1111 name, or "default"
    clip_skip: Whole | None = None  # A1111's Clip skip: the text encoder's Nth layer from the end (1: the last)
    emphasis: Named | None = None  # A1111's Emphasis mode: Original, No norm or Ignore
    vae: Named | None = None  # A1111's sd_vae: an install's VAE by name, a file or folder, "Automatic" / "None"
    tiling: Flag | None = None  # A1111's Tiling: seamless (circular) convolutions
    variation_seed: Whole | None = None  # A1111's Variation seed, with its strength (0–1)
    variation_strength: Number | None = None
    hires: Number | None = None  # A1111's hires fix: its Hires upscale (e.g. 2); the rest go with it
    hires_steps: Whole | None = None  # its second pass's steps (0: the first pass's)
    hires_strength: Number | None = None  # its second pass's denoising strength (default 0.7)
    hires_upscaler: Named | None = None  # an A1111 upscaler name: Latent (the default), Lanczos, None …
    sd_upscale: Number | None = None  # A1111's SD upscale script: the init image's scale (e.g. 2); tiles of the size
    sd_upscale_overlap: Whole | None = None  # the tiles' overlap in pixels (default 64)
    sd_upscale_upscaler: Named | None = None  # None, Lanczos (the default) or Nearest


class KeywordTable(Contract):
    """A keyword written as a table: ``{ text = "striped", on = false, weight = 0.8 }``."""

    text: Text
    on: Flag = True
    weight: Number | None = None  # given alone, so the text is taken as it is (no ":1.3" read from it)


class Spec(Contract):
    """A grid spec: a spec file's keys (``compose/spec.py`` shows one), the flags merged over them, or a job's."""

    prompt: Text = ""
    negative: Text = ""
    keywords: list[Text | KeywordTable] = Field(default_factory=list)  # "glowing", "pixel art:1.3", or a table
    keywords_first: Flag = False
    mode: Text | None = None  # default: plain, or sr with an S/R axis
    seeds: Whole | Text | list[Whole] = 0  # 7, "1-9", or [1, 2, 3]
    per_cell_seeds: Flag = False
    max_cells: Whole | None = None
    wildcards: Text | None = None  # a folder of NAME.txt files (absolute in a job)
    model: Text | None = None
    params: RunParams = Field(default_factory=RunParams)
    axes: dict[str, Text] = Field(default_factory=dict)  # x, y, z: "TYPE=VALUES"


class GuidedSettings(Contract):
    """The CLIP-guided backend's settings (``runner/guided.py``)."""

    lr: Number = 0.4  # tuned on the shapes VAE with tests/bench/guided_quality.py
    cutouts: Whole = 24
    tv: Number = 0.1  # total-variation weight: smooths the image
    latent: Number = 0.0  # latent-size weight: keeps codes near the decoder's range
    quantize: Flag = True  # VQModel only: quantise every step (straight-through) rather than optimise continuous codes


class GivenOptions(Contract):
    """The run options a surface was given (a flag, a TUI field, an A1111 field); None where it gave none, so that
    the spec's [params] and then the settings decide. Paths are absolute once they leave the client."""

    model: Text | None = None  # (an empty name is refused where models are resolved, with what to write)
    steps: Whole | None = None
    guidance: Number | None = None
    size: tuple[Whole, Whole] | None = None  # (width, height)
    init_image: Named | None = None  # a path, or "#N[:K]" for experiment N's image K
    strength: Number | None = None
    mask: Named | None = None  # inpainting (runner/masks.py): a path, or "#N[:K]"; white is painted again
    mask_blur: Whole | None = None  # A1111's mask blur (default 4), across and down
    mask_blur_y: Whole | None = None  # down, where it differs (A1111's mask_blur_y)
    mask_invert: Flag | None = None  # paint the black part instead
    mask_fill: Named | None = None  # A1111's masked content: original (default), fill, latent-noise, latent-nothing
    mask_area: Named | None = None  # A1111's inpaint area: whole (default) or masked ("only masked")
    mask_padding: Whole | None = None  # A1111's "only masked padding, pixels" (default 32)
    sampler: Named | None = None  # an A1111 name, or "default" for the model folder's own scheduler
    clip_skip: Whole | None = None  # A1111's Clip skip (1: the text encoder's last layer)
    emphasis: Named | None = None  # A1111's Emphasis mode: Original (its default), No norm, Ignore
    vae: Named | None = None  # A1111's sd_vae: a VAE by its install name, a file or folder; "Automatic"/"None": the model's
    tiling: Flag | None = None  # A1111's Tiling
    variation_seed: Whole | None = None  # A1111's Variation seed …
    variation_strength: Number | None = None  # … and its strength, 0 (the seed's own noise) to 1 (the variation seed's)
    hires: Number | None = None  # A1111's hires fix (Hires upscale), with its steps, strength and upscaler
    hires_steps: Whole | None = None
    hires_strength: Number | None = None
    hires_upscaler: Named | None = None
    sd_upscale: Number | None = None  # A1111's SD upscale (runner/sd_upscale.py), with its overlap and upscaler
    sd_upscale_overlap: Whole | None = None
    sd_upscale_upscaler: Named | None = None
    max_batch: Whole | None = None
    clip: Named | None = None  # a scorer, or "none"
    guided: GuidedSettings | None = None
    animate_every: Whole | None = None
    compile: Flag | None = None  # the speed-ups (runner/speedups.py): None takes the setting
    channels_last: Flag | None = None
    tf32: Flag | None = None
    allow_pickle: Flag = False
    allow_download: Flag = False
    device: Annotated[Named, AfterValidator(_device)] = "auto"  # where the run's batches are made
    preview_every: Whole = 0


#: A pydantic error's type → what the value must be, as a person says it.
WANTED = {"int_type": "a whole number", "float_type": "a number", "string_type": "text", "bool_type": "true or false",
          "list_type": "a list", "dict_type": "a table", "model_type": "a table", "finite_number": "a finite number",
          "model_attributes_type": "a table", "too_long": f"at most {TEXT_MAX} characters",
          "lone_surrogate": "valid Unicode text", "device": "auto, cpu, mps, cuda or cuda:N"}


class Problem(NamedTuple):
    """The first thing wrong with a contract model's values, for each surface to word as its own (a flag, a field)."""

    field: str  # the top-level field at fault
    kind: str  # pydantic's error type: "blank" (an empty name), "finite_number" …
    wanted: str  # what the value must be, as a person says it
    given: Any


def first_problem(exc: ValidationError) -> Problem:
    error = exc.errors()[0]
    return Problem(str(error["loc"][0]) if error["loc"] else "", error["type"],
                   WANTED.get(error["type"], "of another kind"), error.get("input"))
