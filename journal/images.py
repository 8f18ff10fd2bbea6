"""Image files the journal stores or publishes: decoded, checked, and re-encoded with no metadata at all — PNG for
images, GIF for animations."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from .errors import InvalidInput

Image.MAX_IMAGE_PIXELS = 16384 * 16384  # refuse decompression bombs beyond what any pipeline makes


@dataclass(frozen=True)
class CleanImage:
    """A PNG encoding of an image's pixels alone, and facts about it."""

    data: bytes
    sha256: str
    width: int
    height: int


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image, or raise InvalidInput naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy() if im.mode in ("1", "L", "LA", "RGB", "RGBA", "I;16") else im.convert("RGBA" if _has_alpha(im) else "RGB")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not an image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{path} is not an image Pillow can read ({exc.__class__.__name__}); pass a PNG, JPEG or WebP") from None


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def clean_png(im: Image.Image) -> CleanImage:
    """Encode only the pixels: no text chunks, EXIF, XMP, ICC profile or any other ancillary data."""
    bare = Image.frombytes(im.mode, im.size, im.tobytes())  # a fresh image carries an empty .info
    buf = io.BytesIO()
    bare.save(buf, format="PNG")
    data = buf.getvalue()
    return CleanImage(data, hashlib.sha256(data).hexdigest(), im.width, im.height)


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


def open_frames(path: Path) -> list[Image.Image]:
    """Every frame of an animation, decoded, or InvalidInput naming the file."""
    try:
        with Image.open(path) as im:
            return [frame.convert("RGB") for frame in ImageSequence.Iterator(im)]
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{path} is not an animation Pillow can read ({exc.__class__.__name__}); pass a GIF") from None
