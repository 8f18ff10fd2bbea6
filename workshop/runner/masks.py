"""Inpainting as A1111's img2img with a mask makes it (its "Inpaint", whole picture): the mask's white is painted
again, its black kept (``invert``: the other way round); the mask is blurred by ``blur`` pixels (A1111's mask blur,
4 by default); the masked part starts from the init image as it is (``original``) or, with ``fill``, from the colours
round it spread over it (coarse to fine blurs of the unmasked part: no trace of what was there); diffusers' inpainting
pipeline — made from the model's own parts, so any SD 1.x/2.x or SDXL model inpaints — denoises the masked part;
and the result is laid over the init image through the blurred mask, so what is not masked keeps its pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

FILLS = ("original", "fill")  # A1111's masked content promptism makes (not: latent noise, latent nothing)
DEFAULT_BLUR = 4
BLUR_MAX = 64
_FILL_RADII = (256, 64, 16, 4, 2, 0)  # coarse to fine: each finer spread drawn over the coarser


@dataclass(frozen=True)
class Mask:
    path: Path
    blur: int = DEFAULT_BLUR
    invert: bool = False
    fill: str = "original"


def prepared(mask: Mask, init: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The mask at the init image's size (white: painted again), blurred, and the image the pipeline starts from."""
    from journal.images import open_image

    sharp = open_image(mask.path).convert("L").resize(init.size, Image.LANCZOS)
    if mask.invert:
        sharp = ImageOps.invert(sharp)
    blurred = sharp.filter(ImageFilter.GaussianBlur(mask.blur)) if mask.blur else sharp
    return blurred, filled(init, sharp) if mask.fill == "fill" else init


def filled(image: Image.Image, mask: Image.Image) -> Image.Image:
    """``image`` with its masked part (``mask``'s white) painted with the colours round it: the unmasked part, with
    its weights, blurred at each radius, the finer over the coarser where they reach."""
    keep = 1.0 - np.asarray(mask, dtype=np.float32)[..., None] / 255
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    out = rgb * keep
    for radius in _FILL_RADII:
        colour, weight = (_blur(rgb * keep, radius), _blur(keep, radius)) if radius else (rgb * keep, keep)
        spread = colour / np.maximum(weight, 1e-6)
        reach = np.clip(weight * 2, 0, 1)  # where the unmasked part is near enough to say
        out = out * (1 - reach) + spread * reach
    out = rgb * keep + out * (1 - keep)
    return Image.fromarray((out.clip(0, 1) * 255).round().astype(np.uint8))


def _blur(values: np.ndarray, radius: int) -> np.ndarray:
    """A Gaussian blur of channels in 0..1 (each as an 8-bit image: Pillow blurs those)."""
    channels = [Image.fromarray((values[..., c] * 255).round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
                for c in range(values.shape[-1])]
    return np.stack([np.asarray(c, dtype=np.float32) / 255 for c in channels], axis=-1)


def overlaid(images, init: Image.Image, blurred: Image.Image):
    """The pipeline's images (``output_type="pt"``: N×3×H×W in 0..1) laid over the init image through the blurred
    mask: A1111's overlay, which keeps the unmasked pixels as they were."""
    import torch

    alpha = torch.from_numpy(np.asarray(blurred, dtype=np.float32) / 255)[None, None].to(images)
    base = torch.from_numpy(np.asarray(init.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None].to(images)
    return images * alpha + base * (1 - alpha)
