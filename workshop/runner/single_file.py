"""Single-file checkpoints — the ``*.safetensors`` files AUTOMATIC1111 and ComfyUI load (``*.ckpt`` only where
pickle is allowed) — loaded offline with diffusers' single-file loading.

``inspect`` reads the file's header alone (no weights): a file that is not one (not safetensors, damaged, a LoRA, a
VAE) is one line saying what it is; the model type is diffusers' own detection from the tensors' names and shapes
(an OpenCLIP text tower without a 1024-wide UNet is SD 2 too); SD 2's prediction type comes from what the file or
its neighbours say — a ``NAME.yaml`` beside it with ``parameterization: "v"`` (A1111's convention), a ``v_pred`` key,
``modelspec.prediction_type`` — else v-prediction (SD 2.1 768's, diffusers' default for the type).

``config_folder``: a diffusers config folder beside the file (``NAME.config/``, for a model whose architecture
differs from its type's) or the type's shipped one (``single_file_configs``), written into the cache once."""

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
NAMES = {"v1": "Stable Diffusion 1.x", "v2": "Stable Diffusion 2.x", "xl_base": "SDXL", "xl_refiner": "the SDXL refiner"}
_HEADER_MAX = 100 << 20  # bytes: a safetensors header past this is no checkpoint's
_V_WORDS = ("v", "v_prediction", "v-prediction", "velocity")


@dataclass(frozen=True)
class Checkpoint:
    """What a single file holds: diffusers' model type (v1, v2, xl_base) and, for SD 2, its prediction type."""

    kind: str
    prediction: str = "epsilon"  # or "v_prediction"

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
    """The diffusers config folder ``path`` loads with: ``NAME.config/`` beside it, else its type's shipped one."""
    beside = path.with_name(path.stem + ".config")
    if (beside / "model_index.json").is_file():
        return beside
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
    pipe = getattr(diffusers, index["_class_name"]).from_single_file(str(path), config=str(config), local_files_only=True,
                                                                     torch_dtype=dtype, **extra)
    missing = [f"{name}.{key}" for name, module in pipe.components.items() if hasattr(module, "state_dict")
               for key, tensor in module.state_dict().items() if tensor.device.type == "meta"]
    if missing:
        raise RunError(f"{path.name} is an incomplete checkpoint ({len(missing)} weights missing, e.g. "
                       f"{quoted(missing[0])}): copy it again")
    return pipe


def _pickled_kind(path: Path) -> Checkpoint:
    """A .ckpt's checkpoint (its whole state dict is read: pickles have no header)."""
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    state = load_single_file_checkpoint(str(path), local_files_only=True)
    return _kind(path, {key: value for key, value in state.items() if hasattr(value, "shape")}, {})
