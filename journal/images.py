"""Image files the journal stores or publishes: decoded, checked, and re-encoded with no metadata at all — PNG for
images, GIF for animations."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from .errors import InvalidInput
from .files import open_regular
from .limits import pixel_limit
from .text import visible

Image.MAX_IMAGE_PIXELS = pixel_limit()  # (limits.set_pixel_limit keeps it in step from now on)


@dataclass(frozen=True)
class CleanImage:
    """A PNG encoding of an image's pixels alone, and facts about it."""

    data: bytes
    sha256: str
    width: int
    height: int
    pixels: str | None = None  # ``pixel_hash`` of what was encoded (a PNG's)


def pixel_hash(im: Image.Image, raw: bytes | None = None) -> str:
    """sha256 of the decoded pixels (mode, size and bytes): the same picture gives the same hash whatever file or
    encoder it came from — how an import knows an image the journal has (``raw``: ``im.tobytes()``, if at hand)."""
    return hashlib.sha256(f"{im.mode} {im.width}x{im.height}\n".encode() + (im.tobytes() if raw is None else raw)).hexdigest()


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image, or raise InvalidInput naming the file. An image that declares more pixels than
    the limit is refused before a byte of it is decoded."""
    with _opening(path, "an image", "a PNG, JPEG or WebP") as im:
        im.load()
        return im.copy() if im.mode in ("1", "L", "LA", "RGB", "RGBA", "I;16") else im.convert("RGBA" if _has_alpha(im) else "RGB")


@contextlib.contextmanager
def _opening(path: Path, what: str, hint: str) -> Iterator[Image.Image]:
    """``Image.open`` with its size checked against the pixel limit, every failure one InvalidInput naming the file."""
    shown = visible(str(path), keep_newlines=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow only warns between 1× and 2× its limit
            with _regular_file(path, what) as file, Image.open(file) as im:
                width, height = im.size
                if width * height > pixel_limit():
                    raise Image.DecompressionBombError(f"{width}x{height}")
                yield im
    except FileNotFoundError:
        raise InvalidInput(f"{shown}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(f"{shown} declares {_size(path)}, over the limit of {pixel_limit() / 2**20:g} megapixels (a decompression "
                           "bomb?); if it is genuine, raise max_image_pixels in config.toml") from None
    except ValueError as exc:
        if any(bomb in str(exc).lower() for bomb in ("decompressed data too large", "too much memory used in text chunks")):
            raise InvalidInput(f"{shown} carries a metadata chunk too large to read (a decompression bomb?); re-save the "
                               "image without its metadata") from None
        raise InvalidInput(f"{shown} is not {what} Pillow can read (ValueError); pass {hint}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInput(f"{shown} is not {what} Pillow can read ({exc.__class__.__name__}); pass {hint}") from None


def _regular_file(path: Path, what: str):
    """``path`` opened if it is a regular file (``files.open_regular``: a FIFO, a device or a folder is refused at
    once); an open file is used as it is."""
    return open_regular(path, f"{what} file") if isinstance(path, (str, os.PathLike)) else contextlib.nullcontext(path)


def _size(path: Path) -> str:
    """The pixel size an image file declares, read from its header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as im:
                    return f"{im.width}×{im.height} pixels"
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except Exception:  # noqa: BLE001 - only for the message
        return "more pixels than that"


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def clean_png(im: Image.Image) -> CleanImage:
    """Encode only the pixels: no text chunks, EXIF, XMP, ICC profile or any other ancillary data."""
    raw = im.tobytes()
    bare = Image.frombytes(im.mode, im.size, raw)  # a fresh image carries an empty .info
    buf = io.BytesIO()
    bare.save(buf, format="PNG")
    data = buf.getvalue()
    return CleanImage(data, hashlib.sha256(data).hexdigest(), im.width, im.height, pixel_hash(im, raw))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


FRAME_MS = 100  # animations play at 10 frames a second


def clean_gif(frames: list[Image.Image]) -> CleanImage:
    """An animated GIF of ``frames`` (looping, 10 fps), pixels only: no comment or other extension blocks."""
    bare = [Image.frombytes("RGB", f.size, f.convert("RGB").tobytes()) for f in frames]
    buf = io.BytesIO()
    bare[0].save(buf, format="GIF", save_all=True, append_images=bare[1:], duration=FRAME_MS, loop=0)
    data = buf.getvalue()
    return CleanImage(data, hashlib.sha256(data).hexdigest(), bare[0].width, bare[0].height)


def open_frames(path: Path, max_frames: int = 1000) -> list[Image.Image]:
    """Every frame of an animation (at most ``max_frames``), decoded, or InvalidInput naming the file."""
    with _opening(path, "an animation", "a GIF") as im:
        if getattr(im, "n_frames", 1) > max_frames:
            raise InvalidInput(f"{visible(str(path), keep_newlines=False)} has {im.n_frames} frames; at most {max_frames} are kept")
        return [frame.convert("RGB") for frame in ImageSequence.Iterator(im)]
