"""Backends: the two ways a model makes images — a diffusers pipeline run by ``Engine``, or the CLIP-guided optimiser
run by ``GuidedEngine`` — behind one small protocol, so a run never asks which one it has. ``resolve`` turns any
model name into its source, ``load`` gives its backend (kept warm by ``models``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol

from journal import ModelInfo

from ..compose.editing import edited, in_second_pass
from ..compose.emphasis import has_emphasis
from ..compose.networks import networks
from ..compose.grid import Grid
from ..contract import GuidedSettings
from ..errors import RunError, option
from ..samplers import sampler
from . import hires
from .sd_upscale import SdUpscale
from .emphasis_encoder import SUPPORTED, family
from .engine import Engine
from .guided import GuidedPipeline, load_guided, parse_spec, prompt_parts, resolve_guided
from .guided_engine import GuidedEngine
from .loras import activate
from .models import A1111, GUIDED, GUIDED_MAX_STEPS, ModelSource, is_guided, load_pipeline, warm
from .models import resolve as resolve_pipeline
from .options import RunOptions
from .records import ParamsRecord
from .samplers import make_scheduler
from .speedups import Speedups, check_device
from .vae import VaeFile, find_vae, load_vae, recorded_vae, with_vae


class Backend(Protocol):
    source: ModelSource
    guided: bool  # the CLIP-guided backend: no guidance scale, no strength, its own settings

    def native_size(self) -> int:
        """The side of the images it makes unless told otherwise."""

    def max_steps(self) -> tuple[int | None, str]:
        """The most steps it can take, and what says so (for the refusal)."""

    def model_info(self) -> ModelInfo:
        """What is credited: a local folder by its name (its full path stays in the private records)."""

    def params(self, options: RunOptions) -> dict:
        """Its own run parameters, flat as the journal keeps them."""

    def check(self, grid: Grid, options: RunOptions) -> None:
        """Whatever a run of ``grid`` would trip on later, refused now (RunError)."""

    def make_engine(self, params: ParamsRecord, *, on_event: Callable, cancel: Callable[[], bool],
                    preview_every: int = 0, models: Callable[[str | None], "Backend"] | None = None) -> Engine:
        """The engine that runs it, with the settings a run recorded in ``params``; ``models`` gives the backend of a
        job's model (a model axis's; None: this one's)."""


class DiffusersBackend:
    guided = False

    def __init__(self, source: ModelSource, pipe):
        self.source = source
        self.pipe = pipe
        self._pipes = {None: pipe}  # by sampler name: made once per backend, so once per run

    def native_size(self) -> int:
        denoiser = getattr(self.pipe, "unet", None)  # (not `or`: a compiled module has no truth value)
        denoiser = self.pipe.transformer if denoiser is None else denoiser  # (SD3, Flux: a transformer)
        return denoiser.config.sample_size * self.pipe.vae_scale_factor

    def max_steps(self) -> tuple[int | None, str]:
        """A scheduler's training timesteps (diffusers refuses more only once the run has begun)."""
        most = getattr(getattr(self.pipe.scheduler, "config", None), "num_train_timesteps", None)
        return (most if isinstance(most, int) else None), f"{self.source.id} (its scheduler has {most} timesteps)"

    def model_info(self) -> ModelInfo:
        from .model_files import short_hash

        hashed = short_hash(self.source.path) if self.source.kind == "file" else None  # A1111's `Model hash`
        without = " (without T5)" if self._without_t5 else ""
        return ModelInfo(id=self.source.credit, revision=self.source.revision, hash=hashed,
                         pipeline=type(self.pipe).__name__ + without, scheduler=type(self.pipe.scheduler).__name__)

    @property
    def _without_t5(self) -> bool:
        """An SD 3 loaded without its T5 text encoder (a single file without it: ``single_file``)."""
        return type(self.pipe).__name__.startswith("StableDiffusion3") and self.pipe.text_encoder_3 is None

    @property
    def note(self) -> str | None:
        """What a run of it says before it starts (``events.Note``), where there is something to say."""
        if self._without_t5:
            return (f"{self.source.credit} has no T5 text encoder: its prompts are read by its two CLIPs alone (a "
                    "file with T5, such as sd3_medium_incl_clips_t5xxlfp16, reads them with T5 too)")
        return None

    def params(self, options: RunOptions) -> dict:
        encoding = {"emphasis": self.source.emphasis} if family(self.pipe) is not None else {}
        if options.clip_skip not in (None, 1):
            encoding["clip_skip"] = options.clip_skip
        if options.emphasis_mode is not None:
            encoding["emphasis_mode"] = options.emphasis_mode
        encoding |= hires.params(options)
        if options.sampler is None:
            return {"scheduler": type(self.pipe.scheduler).__name__, **encoding, **options.speedups.params()}
        chosen = sampler(options.sampler)
        self.pipeline(chosen.name)  # refused now if the model cannot take it (and made once, for the run)
        return {"scheduler": chosen.scheduler, "sampler": chosen.name, **encoding, **options.speedups.params()}

    def check(self, grid: Grid, options: RunOptions) -> None:
        """Weights only where compel can apply them; each sampler of a sampler axis one this model's scheduler config
        can take."""
        if family(self.pipe) is None:
            refuse_emphasis(grid, f"{self.source.id} is a {type(self.pipe).__name__}")
        elif self.source.emphasis != A1111 and any(edited(c.prompt) or edited(c.negative) for c in grid.cells):
            raise RunError(f"prompt editing ([from:to:when], [a|b]) is for the models promptism encodes A1111's way "
                           f"({SUPPORTED}); {self.source.credit} is encoded with compel: write the words it should draw")
        if not hasattr(self.pipe, "load_lora_weights") and any(networks(c.prompt) for c in grid.cells):
            raise RunError(f"{self.source.credit} is a {type(self.pipe).__name__}, which takes no LoRA: take the "
                           "<lora:…> tags out")
        if type(self.pipe).__name__.endswith("Img2ImgPipeline") and options.init_image is None:  # (the SDXL refiner)
            raise RunError(f"{self.source.credit} refines an image rather than making one (an SDXL refiner): give "
                           f"{option('init-image')} (a file, or #N for an experiment's image) and a low "
                           f"{option('strength')}, e.g. 0.3")
        if hasattr(self.pipe, "get_list_adapters"):  # each LoRA loaded now: one that does not fit is said before a run
            for wanted in dict.fromkeys(networks(c.prompt) for c in grid.cells if "model" not in c.params):
                activate(self.pipe, wanted)
        if options.clip_skip not in (None, 1):
            check_clip_skip(self, options.clip_skip)
        if options.emphasis_mode is not None and (family(self.pipe) is None or self.source.emphasis != A1111):
            raise RunError(f"emphasis {options.emphasis_mode!r} is A1111's, for the models promptism encodes its way "
                           f"({SUPPORTED}); {self.source.credit} is not one: leave {option('emphasis')} out")
        check_a1111_extras(self, options)
        for cell in grid.cells if options.hires is None else ():
            for what, text in (("the prompt", cell.prompt), ("the negative prompt", cell.negative)):
                if (at := in_second_pass(text)) is not None:
                    raise RunError(f"{what}: the edit at character {at + 1} switches past 1, in a hires fix's second "
                                   f"pass as A1111 reads it, and this run makes none: give {option('hires')}, or a "
                                   "fraction of 0 to 1")
        if options.hires is not None:
            size = options.size or (self.native_size(),) * 2
            hires.check_model(options, family(self.pipe), self.source.credit,
                              [(c.params.get("width", size[0]), c.params.get("height", size[1])) for c in grid.cells],
                              [c.params.get("steps", options.steps or self.source.steps) for c in grid.cells],
                              self.max_steps()[0])
        for name in dict.fromkeys(c.params["sampler"] for c in grid.cells if "sampler" in c.params):
            self.pipeline(name)
        for name, steps in dict.fromkeys((c.params.get("sampler", options.sampler), c.params.get("steps", options.steps))
                                         for c in grid.cells):
            if steps is not None and steps < PRK_STEPS and _warms_up(self.pipeline(name).scheduler):
                raise RunError(f"{'the sampler ' + repr(name) if name else 'this model’s own scheduler'} (PNDM with its "
                               f"Runge-Kutta warm-up, as this model's scheduler config has it) needs {PRK_STEPS} steps "
                               f"or more, not {steps}: give {option('steps')} {PRK_STEPS} or more, or another sampler")

    def pipeline(self, name: str | None, vae: VaeFile | None = None, *, channels_last: bool = False):
        """The warm pipeline with the sampler ``name`` (None: its own scheduler) and ``vae`` (None: its own): a
        shallow copy of it with that sampler's scheduler and that VAE (diffusers registers them on the copy alone:
        the warm pipeline, shared between runs, keeps its own), made once."""
        if vae is not None:
            key = (name, str(vae.path), channels_last)
            if key not in self._pipes:
                self._pipes[key] = with_vae(self.pipeline(name), load_vae(vae, self.pipe, channels_last=channels_last))
            return self._pipes[key]
        if name not in self._pipes:
            pipe = copy.copy(self.pipe)
            pipe.scheduler = make_scheduler(sampler(name), self.pipe.scheduler.config,
                                            sdxl=hasattr(self.pipe, "text_encoder_2"))  # (A1111's is_sdxl)
            self._pipes[name] = pipe
        return self._pipes[name]

    def make_engine(self, params: ParamsRecord, *, on_event, cancel, preview_every: int = 0, models=None) -> Engine:
        """The engine: each batch on its model's pipeline with its sampler — the cell's, else the run's, else the
        model's own."""
        model_of = models or (lambda name: self)
        vae = recorded_vae(params.vae, "the run") if params.vae else None
        fast = bool(params.channels_last)
        variation = None if params.variation_seed is None else (params.variation_seed, params.variation_strength or 0.0)
        return Engine(self.pipeline(params.sampler, vae, channels_last=fast), on_event=on_event, cancel=cancel,
                      preview_every=preview_every,
                      pick=lambda job: model_of(job.model).pipeline(job.sampler or params.sampler, vae, channels_last=fast),
                      emphasis=params.emphasis, clip_skip=params.clip_skip or 1, emphasis_mode=params.emphasis_mode,
                      tiling=bool(params.tiling), variation=variation, hires=hires.Hires.of(params),
                      sd_upscale=SdUpscale.of(params))


PRK_STEPS = 4  # PNDM's fewest steps when it warms up with Runge-Kutta steps (below: a broadcast error mid-run)


def _warms_up(scheduler) -> bool:
    """A model's own PNDM scheduler configured to start with Runge-Kutta steps (SD 1.5's config skips them; the
    sampler PLMS always does, as A1111's)."""
    return type(scheduler).__name__ == "PNDMScheduler" and not scheduler.config.get("skip_prk_steps", False)


class GuidedBackend:
    guided = True

    def __init__(self, source: ModelSource, pipe: GuidedPipeline):
        self.source = source
        self.pipe = pipe

    def native_size(self) -> int:
        return self.pipe.native_size

    def max_steps(self) -> tuple[int | None, str]:
        return GUIDED_MAX_STEPS, f"the {GUIDED} backend"

    def model_info(self) -> ModelInfo:
        return ModelInfo(id=self.pipe.spec.credit, pipeline=f"{type(self.pipe).__name__} ({type(self.pipe.decoder.model).__name__})")

    def params(self, options: RunOptions) -> dict:
        """Beside steps, size, seeds and init image: the decoder and CLIPs by their short names (a local path stays in
        the private grid record only) and the optimiser's settings."""
        credit = parse_spec(self.pipe.spec.credit)
        return {"backend": GUIDED, "decoder": credit.decoder, "decoder_class": type(self.pipe.decoder.model).__name__,
                "clips": list(credit.clips), **(options.guided or GuidedSettings()).model_dump(),
                "animate_every": options.animate_every, **options.speedups.params()}

    def check(self, grid: Grid, options: RunOptions) -> None:
        refuse_emphasis(grid, f"the {GUIDED} backend weighs prompts its own way, \"a|b:0.5\"")
        for cell in grid.cells:
            prompt_parts(cell.prompt, cell.negative)
            if "guidance" in cell.params:
                raise RunError(f"the {GUIDED} backend has no guidance scale: take the guidance axis out of the grid")
        if options.guided and not options.guided.quantize and self.pipe.decoder.kind != "vq":
            raise RunError(f"{option('no-quantize')} is for VQGAN (VQModel) decoders; {self.pipe.spec.decoder} is an "
                           "AutoencoderKL")
        factor = self.pipe.decoder.factor
        sizes = [options.size] if options.size else []
        sizes += [(c.params["width"], c.params["height"]) for c in grid.cells if "width" in c.params]  # a size axis's
        for w, h in sizes:
            if w % factor or h % factor:
                raise RunError(f"size {w}x{h}: this decoder needs multiples of {factor}")

    def make_engine(self, params: ParamsRecord, *, on_event, cancel, preview_every: int = 0, models=None) -> Engine:
        values = params.dump()
        settings = GuidedSettings(**{k: values[k] for k in GuidedSettings.model_fields if k in values})
        return GuidedEngine(self.pipe, settings, animate_every=values.get("animate_every", 0), on_event=on_event,
                            cancel=cancel, preview_every=preview_every)


def check_clip_skip(backend: DiffusersBackend, clip_skip: int) -> None:
    """Clip skip where A1111 applies it: a Stable Diffusion 1.x/2.x model (one CLIP; A1111 leaves SDXL's alone)
    encoded A1111's way, and fewer layers skipped than its text encoder has."""
    pipe, name = backend.pipe, backend.source.id
    if family(pipe) != "sd" or backend.source.emphasis != A1111:
        why = ("A1111 leaves SDXL's encoders as they are" if family(pipe) == "sdxl" else
               f"{name} is encoded with compel" if family(pipe) == "sd" else f"{name} is a {type(pipe).__name__}")
        raise RunError(f"{option('clip-skip')} is for Stable Diffusion 1.x/2.x models; {why}: leave it out")
    layers = pipe.text_encoder.config.num_hidden_layers
    if clip_skip > layers:
        raise RunError(f"clip skip {clip_skip}: {name}'s text encoder has {layers} layers, so 1 to {layers}")


def check_a1111_extras(backend: DiffusersBackend, options: RunOptions) -> None:
    """A1111's VAE, Tiling and Variation seed where this model takes them: a Stable Diffusion (1.x/2.x, SDXL)
    pipeline's UNet and AutoencoderKL, its starting noise drawn as its own ``prepare_latents`` draws it; the VAE
    loaded now (and kept warm), so weights that do not fit are refused before the run."""
    pipe, name = backend.pipe, backend.source.credit
    kind = type(pipe).__name__
    if options.variation_seed is not None and family(pipe) is None:
        raise RunError(f"{option('variation-seed')} is for Stable Diffusion 1.x/2.x and SDXL models; {name} is a {kind}: "
                       "leave it out")
    if options.tiling and getattr(pipe, "unet", None) is None:
        raise RunError(f"{option('tiling')} wraps a UNet's convolutions round; {name} is a {kind}, which has none: leave "
                       "it out")
    if options.vae:
        if type(getattr(pipe, "vae", None)).__name__ != "AutoencoderKL":
            raise RunError(f"{option('vae')} swaps an AutoencoderKL; {name} is a {kind} with "
                           f"{type(getattr(pipe, 'vae', None)).__name__}: leave it out")
        load_vae(find_vae(options.vae, allow_pickle=options.allow_pickle), pipe,
                 channels_last=options.speedups.channels_last)


def refuse_emphasis(grid: Grid, why: str) -> None:
    """RunError if a cell's prompt or negative uses A1111's emphasis syntax, which only models compel encodes take."""
    if any(has_emphasis(c.prompt) or has_emphasis(c.negative) for c in grid.cells):
        raise RunError(f"prompt weights and editing ((text:1.3), [text], BREAK, [from:to:when]) work with {SUPPORTED} "
                       f"models only; {why}: take the brackets and weights out of the prompt")


def resolve(name: str, *, allow_download: bool = False) -> ModelSource:
    """The source of any model name: a CLIP-guided one's decoder folder, or a diffusers pipeline's folder."""
    if is_guided(name):
        return resolve_guided(name, allow_download=allow_download)
    return resolve_pipeline(name, allow_download=allow_download)


def load(source: ModelSource, device, *, allow_pickle: bool = False, speedups: Speedups = Speedups()) -> Backend:
    """The backend for ``source`` on ``device`` with ``speedups`` (the CLIP-guided backend takes TF32 only), its model
    kept warm between runs."""
    check_device(speedups, device)
    if source.kind != "guided":
        return DiffusersBackend(source, load_pipeline(source, device, allow_pickle=allow_pickle, speedups=speedups))
    spec = parse_spec(source.id)
    pipe = warm(("guided", source.id, str(source.path), str(device), allow_pickle), f"{spec.credit} on {device}", device,
                lambda: load_guided(spec, device, folder=source.path, allow_pickle=allow_pickle))
    return GuidedBackend(source, pipe)
