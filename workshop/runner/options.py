"""What a run is asked to do — model, steps, guidance, size, init image, batch size, scorer … — and the checks on
those settings that need no model (so a dry run and the TUI's composer can make them without loading torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from journal.text import quoted

from .errors import RunError

if TYPE_CHECKING:
    from .guided import GuidedSettings

DEFAULT_STRENGTH = 0.75


@dataclass(frozen=True)
class RunOptions:
    model: str = "shapes"
    steps: int | None = None  # default: the model's (see models.BUILTINS)
    guidance: float | None = None  # default: the model's (see models.BUILTINS)
    size: tuple[int, int] | None = None  # default: the model's native size
    init_image: str | None = None  # a path, or "#N" for experiment N's first image
    strength: float | None = None  # img2img with a diffusion model; default DEFAULT_STRENGTH
    max_batch: int = 8
    clip: str | None = None  # default: the model's own scorer (shapes-clip for shapes), else none; "none": no scoring
    allow_pickle: bool = False
    allow_download: bool = False
    device: str = "auto"
    preview_every: int = 0
    co2_g_per_kwh: float = 400.0
    guided: GuidedSettings | None = None  # the CLIP-guided backend's settings (default: GuidedSettings())
    animate_every: int = 0  # CLIP-guided: keep every k-th frame as an animation (0: none)


def parse_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise RunError(f"size {quoted(text)}: write WIDTHxHEIGHT, e.g. 512x512")
    return int(width), int(height)


def check_options(options: RunOptions) -> None:
    if options.steps is not None and options.steps < 1:
        raise RunError(f"steps must be 1 or more, not {options.steps}")
    if options.size is not None:
        w, h = options.size
        if w <= 0 or h <= 0 or w % 8 or h % 8:
            raise RunError(f"size {w}x{h} is not a multiple of 8: use e.g. {max(8, w // 8 * 8)}x{max(8, h // 8 * 8)}")
    if options.guidance is not None and (not math.isfinite(options.guidance) or options.guidance < 0):
        raise RunError(f"guidance must be a number of 0 or more, not {options.guidance}")
    if options.strength is not None and not 0 < options.strength <= 1:
        raise RunError(f"strength must be above 0 and at most 1, not {options.strength}")
    if options.max_batch < 1:
        raise RunError(f"the batch size (--max-batch, max_batch) must be 1 or more, not {options.max_batch}")
    if options.animate_every < 0:
        raise RunError(f"--animate takes a number of steps between frames, 1 or more, not {options.animate_every}")
    if options.guided:
        options.guided.check()
