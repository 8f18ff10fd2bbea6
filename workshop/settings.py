"""User settings: ``config.toml`` in the user config directory (``$PROMPTISM_CONFIG`` names another file).

    model = "shapes"            # default model for generate / grid (the built-in offline model)
    clip = "ViT-B-32:/models/clip.safetensors"   # scorer (ARCH:CHECKPOINT, ARCH:PRETRAINED_TAG or "none");
                                                 # unset: the model's own (shapes-clip for shapes), else no scoring
    max_batch = 8               # images per pipeline call
    co2_g_per_kwh = 400         # grid carbon intensity for the CO2 estimate
    model_paths = ["/models/my-finetune"]        # local diffusers folders to offer in `promptism models` (which
                                                 # names, on stderr, each one it leaves out, and why)
    max_image_pixels = 67108864  # the largest image (width × height) promptism opens or makes: 64 MP
    service = true              # generate / grid / rerun / resume run through the service (started when none
                                # runs); false: in-process, as --local (env PROMPTISM_SERVICE=off does the same)
    idle_timeout = 15           # minutes an idle service waits before it exits (frees the GPU)
    max_queue = 100             # jobs the service holds queued; more are refused
    compile = false             # torch.compile the UNet/transformer (the first batch of each shape compiles; kept
                                # warm by the service, cached on disk); --compile / --no-compile for one run
    channels_last = false       # channels-last memory format for the UNet and VAE (--channels-last / --no-…)
    tf32 = false                # TF32 float32 matmuls on Ampere+ GPUs (--tf32 / --no-tf32)
    sampler = "DPM++ 2M Karras"  # diffusion models' sampler by its AUTOMATIC1111 name (`promptism samplers`); unset
                                # or "default": the model folder's own scheduler. --sampler and a spec's [params]
                                # sampler win over it (--sampler default: the model's own for one run)
    ray = "auto"                # the service deals batches to Ray workers, one per GPU: "auto" joins the cluster
                                # $RAY_ADDRESS names or `ray start` began here, else starts a local one over this
                                # machine's GPUs (stopped with the service); an address
                                # (HOST:PORT, ray://HOST:10001) joins that cluster; unset or "off": the service's
                                # own device (`promptism serve --ray` for one start). Needs `pip install promptism[ray]`

Every setting's type and range is checked when the file is read: a bad file is one SettingsError line naming the
file, the setting and what it takes.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import platformdirs

from journal.limits import DEFAULT_MAX_PIXELS
from journal.text import quoted

from .paths import APP
from .errors import PromptismError, RunError
from .samplers import OWN, SAMPLERS, sampler


class SettingsError(PromptismError, ValueError):
    """``config.toml`` cannot be read or holds a bad setting; the message names the file and the fix."""

    code = "bad_settings"


@dataclass(frozen=True)
class Settings:
    model: str = "shapes"
    clip: str | None = None
    max_batch: int = 8
    co2_g_per_kwh: float = 400.0
    model_paths: tuple[str, ...] = field(default_factory=tuple)
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    service: bool = True
    idle_timeout: float = 15.0
    max_queue: int = 100
    compile: bool = False
    channels_last: bool = False
    tf32: bool = False
    sampler: str | None = None  # its AUTOMATIC1111 name as promptism spells it, or "default"
    ray: str | None = None  # "auto", a cluster's address, or None ("off"): the service's own device
    a1111: str | None = None  # an AUTOMATIC1111 install's folder: its checkpoints, LoRAs, embeddings and VAEs
    comfyui: str | None = None  # a ComfyUI install's folder: the same, in its own subfolders (runner/model_files.py)


def _text(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _whole_from_1(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _number_from_0(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else None


def _positive(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None


def _flag(value) -> bool | None:
    return value if isinstance(value, bool) else None


def _sampler(value) -> str | None:
    """A sampler's name as promptism spells it ("dpm++ 2m karras" → "DPM++ 2M Karras"), or "default"."""
    if not _text(value):
        return None
    if value.strip().lower() == OWN:
        return OWN
    try:
        return sampler(value).name
    except RunError:
        return None


def _ray(value) -> str | None:
    """ "auto", a cluster's address, or "off" (kept as None: no Ray)."""
    if not _text(value) or any(c.isspace() for c in value.strip()):
        return None
    return value.strip()


def ray_address(value: str | None) -> str | None:
    """The Ray address a setting or ``--ray`` names; None for "off"."""
    return None if value is None or value.lower() == "off" else value


def _texts(value) -> tuple[str, ...] | None:
    return tuple(value) if isinstance(value, list) and all(_text(v) for v in value) else None


#: Each setting: what it must be (said in the error), and the check that returns its value or None when it is bad.
_CHECKS: dict[str, tuple[str, Callable]] = {
    "model": ("a model name (text)", _text),
    "clip": ("a CLIP scorer name (text), or \"none\"", _text),
    "max_batch": ("a whole number of 1 or more", _whole_from_1),
    "co2_g_per_kwh": ("a number of 0 or more", _number_from_0),
    "model_paths": ("a list of folder paths (text)", _texts),
    "max_image_pixels": ("a whole number of pixels, 1 or more", _whole_from_1),
    "service": ("true or false", _flag),
    "idle_timeout": ("a number of minutes above 0", _positive),
    "max_queue": ("a whole number of 1 or more", _whole_from_1),
    "compile": ("true or false", _flag),
    "channels_last": ("true or false", _flag),
    "tf32": ("true or false", _flag),
    "sampler": ("an AUTOMATIC1111 sampler name (`promptism samplers`): " + ", ".join(SAMPLERS) + ", alone or with a "
                "schedule type (\"DPM++ 2M Karras\"), or \"default\"",
                _sampler),
    "ray": ("\"auto\", a Ray cluster's address (HOST:PORT or ray://HOST:10001), or \"off\"", _ray),
    "a1111": ("the path of an AUTOMATIC1111 install's folder (stable-diffusion-webui)", _text),
    "comfyui": ("the path of a ComfyUI install's folder", _text),
}


def config_file() -> Path:
    """``$PROMPTISM_CONFIG``, which must name a file that is there (a typo in it is said, not taken for "no
    settings"), else ``config.toml`` in the user config directory, which may be absent."""
    if named := os.environ.get("PROMPTISM_CONFIG"):
        path = Path(named).expanduser()
        if not path.is_file():
            raise SettingsError(f"PROMPTISM_CONFIG names {quoted(named)}, which is not a file: create it (it may be "
                                "empty) or unset PROMPTISM_CONFIG")
        return path
    return platformdirs.user_config_path(APP) / "config.toml"


def load_settings() -> Settings:
    """The settings in ``config_file()`` over the defaults; SettingsError for a file that is not valid TOML, an
    unknown setting, or a value of the wrong type or range."""
    path = config_file()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path} ({exc.strerror or exc}); fix or remove it") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    known = [f.name for f in fields(Settings)]
    if unknown := sorted(set(raw) - set(known)):
        raise SettingsError(f"{path}: unknown setting {quoted(unknown[0])}; the settings are {', '.join(known)}")
    values = {}
    for key, value in raw.items():
        what, check = _CHECKS[key]
        values[key] = check(value)
        if values[key] is None:
            raise SettingsError(f"{path}: {key} must be {what}, not {quoted(value)}")
    if "ray" in values:
        values["ray"] = ray_address(values["ray"])
    return Settings(**values)


def service_enabled(local: bool = False, settings: Settings | None = None) -> bool:
    """Whether jobs go to the service: not with --local, $PROMPTISM_SERVICE=off or ``service = false``."""
    given = os.environ.get("PROMPTISM_SERVICE", "")
    if given.lower() not in SERVICE_ON + SERVICE_OFF:
        raise SettingsError(f"PROMPTISM_SERVICE is {quoted(given)}: set it to on or off (or unset it)")
    if local or given.lower() in SERVICE_OFF:
        return False
    return (settings or load_settings()).service


SERVICE_ON, SERVICE_OFF = ("", "on", "1", "true", "yes"), ("off", "0", "false", "no")
