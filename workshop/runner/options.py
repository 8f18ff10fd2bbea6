"""What a run is asked to do — model, steps, guidance, size, init image, batch size, scorer … —: the one rule that
resolves it from what a surface was given (``resolve``), and the checks on those settings that need no model (so a
dry run and the TUI's composer can make them without loading torch)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from journal.limits import pixel_limit
from journal.text import quoted

from ..contract import GivenOptions, GuidedSettings, RunParams, Spec
from ..settings import Settings
from ..errors import RunError, option, settings_without
from ..samplers import OWN, sampler
from . import hires, sd_upscale
from .models import GUIDED, GUIDED_MAX_STEPS, is_guided
from .speedups import Speedups

if TYPE_CHECKING:
    from ..compose.grid import Grid

DEFAULT_STRENGTH = 0.75
STEPS_MAX = GUIDED_MAX_STEPS  # the most any model takes (a diffusion scheduler's timesteps are fewer)
CLIP_SKIP_MAX = 12  # CLIP ViT-L/14's layers (A1111's slider goes to 12)
VAE_OWN = ("automatic", "none")  # A1111's sd_vae values for the model's own VAE
GUIDANCE_MAX = 100.0  # far above what anyone uses (A1111: 30); 1e300 overflows the pixels to NaN


class RunOptions(BaseModel):
    """A run's options, resolved (``resolve``): every value the run uses, None where the model's own default applies."""

    model_config = ConfigDict(frozen=True)

    model: str = "shapes"
    steps: int | None = None  # default: the model's (see models.BUILTINS)
    guidance: float | None = None  # default: the model's (see models.BUILTINS)
    size: tuple[int, int] | None = None  # default: the model's native size
    init_image: str | None = None  # a path, or "#N[:K]" for experiment N's image K (1-based; default the first)
    strength: float | None = None  # img2img with a diffusion model; default DEFAULT_STRENGTH
    mask: str | None = None  # inpainting (masks.py): a path, or "#N[:K]"; its white is painted again
    mask_blur: int | None = None  # default masks.DEFAULT_BLUR, A1111's 4 (across, and down where mask_blur_y is None)
    mask_blur_y: int | None = None  # down (A1111's mask_blur_y), where it differs
    mask_invert: bool = False
    mask_fill: str | None = None  # masks.FILLS; default "original"
    mask_area: str | None = None  # masks.AREAS; default "whole"
    mask_padding: int | None = None  # with mask_area "masked": default masks.DEFAULT_PADDING
    max_batch: int = 8
    clip: str | None = None  # default: the model's own scorer (shapes-clip for shapes), else none; "none": no scoring
    allow_pickle: bool = False
    allow_download: bool = False
    device: str = "auto"
    preview_every: int = 0
    co2_g_per_kwh: float = 400.0
    guided: GuidedSettings | None = None  # the CLIP-guided backend's settings (default: GuidedSettings())
    animate_every: int = 0  # CLIP-guided: keep every k-th frame as an animation (0: none)
    speedups: Speedups = Speedups()  # compile, channels-last, TF32 (see speedups.py)
    sampler: str | None = None  # an A1111 sampler name (see samplers.py); default: the model folder's scheduler
    clip_skip: int | None = None  # A1111's Clip skip (emphasis_encoder); default 1, the text encoder's last layer
    emphasis_mode: str | None = None  # A1111's Emphasis mode, as emphasis_encoder.EMPHASIS_MODES names it; None: Original
    vae: str | None = None  # A1111's sd_vae (vae.py): a VAE in place of the model's own; None: the model's own
    tiling: bool = False  # A1111's Tiling: every convolution of the UNet and VAE wraps round (seamless textures)
    variation_seed: int | None = None  # A1111's Variation seed: each image's noise slerped toward this seed's …
    variation_strength: float | None = None  # … by this much (0: its own seed's noise, 1: the variation seed's)
    hires: float | None = None  # A1111's hires fix (hires.py): the scale of its second pass; None: no second pass
    hires_steps: int | None = None  # its steps (None or 0: the first pass's)
    hires_strength: float | None = None  # its denoising strength (default hires.DEFAULT_STRENGTH, A1111's 0.7)
    hires_upscaler: str | None = None  # an A1111 upscaler name (hires.UPSCALERS; default Latent)
    sd_upscale: float | None = None  # A1111's SD upscale (sd_upscale.py): the init image's scale; tiles of the size
    sd_upscale_overlap: int | None = None  # the tiles' overlap (default sd_upscale.DEFAULT_OVERLAP, A1111's 64)
    sd_upscale_upscaler: str | None = None  # sd_upscale.UPSCALERS (default Lanczos)


def suggest_size(width: int, height: int) -> str:
    """A valid size near ``width``×``height``: multiples of 8, at least 8, within the pixel limit, the aspect kept."""
    width, height = max(8, width), max(8, height)
    scale = min(1.0, math.sqrt(pixel_limit() / (width * height)))
    w, h = (max(8, int(side * scale) // 8 * 8) for side in (width, height))
    if w * h > pixel_limit():  # a side raised to 8 pushed it over: the other side gives way
        w, h = (max(8, pixel_limit() // h // 8 * 8), h) if w >= h else (w, max(8, pixel_limit() // w // 8 * 8))
    return f"{w}x{h}"


def parse_blur(text: str) -> tuple[int, int | None]:
    """A mask blur: ``N`` (across and down), or ``X,Y`` (across, then down: A1111's mask_blur_x and _y); Y is None
    where it is X."""
    across, sep, down = text.partition(",")
    if not _digits(across) or (sep and not _digits(down)):
        raise RunError(f"mask blur {quoted(text)}: write pixels, N (across and down) or X,Y (across, then down), e.g. 4 "
                       "or 4,8")
    x, y = int(across), int(down) if sep else None
    return x, None if y == x else y


def _digits(text: str) -> bool:
    """Only the digits 0-9 (str.isdigit also takes "²", which int() refuses)."""
    return text.strip().isascii() and text.strip().isdigit()


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (or with ``×``, as promptism itself writes sizes)."""
    width, sep, height = text.lower().replace("×", "x").partition("x")
    if not sep or not _digits(width) or not _digits(height):
        raise RunError(f"size {quoted(text)}: write WIDTHxHEIGHT, e.g. 512x512")
    return int(width), int(height)


def resolve(spec: Spec | None, given: GivenOptions, settings: Settings) -> RunOptions:
    """The run's options, by the one rule every surface uses (the CLI, the TUI, the A1111 routes, an imported
    experiment made again, the service running a job): each option from what was ``given`` (a flag, a field), else
    from the spec's ``model`` and ``[params]``, else from the settings (config.toml), else the model's own default
    (None). Checked as ``check_options`` checks them; RunError for what a run would refuse."""
    params = spec.params if spec is not None else RunParams()
    model = _first(given.model, spec.model if spec is not None else None, settings.model)
    options = RunOptions(
        model=model, steps=_first(given.steps, params.steps), guidance=_first(given.guidance, params.guidance),
        size=given.size if given.size is not None else parse_size(params.size) if params.size is not None else None,
        init_image=_first(given.init_image, params.init_image), strength=_first(given.strength, params.strength),
        mask=_first(given.mask, params.mask), mask_blur=_first(given.mask_blur, params.mask_blur),
        mask_blur_y=_first(given.mask_blur_y, params.mask_blur_y),
        mask_invert=bool(_first(given.mask_invert, params.mask_invert)), mask_fill=_first(given.mask_fill, params.mask_fill),
        mask_area=_first(given.mask_area, params.mask_area), mask_padding=_first(given.mask_padding, params.mask_padding),
        max_batch=_first(given.max_batch, params.max_batch, settings.max_batch),
        clip=_first(given.clip, params.clip, settings.clip),
        sampler=run_sampler(_first(given.sampler, params.sampler), settings.sampler, model),
        clip_skip=_first(given.clip_skip, params.clip_skip),
        emphasis_mode=emphasis_mode(_first(given.emphasis, params.emphasis)),
        vae=own_vae(_first(given.vae, params.vae)), tiling=bool(_first(given.tiling, params.tiling)),
        variation_seed=_first(given.variation_seed, params.variation_seed),
        variation_strength=_first(given.variation_strength, params.variation_strength),
        hires=_first(given.hires, params.hires), hires_steps=_first(given.hires_steps, params.hires_steps),
        hires_strength=_first(given.hires_strength, params.hires_strength),
        hires_upscaler=hires.upscaler(upscaler) if (upscaler := _first(given.hires_upscaler, params.hires_upscaler))
        is not None else None,
        sd_upscale=_first(given.sd_upscale, params.sd_upscale),
        sd_upscale_overlap=_first(given.sd_upscale_overlap, params.sd_upscale_overlap),
        sd_upscale_upscaler=_first(given.sd_upscale_upscaler, params.sd_upscale_upscaler),
        allow_pickle=given.allow_pickle, allow_download=given.allow_download, device=given.device,
        preview_every=given.preview_every, co2_g_per_kwh=settings.co2_g_per_kwh, guided=given.guided,
        animate_every=given.animate_every or 0,
        speedups=Speedups.chosen(settings, compile=given.compile, channels_last=given.channels_last, tf32=given.tf32))
    check_options(options)
    return options


def recorded_run_options(given: GivenOptions) -> RunOptions:
    """The options of a rerun or a resume, which make images with what their experiment or run recorded: of what
    was given, only how to run (the device, whether pickle or a download may load, previews)."""
    return RunOptions(allow_pickle=given.allow_pickle, allow_download=given.allow_download, device=given.device,
                      preview_every=given.preview_every)


def own_vae(name: str | None) -> str | None:
    """The VAE a run swaps in: None for A1111's "Automatic" and "None" (the model's own VAE) or none given."""
    return None if name is None or name.strip().lower() in VAE_OWN else name


def _first(*values):
    """The first value that was given (not None)."""
    return next((v for v in values if v is not None), None)


def run_sampler(given: str | None, setting: str | None, model: str) -> str | None:
    """A run's sampler: the one given (--sampler, else a spec's [params] sampler), else the sampler setting for a
    diffusion model (the CLIP-guided backend does not sample); None — the model folder's own scheduler — where
    neither names one or the name is "default"."""
    chosen = given if given is not None else None if is_guided(model) else setting
    return None if chosen is None or chosen.strip().lower() == OWN else chosen


EMPHASIS_MODES = ("Original", "No norm", "Ignore")  # A1111's Emphasis modes promptism applies (its "None" reads
# brackets as words: escape them instead)


def emphasis_mode(name: str | None) -> str | None:
    """A1111's Emphasis mode by its name, in any case: None for "Original" (its default, what every run has);
    RunError naming the modes."""
    if name is None:
        return None
    found = {mode.lower(): mode for mode in EMPHASIS_MODES}.get(" ".join(name.lower().split()))
    if found is None:
        raise RunError(f"emphasis {quoted(name)}: use one of {', '.join(EMPHASIS_MODES)} (A1111's Emphasis modes; its "
                       "\"None\" reads brackets as words: escape them as \\( \\) instead)")
    return None if found == "Original" else found


def check_mask(options: RunOptions) -> None:
    """Inpainting's settings: a mask with an init image, for a diffusion model; a blur of 0 to 64; a fill A1111 has
    and promptism makes."""
    from .masks import AREAS, BLUR_MAX, FILLS

    if options.mask is None:
        settings_without("inpainting", f"{option('mask')} IMAGE", (
            ("mask-blur", options.mask_blur), ("mask-blur", options.mask_blur_y), ("mask-fill", options.mask_fill),
            ("mask-invert", options.mask_invert or None), ("mask-area", options.mask_area),
            ("mask-padding", options.mask_padding)))
        return
    if options.init_image is None:
        raise RunError(f"{option('mask')} marks what of the init image to paint again: give {option('init-image')}")
    if is_guided(options.model):
        raise RunError(f"{option('mask')} is for diffusion models (inpainting): leave it out")
    for blur in (options.mask_blur, options.mask_blur_y):
        if blur is not None and not 0 <= blur <= BLUR_MAX:
            raise RunError(f"mask blur is 0 to {BLUR_MAX} pixels, not {blur}")
    if options.mask_fill is not None and fill_name(options.mask_fill) not in FILLS:
        raise RunError(f"mask fill {quoted(options.mask_fill)}: use {', '.join(FILLS[:-1])} or {FILLS[-1]} (A1111's "
                       "masked content)")
    if options.mask_area is not None and area_name(options.mask_area) not in AREAS:
        raise RunError(f"mask area {quoted(options.mask_area)}: use whole (the whole picture) or masked (A1111's "
                       "\"only masked\")")
    if options.mask_padding is not None:
        if area_name(options.mask_area) != "masked":
            raise RunError(f"{option('mask-padding')} widens the area that {option('mask-area')} masked paints: give "
                           "that too, or leave it out")
        if options.mask_padding < 0:
            raise RunError(f"mask padding is a number of pixels, 0 or more, not {options.mask_padding}")


def fill_name(given: str) -> str:
    """A mask fill as given (``latent noise``, ``Latent-Noise``) by its name in ``masks.FILLS``."""
    return "-".join(given.strip().lower().split())


def area_name(given: str | None) -> str:
    """A mask area as given (None: the whole picture) by its name in ``masks.AREAS``."""
    return "whole" if given is None else given.strip().lower()


def check_options(options: RunOptions) -> None:
    if options.sampler is not None:
        sampler(options.sampler)
        if is_guided(options.model):
            raise RunError(f"{option('sampler')} is for diffusion models; the {options.model.partition(':')[0]} "
                           f"backend optimises, it does not sample: leave out {option('sampler')}")
    if options.clip_skip is not None and not 1 <= options.clip_skip <= CLIP_SKIP_MAX:
        raise RunError(f"clip skip counts the text encoder's layers from the end: 1 (the last) to {CLIP_SKIP_MAX}, not "
                       f"{options.clip_skip}")
    if options.emphasis_mode is not None and is_guided(options.model):
        raise RunError(f"{option('emphasis')} is A1111's, for diffusion models' text encoders: leave it out")
    if options.clip_skip not in (None, 1) and is_guided(options.model):
        raise RunError(f"{option('clip-skip')} is for diffusion models' text encoders: leave it out")
    check_a1111_extras(options)
    if options.steps is not None and options.steps < 1:
        raise RunError(f"steps must be 1 or more, not {options.steps}")
    if options.steps is not None and options.steps > STEPS_MAX:  # (each model's own limit is checked once it loads)
        raise RunError(f"steps must be at most {STEPS_MAX:,} (no model takes more), not {options.steps}")
    if options.size is not None:
        w, h = options.size
        if w < 8 or h < 8:
            raise RunError(f"size {w}x{h}: width and height must be at least 8, e.g. {suggest_size(max(w, 8), max(h, 8))}")
        if w % 8 or h % 8:
            raise RunError(f"size {w}x{h} is not a multiple of 8: use e.g. {suggest_size(w, h)}")
        if w * h > pixel_limit():
            raise RunError(f"size {w}x{h} is {w * h:,} pixels, over the limit of {pixel_limit():,} (max_image_pixels in "
                           f"config.toml): use e.g. {suggest_size(w, h)}")
    if options.guidance is not None and not (math.isfinite(options.guidance) and 0 <= options.guidance <= GUIDANCE_MAX):
        raise RunError(f"guidance must be a number from 0 to {GUIDANCE_MAX:g}, not {options.guidance:g} (A1111 offers "
                       "up to 30; far above, the pixels overflow)")
    if options.strength is not None and not 0 < options.strength <= 1:
        raise RunError(f"strength must be above 0 and at most 1, not {options.strength}")
    check_mask(options)
    if options.strength is not None and options.init_image is None and not is_guided(options.model):  # (it has none)
        raise RunError(f"{option('strength')} goes with {option('init-image')}: give an init "
                       "image, or leave out the strength")
    if options.max_batch < 1:
        raise RunError(f"the batch size ({option('max-batch')}) must be 1 or more, not {options.max_batch}")
    if options.preview_every < 0:
        raise RunError(f"previews come every N steps, N 1 or more (0: none), not {options.preview_every}")
    if options.animate_every < 0:
        raise RunError(f"{option('animate')} takes a number of steps between frames, 1 or more, not "
                       f"{options.animate_every}")
    hires.check(options)
    sd_upscale.check(options)
    if options.hires_steps is not None and options.hires_steps > STEPS_MAX:
        raise RunError(f"hires steps must be at most {STEPS_MAX:,}, not {options.hires_steps}")
    if options.guided:
        check_guided(options.guided)
    if is_guided(options.model) and (options.speedups.compile or options.speedups.channels_last):
        raise RunError(f"{option('compile')} and {option('channels-last')} are for diffusion models; the {GUIDED} "
                       f"backend has no UNet to speed up: leave them out ({option('no-compile')} / "
                       f"{option('no-channels-last')} where config.toml turns them on)")


def check_a1111_extras(options: RunOptions) -> None:
    """A1111's VAE, Tiling and Variation seed: for diffusion models; a variation seed with its strength, 0 to 1, from
    noise (an init image's run starts from the image: the pipeline draws its noise itself)."""
    from ..compose.grid import SEED_MAX

    seed, strength = options.variation_seed, options.variation_strength
    if (seed is None) != (strength is None):
        given, wanted = (option("variation-seed"), option("variation-strength")) if strength is None else \
            (option("variation-strength"), option("variation-seed"))
        raise RunError(f"{given} goes with {wanted} (A1111's Variation seed and its strength): give both, or neither")
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise RunError(f"the variation seed must be between 0 and {SEED_MAX}, not {seed}")
    if strength is not None and not (math.isfinite(strength) and 0 <= strength <= 1):
        raise RunError(f"the variation strength must be a number from 0 (the seed's own noise) to 1 (the variation "
                       f"seed's), not {strength:g}")
    if seed is not None and options.init_image is not None:
        raise RunError(f"{option('variation-seed')} shapes the noise a run starts from; with {option('init-image')} "
                       "it starts from the image (its noise is drawn inside the pipeline): leave out one of them")
    if options.tiling and options.speedups.compile:
        raise RunError(f"{option('tiling')} switches the UNet's convolutions to wrap round, which a compiled UNet has "
                       f"fixed: leave out {option('compile')} (or pass {option('no-compile')})")
    if is_guided(options.model):
        used = [name for name, on in (("vae", options.vae), ("tiling", options.tiling), ("variation-seed", seed is not None)) if on]
        if used:
            raise RunError(f"{option(used[0])} is for diffusion models; the {GUIDED} backend has its own decoder: leave "
                           "it out")


def check_guided(settings: GuidedSettings) -> None:
    if not settings.lr > 0:
        raise RunError(f"the learning rate must be above 0, not {settings.lr}")
    if settings.cutouts < 1:
        raise RunError(f"cutouts must be 1 or more, not {settings.cutouts}")
    for name in ("tv", "latent"):
        if not getattr(settings, name) >= 0:
            raise RunError(f"the {name} weight must be 0 or more, not {getattr(settings, name)}")


def grid_models(grid: Grid, options: RunOptions) -> list[str]:
    """The models a run of ``grid`` uses, the run's own first: a model axis's, else ``options.model``."""
    return list(dict.fromkeys(c.params["model"] for c in grid.cells if "model" in c.params)) or [options.model]


def check_grid(grid: Grid, options: RunOptions) -> None:
    """The settings ``grid``'s axes give its cells, checked as ``check_options`` checks the run's (no model loaded):
    sampler names, sizes within the pixel limit, a strength axis with an init image, diffusion models only where
    the CLIP-guided backend has no such setting."""
    params = {key: list(dict.fromkeys(c.params[key] for c in grid.cells if key in c.params))
              for key in ("sampler", "model", "strength")}
    models = grid_models(grid, options)
    if params["model"] and (guided := next((m for m in models if is_guided(m)), None)):
        raise RunError(f"the model axis takes diffusion models; {guided.partition(':')[0]} is the CLIP-guided backend: "
                       "take it out of the axis")
    for name in params["sampler"]:
        sampler(name)
    if is_guided(models[0]) and (key := next((k for k in ("sampler", "strength") if params[k]), None)):
        raise RunError(f"a {key} axis is for diffusion models; the {GUIDED} backend has no {key}: take the axis out")
    if params["strength"] and options.init_image is None:
        raise RunError(f"a strength axis goes with {option('init-image')} (img2img): give an init image, or take the "
                       "axis out")
    for w, h in dict.fromkeys((c.params["width"], c.params["height"]) for c in grid.cells if "width" in c.params):
        if w * h > pixel_limit():
            raise RunError(f"size {w}x{h} is {w * h:,} pixels, over the limit of {pixel_limit():,} (max_image_pixels in "
                           f"config.toml): use e.g. {suggest_size(w, h)}")
        if options.hires is not None:  # a size axis's, at the hires size
            hires.check_size(w, h, options.hires)
        if options.sd_upscale is not None:  # (a size axis's: the tiles')
            sd_upscale.check_tile(w, h, sd_upscale.overlap_of(options))
