"""Sixel encoding of paletted pixels (DEC's graphics in a DCS string; xterm, foot, mlterm, WezTerm, tmux 3.4+ …).

Every colour register used is defined first (``#n;2;r;g;b``) and then selected (``#n``) before its pixels: a
definition alone does not select the register in xterm, which then draws the data in whatever colour was selected
before — a streak along the top of an image and a dark band over the first row of each new colour. Zero bits are left
as they are (P2 = 1) and the last band ends without a graphics newline, so an image covers exactly its own pixels.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
from PIL import Image

BAND = 6  # pixel rows per sixel
_WEIGHTS = (1 << np.arange(BAND, dtype=np.uint8))[:, None]  # bit 0 is the band's top row
_RUN = re.compile(rb"(.)\1{3,}")  # 4+ equal sixels are shorter as !count<char>


def palettize(image: Image.Image, colors: int = 256) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """An RGB image as a 2-D array of palette indices and the palette (at most ``colors`` entries)."""
    paletted = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    flat = paletted.getpalette() or []
    palette = [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]
    return np.asarray(paletted, dtype=np.uint8), palette  # type: ignore[return-value]


def _percent(value: int) -> int:
    return (value * 100 + 127) // 255


def _run_length(data: bytes) -> bytes:
    return _RUN.sub(lambda m: b"!%d%c" % (len(m.group(0)), m.group(1)[0]), data)


def encode(indices: np.ndarray, palette: Sequence[tuple[int, int, int]]) -> str:
    """A complete sixel string (DCS … ST) drawing ``indices`` (rows × columns of palette indices) at the cursor."""
    height, width = indices.shape
    used = np.unique(indices)
    out = [f'\x1bP0;1;0q"1;1;{width};{height}']
    out += [f"#{c};2;{_percent(palette[c][0])};{_percent(palette[c][1])};{_percent(palette[c][2])}" for c in used]
    bands = []
    for top in range(0, height, BAND):
        band = indices[top:top + BAND]
        weights = _WEIGHTS[:len(band)]
        passes = []
        for c in np.unique(band):
            bits = ((band == c) * weights).sum(axis=0, dtype=np.uint8)
            last = int(np.flatnonzero(bits)[-1]) + 1
            passes.append(b"#%d" % c + _run_length((bits[:last] + 63).tobytes()))
        bands.append(b"$".join(passes))  # $: back to the band's start for the next colour
    out.append(b"-".join(bands).decode("ascii"))  # -: down to the next band
    out.append("\x1b\\")
    return "".join(out)


def image_to_sixel(image: Image.Image) -> str:
    """An RGB image as one sixel string."""
    indices, palette = palettize(image)
    return encode(indices, palette)
