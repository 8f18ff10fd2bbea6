"""Inpainting as A1111's img2img with a mask makes it (its "Inpaint"): the mask's white is painted again, its black
kept (``invert``: the other way round); the mask is blurred by ``blur`` pixels (A1111's mask blur, 4 by default).

What the masked part starts from (A1111's "Masked content", ``fill``): the init image as it is (``original``); the
colours round it spread over it (``fill``: coarse to fine blurs of the unmasked part: no trace of what was there);
or, in the latents the init image encodes to, noise drawn from the image's own seed (``latent-noise``) or zeros
(``latent-nothing``) where the mask, at the latents' size and rounded, is white (``latent_fill``; A1111 spreads the
colours over the pixels first for these two as well).

Where it paints (A1111's "Inpaint area", ``area``): the whole picture at the run's size (``whole``), or ``masked``
(A1111's "Only masked"): the blurred mask's bounding box, ``padding`` pixels wider on each side, widened to the run's
proportions and kept within the image (``crop_box``), is cut from the init image and the mask, resized to the run's
size (``fitted``: A1111's "resize and fill"), painted, and resized back into the box (``covered``: its "crop and
resize"); the image made is the init image's size. diffusers' inpainting pipeline — made from the model's own parts,
so any SD 1.x/2.x or SDXL model inpaints — denoises the masked part; and the result is laid over the init image
through the blurred mask, so what is not masked keeps its pixels."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

FILLS = ("original", "fill", "latent-noise", "latent-nothing")  # A1111's masked content, in its API's order 1, 0, 2, 3
LATENT_FILLS = ("latent-noise", "latent-nothing")
AREAS = ("whole", "masked")  # A1111's inpaint area: whole picture, only masked
DEFAULT_BLUR = 4
DEFAULT_PADDING = 32  # A1111's "Only masked padding, pixels" in its UI (its API's default is 0)
BLUR_MAX = 64
_FILL_RADII = (256, 64, 16, 4, 2, 0)  # coarse to fine: each finer spread drawn over the coarser


@dataclass(frozen=True)
class Mask:
    path: Path
    blur: int = DEFAULT_BLUR
    invert: bool = False
    fill: str = "original"
    area: str = "whole"
    padding: int = 0  # (masked area only)


@dataclass(frozen=True)
class Prepared:
    """What a pipeline call for a mask takes and what its images are laid over: ``start`` and ``mask`` at the run's
    size (the crop's, resized, where only the masked area is painted), ``base`` the init image and ``overlay`` the
    blurred mask at the images' size, and ``box`` the crop (None: the whole picture)."""

    start: Image.Image
    mask: Image.Image
    base: Image.Image
    overlay: Image.Image
    box: tuple[int, int, int, int] | None = None


def sharp_mask(mask: Mask, size: tuple[int, int] | None = None) -> Image.Image:
    """The mask as given (at ``size``, where given), grey, inverted where asked."""
    from journal.images import open_image

    sharp = open_image(mask.path).convert("L")
    if size is not None:
        sharp = sharp.resize(size, Image.LANCZOS)
    return ImageOps.invert(sharp) if mask.invert else sharp


def prepared(mask: Mask, init: Image.Image, width: int, height: int) -> Prepared:
    """The pipeline's start image and mask for ``init`` (at the run's size for the whole picture; as it is for the
    masked area), and what its images are laid over."""
    if mask.area == "whole":
        sharp = sharp_mask(mask, init.size)
        blurred = _blurred(sharp, mask.blur)
        start = filled(init, sharp) if mask.fill != "original" else init
        return Prepared(start, blurred, init, blurred)
    blurred = _blurred(sharp_mask(mask), mask.blur)
    box = crop_box(blurred, mask.padding, width, height)
    if box is None:  # (refused before a run starts: refusal)
        raise ValueError("the mask has no white")
    mask_crop = fitted(blurred.crop(box), width, height)
    start = fitted(init.crop(box), width, height)
    if mask.fill != "original":
        start = filled(start, mask_crop)
    return Prepared(start, mask_crop, init, blurred, box)


def refusal(init: Image.Image, mask: Image.Image, *, invert: bool, area: str) -> str | None:
    """Why ``mask`` cannot paint ``init`` only where it is white (None: it can): A1111 finds the box in the mask and
    cuts it from the init image, so they must be one size; a mask with no white has no box (A1111 falls back to
    plain img2img: promptism says so instead)."""
    if area != "masked":
        return None
    if mask.size != init.size:
        return (f"the mask is {mask.width}x{mask.height} and the init image {init.width}x{init.height}: the masked area "
                "is found in the mask and cut from the init image, so give a mask of the init image's size")
    grey = mask.convert("L")
    if (ImageOps.invert(grey) if invert else grey).getbbox() is None:
        return "the mask has no white: there is nothing to paint (invert it, or leave out the mask for plain img2img)"
    return None


def _blurred(sharp: Image.Image, blur: int) -> Image.Image:
    return sharp.filter(ImageFilter.GaussianBlur(blur)) if blur else sharp


def crop_box(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The part of the image that "only masked" paints: the box round ``mask``'s non-black pixels, ``padding`` wider
    on each side within the image, then widened (or made taller) about its centre to ``width``:``height`` — pushed
    back inside where it would cross an edge, and cut at the edge where the image is too small (A1111's
    expand_crop_region). None for a mask with no white."""
    found = mask.getbbox()
    if found is None:
        return None
    w, h = mask.size
    x1, y1, x2, y2 = max(found[0] - padding, 0), max(found[1] - padding, 0), min(found[2] + padding, w), \
        min(found[3] + padding, h)
    ratio = width / height
    if (x2 - x1) / (y2 - y1) > ratio:  # wider than the run's proportions: made taller
        y1, y2 = _widened(y1, y2, int((x2 - x1) / ratio - (y2 - y1)), h)
    else:  # made wider
        x1, x2 = _widened(x1, x2, int((y2 - y1) * ratio - (x2 - x1)), w)
    return x1, y1, x2, y2


def _widened(start: int, end: int, more: int, limit: int) -> tuple[int, int]:
    """``start``..``end`` made ``more`` longer, half on each side (the odd pixel after it), moved back within
    0..``limit`` where it crosses an edge, and cut at ``limit`` where it is longer than that."""
    start, end = start - more // 2, end + more - more // 2
    if end > limit:
        start, end = start - (end - limit), limit
    if start < 0:
        start, end = 0, end - start
    return start, min(end, limit)


def fitted(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` resized to fit ``width``×``height`` with its proportions, centred, the bands either side filled
    with its edge rows or columns stretched (A1111's "resize and fill")."""
    ratio, own = width / height, image.width / image.height
    w = width if ratio < own else image.width * height // image.height
    h = height if ratio >= own else image.height * width // image.width
    resized = image.resize((w, h), Image.LANCZOS)
    if (w, h) == (width, height):
        return resized
    out = Image.new(image.mode, (width, height))
    left, top = width // 2 - w // 2, height // 2 - h // 2
    out.paste(resized, (left, top))
    if h < height:  # bands above and below: the first and last rows
        bands = ((0, top, (0, 0, w, 1)), (top + h, height - top - h, (0, h - 1, w, h)))
        for at, size, edge in bands:
            if size > 0:
                out.paste(resized.crop(edge).resize((width, size)), (0, at))
    elif w < width:  # bands left and right: the first and last columns
        bands = ((0, left, (0, 0, 1, h)), (left + w, width - left - w, (w - 1, 0, w, h)))
        for at, size, edge in bands:
            if size > 0:
                out.paste(resized.crop(edge).resize((size, height)), (at, 0))
    return out


def _covered_floats(channel: np.ndarray, width: int, height: int) -> np.ndarray:
    """One float channel resized to cover ``width``×``height`` with its proportions and cut to it about its centre
    (A1111's "crop and resize"), in floats (Pillow's "F" images), so no 8-bit rounding comes between."""
    ih, iw = channel.shape
    ratio, own = width / height, iw / ih
    w = width if ratio > own else iw * height // ih
    h = height if ratio <= own else ih * width // iw
    resized = np.asarray(Image.fromarray(channel).resize((w, h), Image.LANCZOS))
    left, top = w // 2 - width // 2, h // 2 - height // 2
    return resized[top : top + height, left : left + width]


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


def overlaid(images, made: Prepared):
    """The pipeline's images (``output_type="pt"``: N×3×H×W in 0..1) — resized back into the crop box, where only the
    masked area was painted — laid over the init image through the blurred mask: A1111's overlay, which keeps the
    unmasked pixels as they were."""
    import torch

    if made.box is not None:
        x1, y1, x2, y2 = made.box
        canvas = np.zeros((images.shape[0], 3, made.base.height, made.base.width), dtype=np.float32)
        floats = images.float().cpu().numpy()
        for n, c in np.ndindex(floats.shape[:2]):
            canvas[n, c, y1:y2, x1:x2] = _covered_floats(floats[n, c], x2 - x1, y2 - y1)
        images = torch.from_numpy(canvas.clip(0, 1)).to(images)
    alpha = torch.from_numpy(np.asarray(made.overlay, dtype=np.float32) / 255)[None, None].to(images)
    base = torch.from_numpy(np.asarray(made.base.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None].to(images)
    return images * alpha + base * (1 - alpha)


@contextmanager
def latent_fill(pipe, made: Prepared, seeds: list[int], fill: str):
    """Around one inpainting call of ``pipe``: the init image's latents, where the mask at their size (rounded) is
    white, replaced by noise drawn from each image's own seed (``latent-noise``: a generator seeded with it, its
    first draw, as A1111 draws it) or by zeros (``latent-nothing``), before the noise for the first step is added
    to them; the pipeline's own draws are left as they are. Nothing for the other fills."""
    if fill not in LATENT_FILLS:
        yield
        return
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    own = pipe.prepare_latents

    def prepare_latents(*args, **kwargs):
        asked = kwargs.get("return_image_latents", False)
        if kwargs.get("is_strength_max", True) and not asked:  # pure noise: the init latents play no part
            return own(*args, **kwargs)
        latents, noise, image_latents = own(*args, **{**kwargs, "return_noise": True, "return_image_latents": True})
        n, channels, lh, lw = image_latents.shape
        keep = np.asarray(made.mask.resize((lw, lh), Image.BICUBIC), dtype=np.float32) / 255
        white = torch.from_numpy(np.round(keep))[None, None].to(image_latents)
        if fill == "latent-noise":
            drawn = torch.cat([randn_tensor((1, channels, lh, lw), generator=torch.Generator("cpu").manual_seed(seed),
                                            dtype=torch.float32) for seed in seeds])
            image_latents = image_latents * (1 - white) + drawn.to(image_latents) * white
        else:
            image_latents = image_latents * (1 - white)
        if kwargs.get("add_noise", True) is False:  # (SDXL's denoising_start: the latents as they are)
            latents = image_latents
        elif not kwargs.get("is_strength_max", True) and kwargs.get("latents") is None:
            latents = pipe.scheduler.add_noise(image_latents, noise, kwargs["timestep"])
        out = (latents,) + ((noise,) if kwargs.get("return_noise") else ()) + ((image_latents,) if asked else ())
        return out

    pipe.prepare_latents = prepare_latents
    try:
        yield
    finally:
        del pipe.prepare_latents
