"""Making an imported experiment's images again: the grid job its recorded settings describe — the prompt as it was
written (weights and all), the negative prompt, each image's seed, steps, guidance, size and sampler, A1111's Clip
skip and hires fix — on the model it names where that model is here, else on one given. The originals came from another tool, so what promptism makes
is a new run, never compared byte for byte with them. Torch-free: ``promptism rerun`` builds the job before any
service starts, and refuses here, in one line, what cannot be made again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from journal import Experiment
from journal.text import quoted

from ..compose.errors import SpecError
from ..compose.networks import networks
from ..compose.prompt import clean
from ..settings import Settings
from ..errors import RunError, option
from ..contract import GivenOptions, Spec
from ..samplers import SAMPLERS, SamplerRefused, sampler
from . import embeddings, hires
from .loras import lora_file
from .model_files import addnet_hash, find_all, hashes, same_file, short_hash
from .models import A1111, family_hint, installed_checkpoint, resolve as resolve_model
from .options import VAE_OWN, emphasis_mode, resolve
from .vae import install_name


@dataclass(frozen=True)
class Remake:
    """The grid job that makes an imported experiment again, and what of its record it leaves out."""

    spec: Spec
    options: GivenOptions  # the recorded settings, given as a flag gives them (the settings decide the rest)
    left_out: list[str]  # recorded settings promptism cannot apply, said to the user (``rerun --strict``: refused)
    notes: list[str] = field(default_factory=list)  # what is made as the other tool made it, said (a size rounded
    # down, an image's seed twice)


def is_imported(exp: Experiment) -> bool:
    """Whether ``exp`` came from ``promptism import`` (made by another tool): it has no cells and batches of a run."""
    return exp.grid is None or not exp.grid.rerunnable


def remake(exp: Experiment, settings: Settings, *, model: str | None = None, sampler_name: str | None = None) -> Remake:
    """The job that makes ``exp``'s images again, with ``model`` / ``sampler_name`` over those it names (the
    settings' defaults where it names none, as for any run: ``options.resolve``). RunError for what cannot be made
    again: an image without a seed, images of different prompts, no prompt, a model that is not here, a sampler
    promptism lacks."""
    n = exp.number
    seeds: list[int] = []
    left_out, notes = [], []
    for place, image in enumerate(exp.images, 1):
        if image.seed is None:
            raise RunError(f"#{n}'s image {place} has no seed recorded, so it cannot be made again (import it with "
                           f"{option('seed', 'N')})")
        if image.seed in seeds:
            if "variation_seed" in exp.params:  # A1111 varied it with the next variation seed: that is left out
                left_out.append(f"image {place} (seed {image.seed} again: A1111 varied it with another variation "
                                "seed; a run has one)")
            else:
                notes.append(f"image {place} (seed {image.seed} again: the same image)")
        else:
            seeds.append(image.seed)
    if len({image.prompt for image in exp.images if image.prompt is not None}) > 1:
        raise RunError(f"#{n}'s images have different prompts; one run makes one prompt's images: import each "
                       "prompt's images as an experiment of its own")
    if not clean(exp.prompt):
        raise RunError(f"#{n} has no prompt recorded, so it cannot be made again (import it with "
                       f"{option('prompt', 'TEXT')})")
    name = model or exp.model.id
    try:
        resolve_model(name)
    except RunError:
        if model:
            raise
        if exp.model.hash and installed_checkpoint(exp.model.hash) is not None:  # A1111's hash: a file named otherwise
            name = exp.model.hash
        else:
            raise RunError(f"#{n} was made with {quoted(name)}, which is not here: pass {option('model', 'NAME')} "
                           "(`promptism models` lists those that are)") from None
    params = exp.params
    recorded = params.get("sampler")
    if sampler_name is None and isinstance(recorded, str):
        try:
            sampler(recorded)
        except SamplerRefused as exc:
            why = f" ({exc.reason})" if exc.reason else ""
            raise RunError(f"#{n} was made with the sampler {quoted(recorded)}, which promptism does not have{why}: "
                           f"pass {option('sampler', 'NAME')} ({', '.join(SAMPLERS)}, alone or with a schedule type)"
                           ) from None
    clip_skip = _number(params.get("clip_skip"), int)
    if clip_skip is not None and clip_skip > 1:  # A1111 applies it to SD 1.x/2.x; it leaves SDXL's encoders alone
        source = resolve_model(name)
        if family_hint(source) == "sdxl" or source.emphasis != A1111:
            why = "which A1111 applies to SD 1.x/2.x only" if family_hint(source) == "sdxl" else \
                f"which {source.credit} does not take"
            left_out.append(f"Clip skip {clip_skip} ({why})")
            clip_skip = None
    mode = params.get("emphasis_mode") if isinstance(params.get("emphasis_mode"), str) else None
    try:
        mode = emphasis_mode(mode)
    except RunError:
        left_out.append(f"Emphasis {quoted(mode)} (an A1111 mode promptism does not apply: Original is used)")
        mode = None
    if mode is not None and resolve_model(name).emphasis != A1111:
        left_out.append(f"Emphasis {mode} (which {resolve_model(name).credit} does not take: its own weighing is used)")
        mode = None
    width, height = params.get("width"), params.get("height")
    if isinstance(width, int) and isinstance(height, int) and (width % 8 or height % 8) and min(width, height) >= 8:
        notes.append(f"size {width}x{height} as asked: A1111 made it {width // 8 * 8}x{height // 8 * 8} (its "
                     "latents are an eighth of the size, rounded down), and so does promptism")
        width, height = width // 8 * 8, height // 8 * 8
    asked = (params.get("width"), params.get("height"))  # (A1111's hires size comes from the size as asked)
    hires_given = _hires(params, asked, (width, height), name, left_out, notes)
    upscaled = {k: params[f"sd_upscale_{k}"] for k in ("overlap", "upscaler") if params.get(f"sd_upscale_{k}") is not None}
    if upscaled:  # (A1111's SD upscale made tiles of an init image: neither it nor the scale is recorded)
        said = ", ".join(f"{k} {v}" for k, v in upscaled.items())
        strength = f", denoising strength {params['strength']:g}" if params.get("strength") is not None else ""
        left_out.append(f"A1111's SD upscale ({said}{strength}: it made the image as tiles of an upscaled init image, "
                        "which no import records)")
    elif hires_given is None and params.get("strength") is not None:
        left_out.append(f"denoising strength {params['strength']:g} (no init image is recorded)")
    if any(key.startswith("mask_") for key in params):  # A1111's inpainting (journal/metadata.py's _a1111_mask): its image and mask are not
        left_out.append(f"inpainting ({_inpainting(params)}): no init image or mask is recorded")
    if isinstance(names := params.get("not_applied"), list) and names:  # A1111 settings, extensions' fields
        shown = ", ".join(map(str, names[:8])) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        left_out.append(f"{shown} (A1111 settings or extensions' fields promptism does not apply)")
    left_out += _loras_left_out(exp.prompt, _recorded(params.get("loras")))
    left_out += _embeddings_left_out([exp.prompt, exp.negative_prompt], _recorded(params.get("embeddings")))
    used = sampler_name if sampler_name is not None else recorded if isinstance(recorded, str) else None
    ensd = _number(params.get("ensd"), int)
    if ensd and used is not None and _ancestral(used):
        left_out.append(f"ENSD {ensd} (A1111 draws the noise {used} adds at each step from the seed + {ensd}; promptism "
                        "draws it from the seed)")
    vae = _vae(params, settings, left_out)
    variation_seed, variation_strength = _number(params.get("variation_seed"), int), _number(params.get("variation_strength"), float)
    if variation_seed is None or variation_strength is None:
        variation_seed = variation_strength = None
    elif hires_given:  # (A1111 varies both passes' noise; promptism's img2img pass draws its own from the seed)
        left_out.append(f"Variation seed {variation_seed} (strength {variation_strength:g}) with the hires fix: promptism "
                        "varies no second pass's noise, so neither pass is varied")
        variation_seed = variation_strength = None
    given = GivenOptions(
        model=name, steps=_number(params.get("steps"), int), guidance=_number(params.get("guidance"), float),
        size=(width, height) if isinstance(width, int) and isinstance(height, int) else None,
        sampler=sampler_name if sampler_name is not None else recorded if isinstance(recorded, str) else None,
        clip_skip=clip_skip if clip_skip is not None and clip_skip > 1 else None, emphasis=mode, vae=vae,
        tiling=True if params.get("tiling") is True else None, variation_seed=variation_seed,
        variation_strength=variation_strength, **(hires_given or {}))
    spec = Spec(prompt=exp.prompt, negative=exp.negative_prompt, seeds=seeds, max_cells=len(seeds))
    resolve(spec, given, settings)  # refused now what the run would refuse
    return Remake(spec, given, left_out, notes)


def _inpainting(params: dict) -> str:
    """An imported image's inpainting settings, as A1111 names them."""
    said = [f"Mask blur {params['mask_blur']}" if isinstance(params.get("mask_blur"), int) else None,
            "Inpaint not masked" if params.get("mask_invert") is True else None,
            "Only masked" if params.get("mask_area") == "masked" else "Whole picture",
            f"padding {params['mask_padding']}" if isinstance(params.get("mask_padding"), int) else None,
            f"Masked content {params['mask_fill'].replace('-', ' ')}" if isinstance(params.get("mask_fill"), str) else None]
    return ", ".join(s for s in said if s)


def _vae(params: dict, settings: Settings, left_out: list[str]) -> str | None:
    """The VAE an A1111 infotext names (``VAE``, ``VAE hash``) as a run takes it: the installs' file of that name,
    else of that hash; where none is here (or only a pickle, which rerun does not load), a line in ``left_out`` and
    the model's own VAE."""
    name, wanted = params.get("vae"), params.get("vae_hash")
    name, wanted = (name if isinstance(name, str) and name.strip() else None), (wanted if isinstance(wanted, str) else None)
    if name is None and wanted is None or (name or "").strip().lower() in VAE_OWN:
        return None
    said = f"VAE {name or 'of hash ' + wanted}" + (f" (hash {wanted})" if name and wanted else "")
    by_name = find_all(settings, "vae", name) if name else []
    by_hash = ([f for f in by_name if hashes(f.path)[0].startswith(wanted.lower())] or find_all(settings, "vae", wanted)
               if wanted else [])
    if len(by_hash) == 1:
        found = by_hash[0]
    elif len(by_name) == 1:
        found = by_name[0]
        if wanted:
            left_out.append(f"{said}: the file of that name here is another one (hash {short_hash(found.path)}); it is used")
    else:
        where = f"{len(by_name)} files have that name" if by_name else "no such file in the installs' VAE folders"
        left_out.append(f"{said}: {where} (models/VAE of the a1111 / comfyui installs config.toml names), so the "
                        "model's own VAE is used")
        return None
    if found.pickled:
        left_out.append(f"{said}: {found.path.name} is a pickle file, which can run code when loaded, so the model's "
                        "own VAE is used (convert it to .safetensors)")
        return None
    return install_name(found)


def _hires(params: dict, asked: tuple, size: tuple, model: str, left_out: list[str],
           notes: list[str]) -> dict | None:
    """An imported A1111 hires fix as the options that make it again: None without one; none where it cannot be made
    again, which is said in ``left_out`` (what is made as A1111 would have made it, in ``notes``). A1111's ``Hires
    upscale`` is the scale; a ``Hires resize: WxH`` (a size asked for instead) is the scale it amounts to where it
    keeps the first pass's proportions (A1111 crops otherwise: not made); its ``Denoising strength`` is the second
    pass's; an upscaler promptism lacks (a network's, R-ESRGAN …) is replaced by Lanczos, the nearest of those it has,
    and said."""
    scale, steps = _number(params.get("hires_upscale"), float), _number(params.get("hires_steps"), int)
    resize, named = params.get("hires_resize"), params.get("hires_upscaler")
    if not (isinstance(resize, list) and len(resize) == 2 and all(type(v) is int and v >= 0 for v in resize)):
        resize = None
    if scale is None and resize is None and steps is None and named is None:
        return None
    said = ", ".join(f"{k} {params[f'hires_{k}']}" for k in ("upscale", "steps", "upscaler") if params.get(f"hires_{k}"))
    said = f"A1111's hires fix ({said or 'Hires resize ' + 'x'.join(map(str, resize or []))})"
    w, h = asked if all(isinstance(v, int) and v > 0 for v in asked) else (None, None)
    target = None
    if scale is None and isinstance(resize, list) and w is not None:
        target = _resized(w, h, *resize)  # A1111's hr_upscale_to for a size asked for
        if target is None:
            left_out.append(f"{said}: Hires resize {resize[0]}x{resize[1]} does not keep {w}x{h}'s proportions, so "
                            "A1111 cropped its second pass; promptism does not crop, so the images are the first pass's")
            return {}
        side, wanted = (w, target[0]) if resize[0] else (h, target[1])
        scale = wanted / side
        while int(side * scale) < wanted:  # (a ratio no float holds: A1111's int(side × scale) must give the size)
            scale = math.nextafter(scale, math.inf)
    if scale is None or not scale > 0:
        left_out.append(f"{said}: no Hires upscale (nor a Hires resize with a Size) is recorded, so the images are the "
                        "first pass's")
        return {}
    source = resolve_model(model)
    if (family := family_hint(source)) is not None and family not in ("sd", "sdxl"):
        left_out.append(f"{said} (which {source.credit} does not take: A1111 makes it for Stable Diffusion models)")
        return {}
    a1111 = target or ((int(w * scale), int(h * scale)) if w is not None else None)
    made = hires.hires_size(*size, scale) if a1111 is not None and None not in size else None
    if made is not None and made != (a1111[0] // 8 * 8, a1111[1] // 8 * 8):
        left_out.append(f"{said}: A1111's images were {a1111[0] // 8 * 8}x{a1111[1] // 8 * 8}, promptism's are "
                        f"{made[0]}x{made[1]} (the scale of {size[0]}x{size[1]})")
    upscaler = named if isinstance(named, str) else None
    if upscaler is not None:
        try:
            upscaler = hires.upscaler(upscaler)
        except RunError:
            left_out.append(f"Hires upscaler {upscaler}: not here (it needs its network's weights), so Lanczos, the "
                            "nearest of the upscalers promptism has, is used instead")
            upscaler = "Lanczos"
    strength = _number(params.get("strength"), float)
    if strength is None:
        notes.append(f"{said}: no Denoising strength is recorded, so the second pass's is A1111's default, "
                     f"{hires.DEFAULT_STRENGTH:g}")
    return {"hires": scale, "hires_steps": steps or None, "hires_strength": strength, "hires_upscaler": upscaler}


def _resized(width: int, height: int, to_w: int, to_h: int) -> tuple[int, int] | None:
    """A1111's hires size for ``Hires resize: to_w x to_h`` (0: that side from the other's proportion), or None where
    it does not keep the first pass's proportions (A1111 then scales to cover and crops)."""
    if to_h == 0:
        return to_w, to_w * height // width
    if to_w == 0:
        return to_h * width // height, to_h
    return (to_w, to_h) if to_w * height == to_h * width else None


def _number(value, kind: type):
    """A recorded number as ``kind`` (the journal keeps what the import read: a number, or nothing)."""
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _recorded(entries) -> dict[str, str | None]:
    """Recorded LoRAs or embeddings ("NAME: HASH" as A1111's `Lora hashes` / `TI hashes` and promptism's runs write
    them, or "NAME" where the other tool wrote no hash: a ComfyUI graph) by name, with the hash."""
    found: dict[str, str | None] = {}
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, str) and entry.strip():
            name, sep, short = entry.rpartition(": ")
            found[name.strip() if sep else entry.strip()] = short.strip() if sep else None
    return found


def _loras_left_out(prompt: str, recorded: dict[str, str | None]) -> list[str]:
    """A line for each recorded LoRA that a rerun would not apply as it was: a tag whose file here is another file
    than the one the image was made with (by the recorded hash), or one that no tag of the prompt applies. A tag
    whose LoRA is not here is refused (``lora_file``), as for any run."""
    try:
        tags = networks(prompt)
    except SpecError:  # refused when the job is checked, in its own words
        return []
    lines = []
    for tag in tags:
        short = next((recorded[n] for n in (tag.name, tag.name.rpartition("/")[2]) if recorded.get(n)), None)
        if short is None:
            continue
        path = lora_file(tag.name).path
        if not same_file(path, short):
            here = (addnet_hash(path) if path.suffix.lower() == ".safetensors" else hashes(path)[0])[:len(short)]
            lines.append(f"LoRA {tag.name}: the file here, {path.name} ({here}), is a different file than the one it "
                         f"was made with ({short})")
    named = {n for tag in tags for n in (tag.name, tag.name.rpartition("/")[2])}
    lines += [f"LoRA {name} (recorded, but no <lora:…> tag of the prompt applies it)" for name in recorded
              if name not in named]
    return lines


def _embeddings_left_out(texts: list[str], recorded: dict[str, str | None]) -> list[str]:
    """A line for each recorded embedding a rerun would not apply as it was: no file of its name here (its word is
    read as words, by A1111's rule), another file than the one the image was made with, or no word of the prompts
    that names it."""
    if not recorded:
        return []
    installed = {name.casefold(): file for name, file in embeddings.installed().items()}  # (any case, as A1111)
    lines = []
    for name, short in recorded.items():
        file = installed.get(name.casefold())
        if not embeddings.named_in(texts, {name: name}):
            lines.append(f"embedding {name} (recorded, but no word of the prompts names it)")
        elif file is None:
            lines.append(f"embedding {name}{f' ({short})' if short else ''}: no embedding file of that name here, so "
                         "its word is read as words (put the file in the embeddings folder)")
        elif short and not same_file(file.path, short):
            lines.append(f"embedding {name}: the file here, {file.path.name} ({hashes(file.path)[0][:len(short)]}), is "
                         f"a different file than the one it was made with ({short})")
    return lines


def _ancestral(name: str) -> bool:
    """Whether ``name`` is an ancestral sampler (Euler a, DPM2 a, DPM++ 2S a …): the noise it adds at each step is
    the noise A1111 seeds with seed + ENSD. Its SDE samplers draw theirs from a Brownian tree seeded with the seed
    alone, and the others add none, so ENSD changes nothing there."""
    try:
        found = sampler(name)
    except RunError:  # refused when the job is checked
        return False
    return found.ancestral and " a " in f"{found.name} "
