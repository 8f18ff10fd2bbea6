"""A VAE in place of a model's own, as A1111's ``sd_vae`` setting (``--vae NAME``) swaps one in: found among the
installs' VAEs (``models/VAE``, ComfyUI's ``models/vae``) by the names A1111 gives them — the file's name with or
without its suffix, its path under the folder, its hash — or given as a path: a ``.safetensors`` file (a ``.ckpt`` /
``.pt`` only with ``allow_pickle``: unpickling runs code) or a diffusers ``AutoencoderKL`` folder. A1111's
"Automatic" and "None" are the model's own (``options.own_vae``).

A file holds weights only: they are loaded into the model's own VAE architecture and configuration (its scaling
factor included), converted from the original layout by diffusers' own conversion, offline — so a file whose weights
do not fit that architecture is one line. An SDXL VAE's weights fit an SD 1.x VAE (the same architecture), and load
there as they do in A1111; a folder's VAE brings its own configuration, so a scaling factor or latent channels other
than the model's are refused.

A run records its VAE as ``"NAME: HASH"`` (A1111's ``VAE`` and ``VAE hash``: the first 10 hex digits of the file's
sha256); rerun and resume find it by that name, else by that hash, and refuse in one line a file that is missing or
changed. The swapped VAE lives in a shallow copy of the pipeline (``with_vae``): the warm pipeline, shared between
runs, keeps its own. Loaded VAEs are kept warm like pipelines. The finding is torch-free (the checks run it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from journal.text import quoted

from ..errors import RunError, option
from ..settings import load_settings
from .model_files import PICKLED, find, find_all, model_files, short_hash
from .single_file import header_keys

_VAE_PREFIXES = ("encoder.", "decoder.", "first_stage_model.", "vae.", "quant_conv.", "post_quant_conv.")
_FOLDER_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass(frozen=True)
class VaeFile:
    """A VAE to load: the name a run records it by (an install's A1111 name with its suffix, else the absolute path)
    and the file, or a diffusers VAE folder."""

    name: str
    path: Path

    @property
    def folder(self) -> bool:
        return self.path.is_dir()

    @property
    def weights(self) -> Path:
        """The file that holds its weights (a folder's own weights file)."""
        if not self.folder:
            return self.path
        return next((self.path / w for w in _FOLDER_WEIGHTS if (self.path / w).is_file()), self.path / _FOLDER_WEIGHTS[0])

    @property
    def pickled(self) -> bool:
        return self.weights.suffix.lower() in PICKLED

    def recorded(self) -> str:
        """``NAME: HASH``, as a run records it."""
        return f"{self.name}: {short_hash(self.weights)}"


def find_vae(name: str, *, allow_pickle: bool) -> VaeFile:
    """The VAE ``name`` means (an install's, by A1111's names, or a path); RunError in one line for one that is not
    there, a pickle without ``allow_pickle``, or a file that is no VAE."""
    path = Path(name).expanduser()
    if path.exists():  # (an install's file given by its path is named as the install names it)
        installed = [f for f in model_files(load_settings(), "vae") if path.is_file() and f.path.resolve() == path.resolve()]
        found = VaeFile(install_name(installed[0]), installed[0].path) if installed else \
            VaeFile(str(path.absolute()), path.absolute())
    elif path.is_absolute() or name.startswith(("~", "./", "../")):
        raise RunError(f"{option('vae')} {quoted(name)}: no such file or folder")
    else:
        try:
            file = find(load_settings(), "vae", name)
        except RunError as exc:
            raise RunError(f"{option('vae')}: {exc.message}") from None
        found = VaeFile(install_name(file), file.path)
    check_vae(found, allow_pickle=allow_pickle)
    return found


def install_name(file) -> str:
    """An install's VAE by the name A1111 writes (``VAE:``: its file name, under its subfolder where it has one),
    where that name finds it alone; else its path."""
    name = f"{file.name}{file.path.suffix}"
    return name if [f.path for f in find_all(load_settings(), "vae", name)] == [file.path] else str(file.path)


def check_vae(vae: VaeFile, *, allow_pickle: bool) -> None:
    """RunError for a VAE that cannot load: a pickle without ``allow_pickle``, a folder without a VAE, a safetensors
    file whose header holds no VAE (a whole checkpoint, a LoRA, a damaged file)."""
    where = vae.path.name
    if vae.folder:
        config = vae.path / "config.json"
        try:
            kind = json.loads(config.read_text(encoding="utf-8")).get("_class_name")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind != "AutoencoderKL" or not vae.weights.is_file():
            raise RunError(f"{option('vae')} {where} is not a diffusers VAE folder (config.json of an AutoencoderKL and "
                           "its weights): pass a VAE file, or a pipeline's vae/ folder")
    if vae.pickled and not allow_pickle:
        raise RunError(f"the VAE {vae.weights.name} is a pickle file, which can run code when loaded: use its "
                       f".safetensors, or pass {option('allow-pickle')} if you trust where it came from")
    if vae.folder or vae.pickled:
        return
    if vae.path.suffix.lower() != ".safetensors":
        raise RunError(f"{option('vae')} {where} is no VAE file (.safetensors, or .ckpt / .pt with "
                       f"{option('allow-pickle')})")
    keys = header_keys(vae.path)
    if not keys:
        raise RunError(f"{option('vae')} {where} is not a readable safetensors file: copy it again")
    if any(k.startswith("model.diffusion_model.") for k in keys):
        raise RunError(f"{option('vae')} {where} is a whole checkpoint, not a VAE: pass it as {option('model')}, and a "
                       "VAE from models/VAE as --vae")
    if not any(k.startswith(_VAE_PREFIXES) for k in keys):
        raise RunError(f"{option('vae')} {where} holds no VAE (no encoder or decoder weights): pass a VAE file")


def recorded_vae(text: str, what: str) -> VaeFile:
    """The VAE a run recorded (``NAME: HASH``) for ``what`` ("#3", "run …") to be made again with: by its name, else
    an install's VAE with its hash; RunError naming the file where it is missing or changed. Its hash is the one that
    was trusted, so a pickle loads again."""
    name, _, wanted = text.rpartition(": ")
    name = name or text
    try:
        found = find_vae(name, allow_pickle=True)
    except RunError:
        found = None
    if found is not None and (not wanted or short_hash(found.weights) == wanted):
        return found
    by_hash = find_all(load_settings(), "vae", wanted) if wanted else []
    if len(by_hash) == 1:
        return VaeFile(install_name(by_hash[0]), by_hash[0].path)
    if found is not None:
        raise RunError(f"the VAE {name} has changed since {what} was made (hash {short_hash(found.weights)}, then "
                       f"{wanted}): its images would differ; put the file it was made with back")
    raise RunError(f"the VAE {name} (hash {wanted}) that {what} was made with is not here: put it back (in "
                   "models/VAE of an install config.toml names, or where it was)")


# ---------------------------------------------------------------------------------------------------- loading (torch)

def load_vae(vae: VaeFile, pipe, *, channels_last: bool = False):
    """``vae`` as an AutoencoderKL for ``pipe`` (on its VAE's device and dtype), kept warm; RunError in one line for
    weights that do not fit the model's VAE."""
    from .models import VAES

    own = pipe.vae
    stat = vae.weights.stat()
    key = ("vae", str(vae.weights), stat.st_size, stat.st_mtime_ns, str(own.device), str(own.dtype), channels_last,
           json.dumps(dict(own.config), sort_keys=True, default=str))
    return VAES.get(key, f"VAE {vae.path.name} on {own.device}", own.device,
                    lambda: _load(vae, own, channels_last=channels_last))


def _load(vae: VaeFile, own, *, channels_last: bool):
    import torch
    from diffusers import AutoencoderKL

    if vae.folder:
        made = AutoencoderKL.from_pretrained(str(vae.path), local_files_only=True, use_safetensors=not vae.pickled)
        for key in ("latent_channels", "scaling_factor"):
            if made.config.get(key) != own.config.get(key):
                raise RunError(f"the VAE {vae.path.name} is for another kind of model ({key.replace('_', ' ')} "
                               f"{made.config.get(key)}; this model's VAE has {own.config.get(key)}): pass a VAE made "
                               "for it")
    else:
        made = AutoencoderKL.from_config(own.config)
        state = _state(vae, own.config)
        try:
            missing, unexpected = made.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a shape that differs: another architecture's VAE
            detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc)[:160])
            raise RunError(f"the VAE {vae.path.name} does not fit this model's VAE ({detail[:200]}): pass a VAE made "
                           "for it") from None
        if missing:
            raise RunError(f"the VAE {vae.path.name} does not fit this model's VAE ({len(missing)} of its weights "
                           f"missing, e.g. {quoted(missing[0])}): pass a VAE made for it")
    made = made.to(device=own.device, dtype=own.dtype).eval().requires_grad_(False)
    if channels_last:
        made.to(memory_format=torch.channels_last)
    return made


def _state(vae: VaeFile, config) -> dict:
    """A VAE file's weights in diffusers' layout: the original (LDM) layout converted as diffusers converts a
    checkpoint's VAE, a diffusers-layout file as it is."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint, load_single_file_checkpoint

    try:
        state = load_single_file_checkpoint(str(vae.weights), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line
        raise RunError(f"the VAE {vae.path.name} cannot be read ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}): "
                       "copy it again") from None
    state = {k: v for k, v in state.items() if hasattr(v, "shape")}
    if any(".down_blocks." in k or ".up_blocks." in k for k in state):  # diffusers' own layout
        prefix = "vae." if any(k.startswith("vae.") for k in state) else ""
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return convert_ldm_vae_checkpoint(state, config)


def with_vae(pipe, vae):
    """A shallow copy of ``pipe`` with ``vae`` in place of its own (the pipeline itself keeps its own)."""
    import copy

    made = copy.copy(pipe)
    made.vae = vae
    return made
