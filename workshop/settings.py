"""User settings: ``config.toml`` in the user config directory (``$PROMPTISM_CONFIG`` names another file).

    model = "shapes"            # default model for generate / grid (the built-in offline model)
    clip = "ViT-B-32:/models/clip.safetensors"   # scorer (ARCH:CHECKPOINT, ARCH:PRETRAINED_TAG or "none");
                                                 # unset: the model's own (shapes-clip for shapes), else no scoring
    max_batch = 8               # images per pipeline call
    co2_g_per_kwh = 400         # grid carbon intensity for the CO2 estimate
    model_paths = ["/models/my-finetune"]        # local diffusers folders to offer in `promptism models`
    max_image_pixels = 67108864  # the largest image (width × height) promptism opens: 64 MP; larger ones are refused
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from journal.images import DEFAULT_MAX_PIXELS

from .paths import APP


@dataclass(frozen=True)
class Settings:
    model: str = "shapes"
    clip: str | None = None
    max_batch: int = 8
    co2_g_per_kwh: float = 400.0
    model_paths: tuple[str, ...] = field(default_factory=tuple)
    max_image_pixels: int = DEFAULT_MAX_PIXELS


def config_file() -> Path:
    return Path(os.environ.get("PROMPTISM_CONFIG") or platformdirs.user_config_path(APP) / "config.toml")


def load_settings() -> Settings:
    path = config_file()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    known = {f for f in Settings.__dataclass_fields__}
    if unknown := sorted(set(raw) - known):
        raise ValueError(f"{path}: unknown setting {unknown[0]!r}; the settings are {', '.join(sorted(known))}")
    if "model_paths" in raw:
        raw["model_paths"] = tuple(raw["model_paths"])
    return Settings(**raw)
