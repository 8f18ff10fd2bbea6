"""AUTOMATIC1111's img2img script "SD upscale": the init image upscaled, cut into overlapping tiles of the run's size,
each tile made again image to image, and the tiles laid back together with a linear blend over their overlaps.

What A1111 (1.10, ``scripts/sd_upscale.py`` with ``modules/images.py``'s ``split_grid`` / ``combine_grid``) does,
read from its behaviour, and what promptism does alike:
- The init image, at its own size (not resized to the run's: width and height are the tile's), is upscaled by the
  scale with the upscaler (``hires.a1111_upscale``: A1111's ``Upscaler.upscale``, each side ``int(side × scale)``
  rounded down to a multiple of 8). With the upscaler ``None`` A1111 does not upscale at all: the image stays its
  size, whatever the scale. Network upscalers need weights promptism has not got: refused, naming those it has.
- The tiles (``Tiling.of``): ``ceil((side − overlap) / (tile − overlap))`` of them across each side, spread evenly
  from one edge to the other (tile ``i`` at ``int(i × (side − tile) / (count − 1))``, the last moved back to end at
  the edge), so neighbours overlap by the overlap at least. Where the image is smaller than a tile, the tile reaches
  past it (A1111 crops outside the image: black) and is cut back when laid down.
- Each tile is made by img2img at the run's strength, steps, guidance and prompt. Seeds: A1111 gives image ``n`` of
  a request the seed ``seed + n`` and then sets the seed once per batch of tiles, one more each batch (each tile of a
  batch taking the batch's seed + its place). At its API's and UI's batch size of 1 that is tile ``k`` of an image
  of seed ``s``: ``s + k`` — promptism's rule, whatever the batches, so a tile is the image it would be alone; the
  engine batches tiles (``SdUpscale.batch``, the run's ``max_batch``, recorded so a rerun batches them alike: a
  batch changes the float reduction order, not the seeds).
- The tiles are laid down row by row (``Tiling.combined``): each over the one before through a mask rising
  linearly over the overlap's columns (``⌊i × 255 / overlap⌋``, Pillow's 8-bit blend), then each row over the rows
  above through the same ramp down the overlap's lines. Overlap 0 lays them edge to edge.
A run records the scale, overlap, upscaler, tile batch and the images' size (``ParamsRecord.sd_upscale*``; width and
height stay the tile's, as A1111's ``Size``); the images are the upscaled size. Torch-free but for ``run_tiles``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from journal.limits import pixel_limit

from ..errors import RunError, option, settings_without
from . import hires
from .hires import a1111_upscale, upscale_size
from .models import is_guided

UPSCALERS = hires.PIXEL  # A1111's upscalers of pixels that need no weights (its script takes no latent one)
DEFAULT_UPSCALER = "Lanczos"  # (A1111's UI preselects None, which leaves the image at its size)
DEFAULT_OVERLAP = 64  # A1111's UI's tile overlap
TILES_MAX = 1024  # tiles an image may be cut into (A1111 has no cap; 4× of 2048² in 512² tiles is 361)


def upscaler(name: str) -> str:
    """An upscaler SD upscale takes, by its A1111 name (any case); RunError naming those it takes."""
    return hires.upscaler(name, UPSCALERS, "SD upscale")


def made_size(size: tuple[int, int], scale: float, name: str) -> tuple[int, int]:
    """The size of the image the tiles cover, for an init image of ``size``: the upscaler's, or ``size`` for None."""
    return size if name == "None" else upscale_size(size, scale)


def check(options) -> None:
    """A run's SD upscale settings (``RunOptions``), as far as they are checked without the init image or a model."""
    if options.sd_upscale is None:
        settings_without("SD upscale", f"{option('sd-upscale')} SCALE (e.g. 2)",
                         [(name.replace("_", "-"), getattr(options, name))
                          for name in ("sd_upscale_overlap", "sd_upscale_upscaler")])
        return
    if not (math.isfinite(options.sd_upscale) and options.sd_upscale > 0):
        raise RunError(f"the SD upscale scale multiplies the init image's size: a number above 0 (A1111's Scale "
                       f"Factor, e.g. 2), not {options.sd_upscale:g}")
    if options.init_image is None:
        raise RunError(f"SD upscale upscales an init image: give {option('init-image')}, or leave out "
                       f"{option('sd-upscale')}")
    if options.mask is not None:
        raise RunError(f"SD upscale makes every tile of the whole image again; with {option('mask')} it would inpaint "
                       f"each tile: leave out one of them")
    if is_guided(options.model):
        raise RunError(f"SD upscale makes its tiles image to image with a diffusion model; the CLIP-guided backend "
                       f"does not: leave out {option('sd-upscale')}")
    if options.sd_upscale_overlap is not None and options.sd_upscale_overlap < 0:
        raise RunError(f"the SD upscale overlap is the tiles' overlap in pixels, 0 or more, not "
                       f"{options.sd_upscale_overlap}")
    if options.sd_upscale_upscaler is not None:
        upscaler(options.sd_upscale_upscaler)
    if options.size is not None:
        check_tile(*options.size, overlap_of(options))


def overlap_of(options) -> int:
    return DEFAULT_OVERLAP if options.sd_upscale_overlap is None else options.sd_upscale_overlap


def check_tile(width: int, height: int, overlap: int) -> None:
    """A tile of ``width``×``height`` (the run's size) overlapping its neighbours by ``overlap``."""
    if overlap >= min(width, height):
        raise RunError(f"the SD upscale overlap of {overlap} pixels leaves nothing of a {width}x{height} tile (the run's "
                       f"size) to move on by: use an {option('sd-upscale-overlap')} under {min(width, height)}, or a "
                       f"larger {option('size')}")


def check_image(size: tuple[int, int], scale: float, name: str) -> tuple[int, int]:
    """The size of the image an init image of ``size`` upscales to: RunError where it is no image or over the pixel
    limit."""
    wide, high = size[0] * scale, size[1] * scale  # (the upscaler's first resize: the most pixels it holds)
    if name != "None" and wide * high > pixel_limit():
        most = math.sqrt(pixel_limit() / (size[0] * size[1]))
        shown = f"{wide:.0f}x{high:.0f}" if wide * high < 1e30 else "more pixels than that"
        raise RunError(f"SD upscale {scale:g} makes the {size[0]}x{size[1]} init image {shown}, over the limit of "
                       f"{pixel_limit():,} pixels (max_image_pixels in config.toml): use {option('sd-upscale')} "
                       f"{math.floor(most * 100) / 100:g} or less")
    w, h = made_size(size, scale, name)
    if min(w, h) < 8:
        raise RunError(f"SD upscale {scale:g} makes the {size[0]}x{size[1]} init image {max(w, 0)}x{max(h, 0)} (A1111 "
                       f"rounds each side down to a multiple of 8): too small; use a larger {option('sd-upscale')}")
    return w, h


def check_tiles(size: tuple[int, int], tile: tuple[int, int] | None, overlap: int) -> None:
    """The upscaled image of ``size`` cut into tiles of ``tile`` (None: the model's own size, checked as the run makes
    them): RunError where the overlap is as wide as the image (no tile would fit) or the tiles too many."""
    if min(size) <= overlap:
        raise RunError(f"the SD upscale overlap of {overlap} pixels is as wide as the {size[0]}x{size[1]} upscaled "
                       f"image: use a smaller {option('sd-upscale-overlap')}")
    if tile is not None:
        check_tile(*tile, overlap)
        Tiling.of(size, tile, overlap).checked()


def params(options, init_size: tuple[int, int] | None) -> dict:
    """What a run records of its SD upscale (none without it): every setting, the defaults resolved, the tiles per
    pipeline call (the run's batch size) and the size of the images, from the init image's ``init_size``."""
    if options.sd_upscale is None or init_size is None:
        return {}
    name = upscaler(options.sd_upscale_upscaler or DEFAULT_UPSCALER)
    overlap = overlap_of(options)
    size = check_image(init_size, options.sd_upscale, name)
    check_tiles(size, options.size, overlap)
    return {"sd_upscale": options.sd_upscale, "sd_upscale_overlap": overlap, "sd_upscale_upscaler": name,
            "sd_upscale_batch": options.max_batch, "sd_upscale_size": list(size)}


@dataclass(frozen=True)
class Tiling:
    """Where the tiles of an image lie: ``rows`` (each its top and its tiles' left edges), tile size and overlap."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    overlap: int
    rows: tuple[tuple[int, tuple[int, ...]], ...]

    @classmethod
    def of(cls, size: tuple[int, int], tile: tuple[int, int], overlap: int) -> Tiling:
        """A1111's ``split_grid`` arithmetic for an image of ``size``."""
        xs = _starts(size[0], tile[0], overlap)
        return cls(*size, *tile, overlap, tuple((y, xs) for y in _starts(size[1], tile[1], overlap)))

    @property
    def count(self) -> int:
        return sum(len(xs) for _, xs in self.rows)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Each tile's box in the image, row by row."""
        return [(x, y, x + self.tile_w, y + self.tile_h) for y, xs in self.rows for x in xs]

    def crops(self, image) -> list:
        """The tiles of ``image`` (its size this tiling's), row by row; black where one reaches past the image."""
        return [image.crop(box) for box in self.boxes()]

    def checked(self) -> Tiling:
        """This tiling, or RunError where it has more tiles than a run makes (``TILES_MAX``)."""
        if self.count > TILES_MAX:
            raise RunError(f"SD upscale would cut the {self.width}x{self.height} image into {self.count:,} tiles of "
                           f"{self.tile_w}x{self.tile_h}, over promptism's {TILES_MAX:,}: use a larger {option('size')} "
                           f"(the tile), a smaller {option('sd-upscale-overlap')} or {option('sd-upscale')}")
        return self

    def combined(self, tiles: list) -> object:
        """The tiles (PIL RGB images, in ``crops``' order) laid together: A1111's ``combine_grid``."""
        import numpy as np
        from PIL import Image

        ramp = (np.arange(self.overlap, dtype=np.int64) * 255 // max(self.overlap, 1)).astype(np.uint8)
        across = Image.fromarray(np.ascontiguousarray(np.broadcast_to(ramp[None, :], (self.tile_h, self.overlap))), "L")
        down = Image.fromarray(np.ascontiguousarray(np.broadcast_to(ramp[:, None], (self.overlap, self.width))), "L")
        out = Image.new("RGB", (self.width, self.height))
        placed = iter(tiles)
        for y, xs in self.rows:
            band = Image.new("RGB", (self.width, self.tile_h))
            for x in xs:
                _laid(band, next(placed), (x, 0), across, self.overlap, first=x == 0, along=0)
            _laid(out, band, (0, y), down, self.overlap, first=y == 0, along=1)
        return out


def _starts(side: int, tile: int, overlap: int) -> tuple[int, ...]:
    """The tiles' offsets along a side: their count ``ceil((side − overlap) / (tile − overlap))``, spread evenly from
    0, each moved back where it would reach the edge or past it, so the last ends at the edge."""
    count = math.ceil((side - overlap) / (tile - overlap))
    step = (side - tile) / (count - 1) if count > 1 else 0
    return tuple(side - tile if int(i * step) + tile >= side else int(i * step) for i in range(count))


def _laid(canvas, piece, at: tuple[int, int], ramp, overlap: int, *, first: bool, along: int) -> None:
    """``piece`` pasted onto ``canvas`` at ``at``: whole where it is the first of its row (or column of rows), else
    its first ``overlap`` columns (``along`` 0) or lines (1) through ``ramp`` and the rest over what is there."""
    if first or overlap == 0:
        canvas.paste(piece, at)
        return
    w, h = piece.size
    near = (0, 0, overlap, h) if along == 0 else (0, 0, w, overlap)
    rest = (overlap, 0, w, h) if along == 0 else (0, overlap, w, h)
    canvas.paste(piece.crop(near), at, ramp)
    canvas.paste(piece.crop(rest), (at[0] + overlap, at[1]) if along == 0 else (at[0], at[1] + overlap))


def tile_seed(seed: int, k: int) -> int:
    """The seed of tile ``k`` (row by row) of an image of seed ``seed``: A1111's at batch size 1."""
    return seed + k


@dataclass(frozen=True)
class SdUpscale:
    """A run's SD upscale as its engine makes it (from its ``ParamsRecord``)."""

    scale: float
    overlap: int
    upscaler: str
    batch: int  # tiles per pipeline call
    size: tuple[int, int]  # the images'

    @classmethod
    def of(cls, params) -> SdUpscale | None:
        if not getattr(params, "sd_upscale", None):
            return None
        return cls(params.sd_upscale, params.sd_upscale_overlap or 0, params.sd_upscale_upscaler or DEFAULT_UPSCALER,
                   params.sd_upscale_batch or 1, tuple(params.sd_upscale_size))

    def tiling(self, tile: tuple[int, int]) -> Tiling:
        """The tiles of the upscaled image at ``tile`` (a cell's size: the model's own where the run gives none, so
        checked here too): RunError as ``check_tiles``."""
        check_tiles(self.size, tile, self.overlap)
        return Tiling.of(self.size, tile, self.overlap)

    def source(self, init) -> object:
        """The image the tiles are cut from: the init image (RGB, its own size) upscaled as A1111 upscales it."""
        image = init if self.upscaler == "None" else a1111_upscale(init, self.upscaler, self.scale)
        if image.size != self.size:  # (the recorded size is this init image's: found again unchanged, by its hash)
            raise RunError(f"SD upscale: the init image makes {image.width}x{image.height}, not the "
                           f"{self.size[0]}x{self.size[1]} the run recorded")
        return image
