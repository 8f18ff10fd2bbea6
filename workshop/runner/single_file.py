"""Single-file checkpoints — the ``*.safetensors`` files AUTOMATIC1111 and ComfyUI load (``*.ckpt`` only where
pickle is allowed) — loaded offline with diffusers' single-file loading.

``inspect`` reads the file's header alone (no weights): a file that is not one (not safetensors, damaged, a LoRA, a
VAE) is one line saying what it is; the model type is diffusers' own detection from the tensors' names and shapes
(an OpenCLIP text tower without a 1024-wide UNet is SD 2 too); SD 2's prediction type comes from what the file or
its neighbours say — a ``NAME.yaml`` beside it with ``parameterization: "v"`` (A1111's convention), a ``v_pred`` key,
``modelspec.prediction_type`` — else v-prediction (SD 2.1 768's, diffusers' default for the type).

``config_folder``: a diffusers config folder beside the file (``NAME.config/``, for a model whose architecture
differs from its type's), else for SD 3 and Flux the local Hugging Face cache's copy of the repo diffusers maps the type to,
else the type's shipped one (``single_file_configs``), written into the cache once.

SD 3 files come with or without their text encoders (Stability's ``sd3_medium`` holds the MMDiT and VAE alone,
``…_incl_clips`` the two CLIPs too, ``…_t5xxlfp16`` T5 as well): a text encoder the file lacks is read from the
config folder where it has the weights; T5 is left out where it has none (the run says so: ``note``), a CLIP is
refused. T5's tokenizer is no small text file: it is read from the config folder, a ``NAME.config/tokenizer_3/``
beside the file or a cached Hugging Face repo that has one, else the file is refused in one line saying where to
put it.

FLUX.1 dev and schnell files (told apart by dev's guidance embedding; Fill and Depth, which take a control image,
refused) are ComfyUI's all-in-one checkpoints (transformer, ``vae.``, ``text_encoders.clip_l.`` and ``.t5xxl.``) or
a models/unet file of the transformer alone: what the file lacks is read from the config folder's weights (a
``NAME.config/`` diffusers folder beside it, or the cached FLUX.1 repo), else the file is one line naming it. T5's
tokenizer is found as SD 3's is (``tokenizer_2``)."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from journal.text import quoted

from ..errors import RunError, option
from ..paths import cache_dir, made_once
from . import single_file_configs

SUFFIXES = (".safetensors", ".ckpt")
_UNET = "model.diffusion_model.input_blocks.0.0.weight"
_OPEN_CLIP_SD2 = "cond_stage_model.model.token_embedding.weight"
NAMES = {"v1": "Stable Diffusion 1.x", "v2": "Stable Diffusion 2.x", "xl_base": "SDXL", "xl_refiner": "the SDXL refiner",
         "sd3": "SD 3",
         "sd35_medium": "SD 3.5 Medium", "sd35_large": "SD 3.5 Large", "flux-dev": "FLUX.1 dev",
         "flux-schnell": "FLUX.1 schnell"}
SD3 = ("sd3", "sd35_medium", "sd35_large")
FLUX = ("flux-dev", "flux-schnell")
_FLUX = "double_blocks.0.img_attn.norm.key_norm.scale"  # (FLUX.1's; under model.diffusion_model. in a checkpoint)
_FLUX_CONTROL = {"flux-fill": "FLUX.1 Fill (it paints into a masked image)",
                 "flux-depth": "FLUX.1 Depth (it follows a depth map)"}
# FLUX.1's defaults (diffusers' FluxPipeline and Black Forest Labs' cards): dev is guidance-distilled (the guidance is
# an input of the transformer, 3.5, 28 steps); schnell is step-distilled, without guidance (4 steps)
FLUX_DEFAULTS = {"flux-dev": (28, 3.5), "flux-schnell": (4, 0.0)}
_VAE_PREFIXES = ("first_stage_model.", "vae.")
_MMDIT = "model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias"  # (SD 3's; bare in some files)
_CLIP_L, _CLIP_G = "text_encoders.clip_l.transformer.", "text_encoders.clip_g.transformer."
_T5 = "text_encoders.t5xxl.transformer."
# where a T5 tokenizer may be in the local Hugging Face cache: the repos diffusers maps SD 3 and Flux to, and T5's own
T5_TOKENIZERS = (("stabilityai/stable-diffusion-3-medium-diffusers", "tokenizer_3"),
                 ("stabilityai/stable-diffusion-3.5-large", "tokenizer_3"),
                 ("stabilityai/stable-diffusion-3.5-medium", "tokenizer_3"),
                 ("black-forest-labs/FLUX.1-dev", "tokenizer_2"), ("black-forest-labs/FLUX.1-schnell", "tokenizer_2"),
                 ("google/t5-v1_1-xxl", ""))
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
_HEADER_MAX = 100 << 20  # bytes: a safetensors header past this is no checkpoint's
_V_WORDS = ("v", "v_prediction", "v-prediction", "velocity")


@dataclass(frozen=True)
class Checkpoint:
    """What a single file holds: diffusers' model type (v1, v2, xl_base, sd3, sd35_medium, sd35_large, flux-dev,
    flux-schnell), for SD 2 its prediction type, for SD 3 and Flux which text encoders it has (and Flux's VAE)."""

    kind: str
    prediction: str = "epsilon"  # or "v_prediction"
    clips: bool = True  # SD 3: both CLIPs' weights are in the file; Flux: CLIP-L's
    t5: bool = False  # SD 3, Flux: T5's are
    vae: bool = True  # Flux: the VAE's are (a models/unet file has the transformer alone)

    @property
    def config_kind(self) -> str:
        """The shipped config folder it loads with."""
        return "v2-base" if self.kind == "v2" and self.prediction == "epsilon" else self.kind


class _Shape:
    __slots__ = ("shape",)

    def __init__(self, shape: list[int]):
        import torch

        self.shape = torch.Size(shape)


def is_checkpoint_file(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def header_keys(path: Path) -> list[str]:
    """The tensor names of a safetensors file, from its header (torch-free); none for a file that is not one."""
    try:
        with open(path, "rb") as handle:
            length = struct.unpack("<Q", handle.read(8))[0]
            if length > _HEADER_MAX:
                return []
            return [key for key in json.loads(handle.read(length)) if key != "__metadata__"]
    except (OSError, ValueError, struct.error):
        return []


def inspect(path: Path) -> Checkpoint:
    """The checkpoint in ``path`` (a ``.safetensors`` file), from its header; RunError naming what it is otherwise."""
    from safetensors import SafetensorError, safe_open

    name = path.name
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
    length = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
    if len(head) < 9 or head[8:9] != b"{" or length > min(size - 8, _HEADER_MAX):
        what = "a pickle" if head[:1] == b"\x80" or head[:2] == b"PK" else "its header is not one"
        raise RunError(f"{name} is not a safetensors file ({what}): a checkpoint is a .safetensors file, or a .ckpt "
                       f"with {option('allow-pickle')}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: _Shape(handle.get_slice(key).get_shape()) for key in handle.keys()}
            metadata = handle.metadata() or {}
    except SafetensorError as exc:
        raise RunError(f"{name} is a damaged safetensors file ({str(exc).splitlines()[0]}): copy it again") from None
    return _kind(path, shapes, metadata)


def _kind(path: Path, shapes: dict, metadata: dict) -> Checkpoint:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    if _MMDIT in shapes or _MMDIT.removeprefix("model.diffusion_model.") in shapes:
        return _sd3(path, shapes, infer_diffusers_model_type(shapes))
    if _FLUX in shapes or "model.diffusion_model." + _FLUX in shapes:
        return _flux(path, shapes, infer_diffusers_model_type(shapes))
    if _UNET not in shapes:
        if (other := infer_diffusers_model_type(shapes)) != "v1":  # (v1: diffusers' answer when nothing matched)
            raise RunError(f"{path.name} is a {other} checkpoint; promptism loads single files of "
                           f"{', '.join(NAMES.values())}: load this model from its diffusers folder")
        looks = ("a LoRA" if any("lora" in key for key in shapes) else
                 "a diffusers UNet" if "conv_in.weight" in shapes else
                 "a VAE" if any(key.startswith(("encoder.", "decoder.", "first_stage_model.")) for key in shapes) else
                 "an embedding" if len(shapes) <= 4 else "something else")
        raise RunError(f"{path.name} is not a Stable Diffusion checkpoint (it has no UNet in the original layout; it "
                       f"looks like {looks}): pass a checkpoint from models/Stable-diffusion or models/checkpoints")
    kind = infer_diffusers_model_type(shapes)
    if kind == "v1" and _OPEN_CLIP_SD2 in shapes:
        kind = "v2"  # (diffusers tells SD 2 by a 1024-wide cross-attention: a smaller one with OpenCLIP is SD 2 too)
    if kind not in NAMES:
        raise RunError(f"{path.name} is a {kind} checkpoint; promptism loads single files of "
                       f"{', '.join(NAMES.values())} (a diffusers folder of this model loads too)")
    if kind != "v2":
        return Checkpoint(kind)
    return Checkpoint(kind, _prediction(path, shapes, metadata))


def _sd3(path: Path, shapes: dict, said: str) -> Checkpoint:
    """An SD 3 file: diffusers' type where it tells one (it knows the published sizes), else the one its blocks are
    like (3.5 Medium's MMDiT-X has second attentions, 3.5 Large's normed queries alone); its parts."""
    if not any(key.startswith(_VAE_PREFIXES) for key in shapes):
        raise RunError(f"{path.name} is an SD 3 transformer alone (no VAE), not a checkpoint: pass the checkpoint it "
                       "came with (models/Stable-diffusion or models/checkpoints), or load the model's diffusers folder")
    kind = said if said in SD3 else "sd35_medium" if any(".attn2." in k for k in shapes) else \
        "sd35_large" if any(".ln_q." in k for k in shapes) else "sd3"
    clip_l, clip_g = (any(key.startswith(prefix) for key in shapes) for prefix in (_CLIP_L, _CLIP_G))
    return Checkpoint(kind, clips=clip_l and clip_g, t5=_T5 + "shared.weight" in shapes)


def _flux(path: Path, shapes: dict, said: str) -> Checkpoint:
    """A FLUX.1 file: dev (a guidance embedding) or schnell (none), by diffusers' detection; Fill and Depth refused
    (they take a control image); its parts — ComfyUI's all-in-one checkpoints hold the VAE (``vae.``) and both text
    encoders (``text_encoders.clip_l.`` / ``t5xxl.``), a models/unet file the transformer alone."""
    if said in _FLUX_CONTROL:
        raise RunError(f"{path.name} is {_FLUX_CONTROL[said]}, which takes a control image with its prompt: promptism "
                       "draws from a prompt alone; pass a FLUX.1 dev or schnell file")
    if said not in FLUX:
        raise RunError(f"{path.name} is a {said} checkpoint; promptism loads single files of "
                       f"{', '.join(NAMES.values())} (a diffusers folder of this model loads too)")
    return Checkpoint(said, clips=_CLIP_L + "text_model.embeddings.position_embedding.weight" in shapes,
                      t5=_T5 + "shared.weight" in shapes, vae=any(key.startswith(_VAE_PREFIXES) for key in shapes))


def defaults(path: Path) -> tuple[int, float] | None:
    """A Flux file's default steps and guidance, from its header (torch-free): None for another file."""
    keys = set(header_keys(path))
    if _FLUX not in keys and "model.diffusion_model." + _FLUX not in keys:
        return None
    guided = "guidance_in.in_layer.bias" in keys or "model.diffusion_model.guidance_in.in_layer.bias" in keys
    return FLUX_DEFAULTS["flux-dev" if guided else "flux-schnell"]


def _prediction(path: Path, shapes: dict, metadata: dict) -> str:
    sidecar = path.with_suffix(".yaml")
    if sidecar.is_file():
        said = re.search(r"parameterization:\s*[\"']?(\w+)", sidecar.read_text(encoding="utf-8", errors="replace"))
        return "v_prediction" if said and said[1] == "v" else "epsilon"
    if "v_pred" in shapes:
        return "v_prediction"
    if said := metadata.get("modelspec.prediction_type"):
        return "v_prediction" if said.lower() in _V_WORDS else "epsilon"
    architecture = metadata.get("modelspec.architecture", "")
    if architecture.startswith("stable-diffusion-v2"):
        return "v_prediction" if architecture.endswith("-v") else "epsilon"
    return "v_prediction"


def config_folder(path: Path, checkpoint: Checkpoint) -> Path:
    """The diffusers config folder ``path`` loads with: ``NAME.config/`` beside it, else (SD 3, Flux) the cached
    Hugging Face repo diffusers maps its type to, else its type's shipped one."""
    beside = path.with_name(path.stem + ".config")
    if (beside / "model_index.json").is_file():
        return beside
    if checkpoint.kind in SD3 + FLUX and (cached := _cached_repo(_default_repo(checkpoint.kind))) is not None:
        return cached
    return made_once(cache_dir() / "single-file-configs" / f"{checkpoint.config_kind}-1",
                     lambda folder: single_file_configs.write(checkpoint.config_kind, folder))


def load(path: Path, dtype, *, allow_pickle: bool):
    """The pipeline in ``path`` (on the CPU, in ``dtype``); RunError for a file that is not one promptism loads."""
    import diffusers

    if path.suffix.lower() != ".safetensors":
        if not allow_pickle:
            raise RunError(f"{path.name} is a pickle checkpoint, which can run code when loaded; use its .safetensors, "
                           f"or pass {option('allow-pickle')} if you trust where it came from")
        checkpoint = _pickled_kind(path)
    else:
        checkpoint = inspect(path)
    config = config_folder(path, checkpoint)
    index = json.loads((config / "model_index.json").read_text(encoding="utf-8"))
    extra = {"add_watermarker": False} if index["_class_name"].startswith("StableDiffusionXL") else {}
    if checkpoint.kind in SD3:
        extra = _sd3_parts(path, checkpoint, config, dtype)
    elif checkpoint.kind in FLUX:
        extra = _flux_parts(path, checkpoint, config, dtype)
    try:
        pipe = getattr(diffusers, index["_class_name"]).from_single_file(str(path), config=str(config),
                                                                         local_files_only=True, torch_dtype=dtype, **extra)
    except (KeyError, IndexError) as exc:  # (diffusers' SD 3 and Flux conversions take each weight they need by its
        # name; Flux's counts its blocks from their names: none is an IndexError)
        if isinstance(exc, IndexError):
            raise RunError(f"{path.name} is an incomplete checkpoint (its Flux transformer has no double or single "
                           "blocks): copy it again") from None
        raise RunError(f"{path.name} is an incomplete checkpoint (its weight "
                       f"{quoted(_original_key(str(exc.args[0]), path))} is missing): copy it again") from None
    missing = [f"{name}.{key}" for name, module in pipe.components.items() if hasattr(module, "state_dict")
               for key, tensor in module.state_dict().items() if tensor.device.type == "meta"]
    if missing:
        raise RunError(f"{path.name} is an incomplete checkpoint ({len(missing)} weights missing, e.g. "
                       f"{quoted(missing[0])}): copy it again")
    for module in pipe.components.values():  # (diffusers 0.42 leaves a T5 from a single file training: its dropout on)
        if hasattr(module, "eval"):
            module.eval()
    return pipe


def _original_key(key: str, path: Path) -> str:
    """The name a weight diffusers missed has in the file (its conversions take the prefix off first)."""
    if path.suffix.lower() == ".safetensors" and key not in (keys := set(header_keys(path))) and \
            "model.diffusion_model." + key not in keys:
        return "model.diffusion_model." + key if any(k.startswith("model.diffusion_model.") for k in keys) else key
    return key


def _pickled_kind(path: Path) -> Checkpoint:
    """A .ckpt's checkpoint (its whole state dict is read: pickles have no header)."""
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    state = load_single_file_checkpoint(str(path), local_files_only=True)
    return _kind(path, {key: value for key, value in state.items() if hasattr(value, "shape")}, {})


def _default_repo(kind: str) -> str:
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    return DIFFUSERS_DEFAULT_PIPELINE_PATHS[kind]["pretrained_model_name_or_path"]


def _cached_repo(repo: str) -> Path | None:
    """The local Hugging Face cache's snapshot of ``repo`` (never fetched), or None where it has none."""
    from .models import hf_snapshot

    try:
        return hf_snapshot(repo, allow_download=False)
    except RunError:
        return None


def _has_weights(folder: Path) -> bool:
    """Whether a component folder has safetensors weights (one file, or shards with their index)."""
    from .models import _SAFETENSORS_WEIGHTS

    return folder.is_dir() and any(_SAFETENSORS_WEIGHTS.match(f.name) or f.name.endswith(".safetensors.index.json")
                                   for f in folder.iterdir())


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def t5_tokenizer_folder(path: Path, config: Path, component: str) -> Path | None:
    """Where T5's tokenizer is, offline: the config folder's ``component``, a ``NAME.config/COMPONENT/`` beside the
    file, a cached Hugging Face repo that has one (``T5_TOKENIZERS``); None where none is."""
    beside = path.with_name(path.stem + ".config") / component
    for folder in (config / component, beside):
        if _has_tokenizer(folder):
            return folder
    for repo, sub in T5_TOKENIZERS:
        if (cached := _cached_repo(repo)) is not None and _has_tokenizer(cached / sub):
            return cached / sub
    return None


def _sd3_parts(path: Path, checkpoint: Checkpoint, config: Path, dtype) -> dict:
    """The components ``from_single_file`` is given for an SD 3 file: a text encoder the file lacks, from the config
    folder's weights (diffusers' own check knows no shards); T5 none where neither has it; T5's tokenizer where the
    config folder has none. RunError for a file without its CLIPs where the config folder has none either, and for
    T5 without a tokenizer to be found."""
    from transformers import CLIPTextModelWithProjection, T5EncoderModel

    given: dict = {}
    if not checkpoint.clips:
        if not all(_has_weights(config / name) for name in ("text_encoder", "text_encoder_2")):
            raise RunError(f"{path.name} holds SD 3's transformer and VAE without its CLIP text encoders: pass the file "
                           f"that includes them (e.g. sd3_medium_incl_clips.safetensors), or put the model's diffusers "
                           f"folder beside it as {path.stem}.config/")
        for name in ("text_encoder", "text_encoder_2"):
            given[name] = CLIPTextModelWithProjection.from_pretrained(config, subfolder=name, torch_dtype=dtype,
                                                                      local_files_only=True, use_safetensors=True)
    t5 = checkpoint.t5 or _has_weights(config / "text_encoder_3")
    if not t5:
        return {**given, "text_encoder_3": None, "tokenizer_3": None}
    if not checkpoint.t5:
        given["text_encoder_3"] = T5EncoderModel.from_pretrained(config, subfolder="text_encoder_3", torch_dtype=dtype,
                                                                 local_files_only=True, use_safetensors=True)
    return {**given, **_t5_tokenizer(path, checkpoint, config, "tokenizer_3", "has SD 3's T5 text encoder, whose "
                                     "tokenizer is not here")}


def _t5_tokenizer(path: Path, checkpoint: Checkpoint, config: Path, component: str, what: str) -> dict:
    """T5's tokenizer as ``from_single_file`` is given it where the config folder has none (none where it has);
    RunError, ``path.name`` ``what``, where none is found offline."""
    from transformers import T5TokenizerFast

    if _has_tokenizer(config / component):
        return {}
    found = t5_tokenizer_folder(path, config, component)
    if found is None:
        raise RunError(f"{path.name} {what}: put T5's tokenizer (tokenizer.json or spiece.model, as in "
                       f"{_default_repo(checkpoint.kind)}'s {component}/) in {path.stem}.config/{component}/ beside it")
    return {component: T5TokenizerFast.from_pretrained(found)}


def _flux_parts(path: Path, checkpoint: Checkpoint, config: Path, dtype) -> dict:
    """The components ``from_single_file`` is given for a Flux file: the VAE and text encoders it lacks, from the
    config folder's weights (a models/unet file has the transformer alone); T5's tokenizer where the config folder
    has none. RunError naming what is missing where the config folder has not got it, and for T5's tokenizer where
    none is to be found."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, T5EncoderModel

    given: dict = {}
    missing = []
    for name, there, cls, what in (("vae", checkpoint.vae, AutoencoderKL, "VAE"),
                                   ("text_encoder", checkpoint.clips, CLIPTextModel, "CLIP-L"),
                                   ("text_encoder_2", checkpoint.t5, T5EncoderModel, "T5")):
        if there:
            continue
        if not _has_weights(config / name):
            missing.append(what)
            continue
        given[name] = cls.from_pretrained(config, subfolder=name, torch_dtype=dtype, local_files_only=True,
                                          use_safetensors=True)
    if missing:
        alone = "transformer alone (a models/unet file)" if len(missing) == 3 else "transformer"
        raise RunError(f"{path.name} holds {NAMES[checkpoint.kind]}'s {alone} without its {_listed(missing)}: put the "
                       f"model's diffusers folder (with their weights) beside it as {path.stem}.config/, or have "
                       f"{_default_repo(checkpoint.kind)} in the Hugging Face cache")
    return {**given, **_t5_tokenizer(path, checkpoint, config, "tokenizer_2",
                                     f"is {NAMES[checkpoint.kind]}, whose T5 tokenizer is not here")}


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
