"""What a grid run is given, checked before any model loads: its options and axes, its models' names, its scorer's
name and its init image. Torch-free, so the service makes these checks when a job is submitted (a job that would
fail them is refused then, never queued) and ``execution.prepare`` makes them again when it runs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from journal import ExperimentNotFound, InvalidInput, Journal
from journal.images import open_image
from journal.text import quoted

from ..errors import RunError, option
from ..compose.networks import networks
from . import embeddings, sd_upscale
from .loras import lora_file
from .model_files import ModelFile
from .models import BUILTIN_CLIPS, GUIDED, check_name, is_guided, scorer_weights
from .options import RunOptions, check_grid, check_options, grid_models
from .vae import VaeFile, find_vae

if TYPE_CHECKING:
    from ..compose.grid import Grid

NO_SCORER = "none"  # the ``clip`` that asks for no scorer


@dataclass(frozen=True)
class Init:
    """A run's init image: its file, as it was given (a path made absolute, or ``#N[:K]``), and the experiment it
    came from."""

    path: Path
    given: str
    parent: int | None
    size: tuple[int, int] | None = None  # its width and height


@dataclass(frozen=True)
class Inputs:
    """What ``check_inputs`` found: the init image, and the files of the LoRAs and embeddings the prompts name, each
    by the name a prompt gives it (what a run records with its hash), and the VAE in place of the model's own."""

    init: Init | None
    loras: dict[str, ModelFile]
    embeddings: dict[str, ModelFile]
    vae: VaeFile | None = None
    mask: Init | None = None  # inpainting's mask, found as an init image is


def check_inputs(grid: Grid, options: RunOptions, journal: Journal | None) -> Inputs:
    """RunError for anything ``grid`` run with ``options`` would refuse before loading a model; what it uses."""
    check_options(options)
    check_grid(grid, options)
    for name in grid_models(grid, options):
        check_name(name, allow_download=options.allow_download)
    loras = check_loras(grid, options)
    used = embeddings.check([text for c in grid.cells for text in (c.prompt, c.negative)], allow_pickle=options.allow_pickle)
    if options.clip not in (None, NO_SCORER, *BUILTIN_CLIPS):
        scorer_weights(options.clip, allow_pickle=options.allow_pickle)
    vae = find_vae(options.vae, allow_pickle=options.allow_pickle) if options.vae else None
    init, mask = resolve_init(journal, options.init_image), resolve_init(journal, options.mask, "mask")
    if init is not None:  # (SD upscale: the image it makes of this one, within the limits)
        sd_upscale.params(options, init.size)
    if init and mask:
        check_mask_image(init, mask, options)
    return Inputs(init, loras, {f.name.rpartition("/")[2]: f for f in used}, vae, mask)


def check_mask_image(init: Init, mask: Init, options: RunOptions) -> None:
    """A mask that cannot paint the init image as asked (``masks.refusal``): RunError naming it."""
    from .masks import refusal
    from .options import area_name

    problem = refusal(open_image(init.path), open_image(mask.path), invert=options.mask_invert,
                      area=area_name(options.mask_area), blur=options.mask_blur, blur_y=options.mask_blur_y)
    if problem:
        raise RunError(f"{option('mask')} {mask.given}: {problem}")


def check_loras(grid: Grid, options: RunOptions) -> dict[str, ModelFile]:
    """The LoRAs the cells' prompts name (``<lora:NAME:STRENGTH>``), each once, by that name: each a safetensors
    file of the installs, for a diffusion model, named in a prompt (a negative prompt's tags: refused, not dropped)."""
    for cell in grid.cells:
        if networks(cell.negative, "the negative prompt"):
            raise RunError("LoRA tags apply from the prompt: take <lora:…> out of the negative prompt")
    names = list(dict.fromkeys(n.name for cell in grid.cells for n in networks(cell.prompt)))
    if names and is_guided(options.model):
        raise RunError(f"LoRAs are for diffusion models; the {GUIDED} backend has no UNet: take the <lora:…> tags out")
    return {name: lora_file(name) for name in names}


def resolve_init(journal: Journal | None, given: str | None, flag: str = "init-image") -> Init | None:
    """The init image ``given`` (a path, or ``#N[:K]``: experiment N's image K), opened within the pixel limit;
    RunError for one that is not there or not an image, naming ``flag`` (the init image's, or inpainting's mask's).
    ``journal`` is None where it does not exist yet."""
    if given is None:
        return None
    if given.startswith("#"):
        number_text, sep, place_text = given[1:].partition(":")
        try:
            number, place = int(number_text), int(place_text) if sep else 1
        except ValueError:
            raise RunError(f"{option(flag)} {quoted(given)}: write #N for experiment N's first image, #N:K "
                           "for its image K, or a file path") from None
        if journal is None:
            raise RunError(f"{option(flag)} {given}: no experiment #{number}; the journal does not exist "
                           "yet, so pass an image file")
        try:
            exp = journal.get(number)
        except ExperimentNotFound as exc:
            raise RunError(f"{option(flag)} {given}: {exc.message}") from None
        if not 1 <= place <= len(exp.images):
            raise RunError(f"{option(flag)} {given}: experiment #{exp.number} has {len(exp.images)} "
                           f"image(s): pick K from 1 to {len(exp.images)} (as `promptism show {exp.number}` lists them)")
        path = journal.image_path(exp, exp.images[place - 1])
        if not path.is_file():
            raise RunError(f"{option(flag)} {given}: experiment #{exp.number}'s image {path} is missing from "
                           "the journal (run `promptism doctor`)")
        init = Init(path, given, exp.number)
    else:
        path = Path(given).expanduser().absolute()
        init = Init(path, str(path), None)
    try:
        image = open_image(path)  # bounded in pixels, like every image promptism opens
    except InvalidInput as exc:
        raise RunError(f"{option(flag)}: {exc.message}") from None
    if min(image.size) < 8:
        raise RunError(f"{option(flag)} {init.given} is {image.width}x{image.height}; it must be at least 8x8")
    return replace(init, size=image.size)
