"""Models: what a model name means (built-in, local diffusers folder, Hugging Face cache), what is available, and
loading pipelines — safetensors only unless pickle is explicitly allowed, offline unless downloads are allowed, kept
warm between runs in an LRU (``Warm``) bounded by free GPU memory, or on the CPU by a count.
"""

from __future__ import annotations

import json
import logging
import os
import re
import gc
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from journal.text import quoted

from ..paths import cache_dir
from ..settings import Settings, config_file
from ..errors import RunError, option
from ..quiet import quieted
from . import tiny
from .speedups import Speedups
from .speedups import apply as apply_speedups
from .timing import phase

WEIGHTS = Path(__file__).parent / "weights"  # shipped inside the package
DEFAULT_GUIDANCE = 7.5
A1111, COMPEL = "a1111", "compel"  # how a model's prompts are encoded (ModelSource.emphasis, ParamsRecord.emphasis)


@dataclass(frozen=True)
class Builtin:
    description: str
    steps: int  # the default number of inference steps
    clip: str | None  # the scorer that understands its images
    guidance: float  # the default classifier-free guidance scale
    folder: Callable[[bool], Path]  # folder(build): where it is; build=True first makes it if it is made on demand
    emphasis: str = A1111  # how its prompts are encoded (ModelSource.emphasis)


BUILTINS = {
    "shapes": Builtin("built-in 32×32 model trained on the shapes world: circles, squares, triangles, stars in 8 colours, "
                      "1–3 of them, small or large, on a plain background; outlined, striped, glowing, pixel art or "
                      "blurry. It knows nothing else", 12, "shapes-clip", 2.0, lambda build: WEIGHTS / "shapes",
                      COMPEL),  # trained on short prompts whose keyword weights say how much of it: 0 is none
    "tiny": Builtin("built-in random-weight test pipeline — it draws noise", tiny.DEFAULT_STEPS, None, DEFAULT_GUIDANCE,
                    lambda build: tiny.ensure_tiny(cache_dir()) if build else cache_dir() / "models" / tiny.TINY_VERSION),
}
BUILTIN_CLIPS = {  # the scorers that ship with promptism (see scoring.py)
    "shapes-clip": "built-in CLIP trained on the shapes world (scores the `shapes` model's images; knows nothing else)",
    "tiny-clip": "built-in tiny random-weight CLIP (plumbing tests; its scores mean nothing)",
}
# Pipelines that AutoPipelineForText2Image would load as themselves (tests/test_cold_start.py checks it): loaded by
# their own class, which imports one pipeline module instead of all of diffusers' (about 0.7 s of CPU)
TEXT2IMAGE_CLASSES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "StableDiffusion3Pipeline",
                      "LatentConsistencyModelPipeline", "PixArtAlphaPipeline", "PixArtSigmaPipeline", "SanaPipeline",
                      "FluxPipeline", "Flux2Pipeline", "QwenImagePipeline")
DEFAULT_STEPS = 25
GUIDED = "vqgan-clip"  # names of the CLIP-guided backend start with this (see guided.py)
GUIDED_STEPS = 100
GUIDED_MAX_STEPS = 10_000  # 100× the default: beyond it a run would take hours and fill the memory with frames
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")  # an A1111 / ComfyUI checkpoint (single_file.py)
# the safetensors files diffusers and transformers load for a component (a variant, shards): another name is not used
_SAFETENSORS_WEIGHTS = re.compile(r"^(diffusion_pytorch_model|model)(\.[\w-]+)?\.safetensors$")


@dataclass(frozen=True)
class ModelSource:
    id: str  # what is credited: the built-in name, the repo id, or the folder
    kind: str  # builtin | local | hf-cache
    path: Path
    description: str
    revision: str | None = None
    steps: int = DEFAULT_STEPS  # default inference steps
    clip: str | None = None  # default scorer
    guidance: float = DEFAULT_GUIDANCE  # default guidance scale
    emphasis: str = A1111  # how its prompts are encoded (emphasis_encoder): "a1111", AUTOMATIC1111's windows and
    # weights, for the models A1111 users bring; "compel", one window and compel's weights (0: the words left out)

    @property
    def credit(self) -> str:
        """What is credited: a local folder by its name, a single file by its name less the suffix (as A1111 does)."""
        return self.path.name if self.kind == "local" else self.path.stem if self.kind == "file" else self.id


def resolve(name: str, *, allow_download: bool = False) -> ModelSource:
    """The folder of a diffusers pipeline's name (any model's, CLIP-guided ones too: ``backends.resolve``); RunError
    naming what is available when there is none."""
    if not name.strip():
        raise RunError(f"the model name is empty: use {', '.join(BUILTINS)}, a diffusers folder or a cached Hugging Face "
                       "repo id (see `promptism models`)")
    if builtin := BUILTINS.get(name):
        folder = builtin.folder(True)
        if not (folder / "model_index.json").exists():
            raise RunError(f"the built-in model {quoted(name)} is missing from this install ({folder}): reinstall promptism")
        return ModelSource(name, "builtin", folder, builtin.description, steps=builtin.steps, clip=builtin.clip,
                           emphasis=builtin.emphasis,
                           guidance=builtin.guidance)
    folder = Path(name).expanduser()
    if folder.is_file() and folder.suffix.lower() in SINGLE_FILE_SUFFIXES:
        return _single_file(folder)
    if folder.is_dir():
        if not (folder / "model_index.json").exists():
            raise RunError(f"{folder} is a folder but not a diffusers pipeline (it has no model_index.json)")
        check_model_index(folder)
        return ModelSource(str(folder.resolve()), "local", folder.resolve(), "local diffusers folder",
                           **_flux_defaults(folder))
    installed = installed_checkpoint(name)
    if installed is not None:
        return _single_file(installed)
    if is_repo_id(name):
        return _from_hf_cache(name, allow_download)
    if folder.is_file():
        raise RunError(f"{folder} is a {folder.suffix or 'suffixless'} file, not a checkpoint: a single-file model is a "
                       ".safetensors (or .ckpt) file")
    raise RunError(f"unknown model {quoted(name)}: use {', '.join(BUILTINS)}, {GUIDED}:<decoder>+<clip>, a diffusers folder or a "
                   "cached Hugging Face repo id (see `promptism models`)")


def check_name(name: str, *, allow_download: bool = False) -> None:
    """``resolve``'s checks with nothing built, loaded or fetched (torch-free: the service makes them when a job is
    submitted): RunError for a name no run could load. A built-in is known by its name; a CLIP-guided model's parts
    and a repo a download may fetch are checked when the run loads them."""
    if name in BUILTINS or (name.strip() and is_guided(name)) or (allow_download and is_repo_id(name)):
        return
    resolve(name)


def scorer_weights(name: str, *, allow_pickle: bool = False) -> tuple[str, str]:
    """A CLIP scorer named ``ARCH:CHECKPOINT`` or ``ARCH:PRETRAINED_TAG`` (not a built-in): its architecture and its
    weights — a checkpoint file made absolute, or the tag. RunError for a name of neither form, a checkpoint that is
    not a file, or a pickle one not allowed (the architecture is checked when it loads)."""
    arch, sep, pretrained = name.partition(":")
    if not sep or not arch or not pretrained:
        raise RunError(f"CLIP scorer {quoted(name)}: write ARCH:CHECKPOINT or ARCH:PRETRAINED_TAG, or use "
                       f"{', '.join(BUILTIN_CLIPS)}")
    path = Path(pretrained).expanduser()
    if path.suffix or path.exists() or "/" in pretrained or pretrained.startswith("~"):  # a file, not a tag
        if not path.exists():
            raise RunError(f"CLIP checkpoint {path} does not exist")
        if not path.is_file():
            raise RunError(f"CLIP checkpoint {path} is not a file; pass a .safetensors file")
        if path.suffix != ".safetensors" and not allow_pickle:
            raise RunError(f"CLIP checkpoint {path} is a pickle file, which can run code when loaded; use a "
                           f".safetensors file, or pass {option('allow-pickle')} if you trust it")
        return arch, str(path)
    return arch, pretrained


def installed_checkpoint(name: str) -> Path | None:
    """The checkpoint ``name`` means in the A1111 / ComfyUI installs the settings name (``model_files.find``), or
    None where it names none there (RunError where it names several)."""
    from .model_files import find_all
    from ..settings import load_settings

    found = find_all(load_settings(), "checkpoint", name)
    if len(found) > 1:
        raise RunError(f"model {quoted(name)} names {len(found)} checkpoints ({', '.join(str(f.path) for f in found[:3])}): "
                       "give its path under its folder")
    return found[0].path if found else None


def _single_file(path: Path) -> ModelSource:
    from .single_file import defaults

    said = defaults(path)
    return ModelSource(str(path.resolve()), "file", path.resolve(), "single-file checkpoint",
                       **({} if said is None else {"steps": said[0], "guidance": said[1]}))


def _flux_defaults(folder: Path) -> dict:
    """A FLUX.1 folder's default steps and guidance (dev's where its transformer embeds the guidance, else
    schnell's: ``single_file.FLUX_DEFAULTS``), as its single file has them; none for another pipeline."""
    from .single_file import FLUX_DEFAULTS

    try:
        if json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name") != "FluxPipeline":
            return {}
        config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, AttributeError):
        return {}
    steps, guidance = FLUX_DEFAULTS["flux-dev" if config.get("guidance_embeds") else "flux-schnell"]
    return {"steps": steps, "guidance": guidance}


def family_hint(source: ModelSource) -> str | None:
    """"sdxl" or "sd" for a model whose files say so without loading it (its model_index.json's pipeline, a single
    file's tensor names), else None."""
    if source.kind == "file":
        from .single_file import header_keys

        keys = header_keys(source.path)
        return "sdxl" if any(k.startswith("conditioner.embedders.") for k in keys) else \
            "sd" if any(k.startswith("cond_stage_model.") for k in keys) else None
    try:
        name = json.loads((source.path / "model_index.json").read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError, AttributeError):
        return None
    return "sdxl" if name.startswith("StableDiffusionXL") else "sd" if name.startswith("StableDiffusion") else None


def reads_windows(name: str) -> bool:
    """Whether a model name's prompts are read in A1111's 75-token windows, all of them (``emphasis_encoder``), rather
    than cut at one: every diffusion model's but a built-in encoded otherwise (shapes) and the CLIP-guided backend's."""
    builtin = BUILTINS.get(name)
    return not is_guided(name) and (builtin is None or builtin.emphasis == A1111)


def is_guided(name: str) -> bool:
    """Whether a model name means the CLIP-guided backend."""
    return name == GUIDED or name.startswith(GUIDED + ":")


def is_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name))


def hf_snapshot(repo_id: str, allow_download: bool) -> Path:
    """The repo's snapshot folder in the local Hugging Face cache (fetched first only if downloads are allowed)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=not allow_download, cache_dir=_hf_cache()))
    except LocalEntryNotFoundError:
        raise RunError(f"model {quoted(repo_id)} is not in the local Hugging Face cache; fetch it where there is internet, "
                       f"or pass {option('allow-download')} (see `promptism models` for what is here)") from None
    except Exception as exc:  # noqa: BLE001 - hub errors (no network, gated repo, bad id) in one line
        raise RunError(f"cannot get model {quoted(repo_id)}: {str(exc).splitlines()[0]}") from None


def _from_hf_cache(repo_id: str, allow_download: bool) -> ModelSource:
    path = hf_snapshot(repo_id, allow_download)
    if not (path / "model_index.json").exists():
        raise RunError(f"{quoted(repo_id)} is in the cache but is not a diffusers pipeline (no model_index.json)")
    check_model_index(path)
    return ModelSource(repo_id, "hf-cache", path, "Hugging Face cache", revision=path.name, **_flux_defaults(path))


def _hf_cache() -> str | None:
    """$HF_HUB_CACHE as it is now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_CACHE") or None


def available(settings: Settings) -> list[ModelSource]:
    """Built-ins, configured folders, and diffusers pipelines in the local Hugging Face cache (nothing is built)."""
    found = [ModelSource(name, "builtin", b.folder(False), b.description, steps=b.steps, clip=b.clip, guidance=b.guidance,
                         emphasis=b.emphasis)
             for name, b in BUILTINS.items()]
    found.append(ModelSource(f"{GUIDED}:shapes+shapes-clip", "guided", WEIGHTS / "shapes" / "vae", "CLIP-guided "
                             f"(VQGAN+CLIP): the shapes VAE steered by shapes-clip; or {GUIDED}:<decoder>+<clip>[+<clip>…]",
                             steps=GUIDED_STEPS))
    found += configured_folders(settings)[0]
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir(_hf_cache()).repos
    except Exception:  # noqa: BLE001 - no cache yet
        repos = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        for rev in repo.revisions:
            if repo.repo_type == "model" and (rev.snapshot_path / "model_index.json").exists():
                found.append(ModelSource(repo.repo_id, "hf-cache", rev.snapshot_path, "Hugging Face cache", rev.commit_hash))
                break
    return found


def configured_folders(settings: Settings) -> tuple[list[ModelSource], list[str]]:
    """The ``model_paths`` folders that hold a diffusers pipeline, and a line for each that does not (a folder on a
    disk that is not mounted just now is left out, not an error for every command)."""
    found, unusable = [], []
    for entry in settings.model_paths:
        folder = Path(entry).expanduser()
        if (folder / "model_index.json").is_file():
            found.append(ModelSource(str(folder), "local", folder, "configured folder"))
            continue
        why = ("is not a diffusers pipeline (it has no model_index.json)" if folder.is_dir()
               else "is not a folder" if folder.exists() else "does not exist (a disk not mounted?)")
        unusable.append(f"model_paths: {folder} {why}; it is left out (fix or remove it in {config_file()})")
    return found, unusable


def check_model_index(folder: Path) -> None:
    """A pipeline folder's ``model_index.json`` as diffusers needs it: an object naming the pipeline class, each
    component a [library, class] pair; RunError naming the file otherwise."""
    index = folder / "model_index.json"
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"{index} cannot be read as JSON ({exc.__class__.__name__}): it is not a diffusers pipeline") from None
    if not isinstance(doc, dict):
        raise RunError(f"{index} must be a JSON object naming the pipeline (\"_class_name\": …), not {type(doc).__name__}")
    if not isinstance(doc.get("_class_name"), str) or not doc["_class_name"]:
        raise RunError(f"{index} does not name its pipeline class: \"_class_name\" must be text such as "
                       f"\"StableDiffusionPipeline\", not {quoted(doc.get('_class_name'))}")
    for name, value in doc.items():
        if isinstance(value, list) and (len(value) != 2 or not all(v is None or isinstance(v, str) for v in value)):
            raise RunError(f"{index}: component {quoted(name)} must be [library, class], e.g. [\"diffusers\", \"UNet2DConditionModel\"]")


def check_safetensors(folder: Path) -> None:
    """Refuse a pipeline with a component whose weights exist only as pickle files (unpickling runs arbitrary
    code) — judged by the safetensors file the component would load, not by any file that ends in .safetensors."""
    for component in [folder, *[p for p in folder.iterdir() if p.is_dir()]]:
        files = sorted(f.name for f in component.iterdir() if f.is_file())
        pickles = [f for f in files if f.endswith(_PICKLE_SUFFIXES)]
        if pickles and not any(_SAFETENSORS_WEIGHTS.match(f) for f in files):
            raise RunError(f"{component} has only pickle weights ({pickles[0]}), which can run code when loaded; convert "
                           f"them to safetensors, or pass {option('allow-pickle')} if you trust where they came from")




def quiet_libraries() -> None:
    """No progress bars, info logs or deprecation chatter from diffusers / transformers: promptism reports progress."""
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*torch_dtype.* is deprecated", category=FutureWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _silent_loaders():
    """diffusers and transformers log errors (``An error occurred while trying to fetch …``) before raising them;
    while a pipeline loads, the exception alone speaks (as one RunError line)."""
    return quieted("diffusers", "transformers", level=logging.CRITICAL + 1)


def load_pipeline(source: ModelSource, device, *, allow_pickle: bool = False, speedups: Speedups = Speedups()):
    """A diffusers text-to-image pipeline on ``device`` (half precision on GPUs) with ``speedups``, kept warm (apart
    from one without them: a compiled or channels-last model is another model)."""
    return warm(("pipeline", source.id, str(source.path), str(device), allow_pickle, speedups.model_key),
                f"{source.credit} on {device}{speedups.label}", device,
                lambda: apply_speedups(_load(source, device, allow_pickle), speedups))


def _load(source: ModelSource, device, allow_pickle: bool):
    if not allow_pickle and source.kind != "file":
        check_safetensors(source.path)
    import torch

    dtype = torch.float16 if device.type in ("cuda", "mps") else torch.float32
    to_device = str(device) == "cuda"  # diffusers reads the weights straight onto the (current) GPU
    try:
        with phase("import diffusers"):
            quiet_libraries()
        if source.kind == "file":  # an A1111 / ComfyUI checkpoint
            from .single_file import load

            to_device = False
            with _silent_loaders(), phase("read the checkpoint"):
                pipe = load(source.path, dtype, allow_pickle=allow_pickle)
        else:
            pipeline_class = _text2image_class(source.path)
            with _silent_loaders(), phase("read weights to the GPU" if to_device else "read weights"):
                pipe = pipeline_class.from_pretrained(source.path, torch_dtype=dtype, use_safetensors=True if not allow_pickle else None,
                                                      local_files_only=True, device_map="cuda" if to_device else None,
                                                      **_left_out(source.path))
    except RunError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model diffusers cannot load, whatever the reason: one line
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise RunError(f"cannot load model {source.credit}: {detail}") from None
    pipe.set_progress_bar_config(disable=True)
    if to_device:
        return pipe
    with phase("move to the device"):
        return pipe.to(device)


def _left_out(folder: Path) -> dict:
    """The components a folder's model_index.json leaves out ([null, null]), given as None: diffusers loads a folder
    saved without one (an SD 3 without T5) only where it is told so."""
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    return {name: None for name, value in index.items() if value == [None, None]}


def _text2image_class(folder: Path):
    """The pipeline class that loads ``folder`` for text to image: the class its model_index.json names when it is
    a common text-to-image pipeline (importing that pipeline's module alone), else AutoPipelineForText2Image (it
    imports every pipeline it knows, and picks an img2img or inpainting folder's text-to-image sibling); an SDXL
    refiner's own class (image to image only: its sibling would drop the aesthetic score its UNet takes)."""
    import diffusers

    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    name = index["_class_name"]
    if name in TEXT2IMAGE_CLASSES or (name == "StableDiffusionXLImg2ImgPipeline" and index.get("requires_aesthetics_score")):
        return getattr(diffusers, name)
    return diffusers.AutoPipelineForText2Image


# One load at a time (the TUI's preload and a run may ask at once); re-entrant: a guided pipeline loads its CLIPs as scorers.
_LOADING = threading.RLock()
MARGIN_BYTES = 2 << 30  # on a GPU, at least this much memory is left free after a load


class Warm:
    """Loaded models of one kind (pipelines, scorers), least recently used first. On a GPU, the least recently used
    are let go while free memory after a load is under ``MARGIN_BYTES``, or when a load runs out of memory (then it
    is tried again); on the CPU, at most ``size`` are kept."""

    pools: list["Warm"] = []

    def __init__(self, size: int = 2):
        self.size = size
        self.entries: OrderedDict[tuple, tuple[str, object]] = OrderedDict()  # key → (credited id on device, model)
        Warm.pools.append(self)

    def get(self, key: tuple, label: str, device, load: Callable[[], object]):
        with _LOADING:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key][1]
            on_gpu = getattr(device, "type", "cpu") == "cuda"
            while not on_gpu and len(self.entries) >= max(1, self.size):
                self._drop(on_gpu)
            while True:
                try:
                    model = load()
                    break
                except Exception as exc:
                    if not (_out_of_memory(exc) and self._drop_any(on_gpu)):
                        raise
            self.entries[key] = (label, model)
            while on_gpu and _free_bytes(device) < MARGIN_BYTES and self._drop_any(on_gpu, keep=key):
                pass
            return model

    def _drop_any(self, on_gpu: bool, keep: tuple | None = None) -> bool:
        """Let go of the least recently used model, of this kind first; False when there is none to let go."""
        for pool in (self, *(p for p in Warm.pools if p is not self)):
            if any(k != keep for k in pool.entries):
                pool._drop(on_gpu, keep)
                return True
        return False

    def _drop(self, on_gpu: bool, keep: tuple | None = None) -> None:
        del self.entries[next(k for k in self.entries if k != keep)]
        gc.collect()
        if on_gpu:
            import torch

            torch.cuda.empty_cache()


PIPELINES = Warm()
VAES = Warm()  # VAEs swapped in for a model's own (vae.py), by file and the model's VAE they were loaded for


def warm(key: tuple, label: str, device, load: Callable[[], object]):
    """A pipeline from the warm pool, loaded by ``load()`` when it is not there (``label``: what ``loaded_models``
    says)."""
    return PIPELINES.get(key, label, device, load)


def keep_warm(count: int) -> None:
    """On the CPU, keep at most ``count`` models of each kind (pipelines, scorers) warm; the least recently used go."""
    for pool in Warm.pools:
        pool.size = count
        while len(pool.entries) > max(1, count):
            pool._drop(on_gpu=False)


def let_go() -> int:
    """Let go of every warm model (pipelines, VAEs, scorers: A1111's ``unload-checkpoint``): the next run loads what
    it needs again, a run going on keeps the ones it holds. How many went."""
    with _LOADING:
        count = sum(len(pool.entries) for pool in Warm.pools)
        for pool in Warm.pools:
            pool.entries.clear()
    gc.collect()
    torch = sys.modules.get("torch")  # (imported only if a model was ever loaded)
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return count


def loaded_models() -> list[str]:
    """What is warm now, least recently used first: each by its credited id and device (no local path)."""
    return [label for pool in Warm.pools for label, _ in pool.entries.values()]


def _out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_bytes(device) -> int:
    import torch

    return torch.cuda.mem_get_info(device)[0]
