"""The pixel limit: the most pixels (width × height) an image may declare to be opened at all, or a run may make
(``max_image_pixels`` setting). Apart from ``images.py`` so that setting it imports no Pillow (the command line sets
it before it knows whether anything will open an image); Pillow's own check is kept in step with it."""

from __future__ import annotations

import sys

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # 64 MP: far beyond what any pipeline makes; a decompression bomb is refused
_limit = DEFAULT_MAX_PIXELS


def set_pixel_limit(pixels: int) -> None:
    global _limit
    _limit = int(pixels)
    if (pil := sys.modules.get("PIL.Image")) is not None:
        pil.MAX_IMAGE_PIXELS = _limit  # Pillow's own check then agrees with ours (images.py sets it on import)


def pixel_limit() -> int:
    return _limit
