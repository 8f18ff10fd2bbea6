"""Inpainting as A1111's img2img with a mask makes it (its "Inpaint"), to the pixel: the mask's white is painted
again, its black kept (``invert``: the other way round; a mask with transparency: its alpha, as A1111 reads a drawn
one); the mask is blurred at its own size by ``blur`` pixels across and ``blur_y`` down (A1111's mask blur, 4 by
default: OpenCV's Gaussian blur, made here in numpy to its bit, ``blurred``), then resized to the run's size.

What the masked part starts from (A1111's "Masked content", ``fill``): the init image as it is (``original``); the
colours round it spread over it (``fill``: A1111's coarse to fine blurs of the unmasked part, through the blurred
mask); or, in the latents the init image encodes to, noise drawn from the image's own seed (``latent-noise``) or
zeros (``latent-nothing``) where the blurred mask, at the latents' size and rounded, is white (``latent_fill``; A1111
spreads the colours over the pixels first for these two as well). A model without an inpainting UNet keeps the init
latents where that same rounded mask is black (A1111's ``mask``; diffusers' own is the mask made 0 or 1 at the
image's size, then taken at every eighth pixel: ``inpainting``).

Where it paints (A1111's "Inpaint area", ``area``): the whole picture at the run's size (``whole``), or ``masked``
(A1111's "Only masked"): the blurred mask's bounding box, ``padding`` pixels wider on each side, widened to the run's
proportions and kept within the image (``crop_box``), is cut from the init image and the mask, resized to the run's
size (``fitted``: A1111's "resize and fill"), painted, and resized back into the box (``covered``: its "crop and
resize", in floats where A1111 resizes the 8-bit image: the one step not made to the pixel); the image made is the
init image's size. diffusers' inpainting pipeline — made from the model's own parts,
so any SD 1.x/2.x or SDXL model inpaints — denoises the masked part; and the result, in 8 bits, is laid over the init
image as A1111 lays it (Pillow's alpha compositing) through the blurred mask — doubled (clipped at white) for the
whole picture, as it is for the masked area — so what is not masked keeps its pixels."""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from ..errors import RunError

FILLS = ("original", "fill", "latent-noise", "latent-nothing")  # A1111's masked content, in its API's order 1, 0, 2, 3
LATENT_FILLS = ("latent-noise", "latent-nothing")
AREAS = ("whole", "masked")  # A1111's inpaint area: whole picture, only masked
DEFAULT_BLUR = 4
DEFAULT_PADDING = 32  # A1111's "Only masked padding, pixels" in its UI (its API's default is 0)
BLUR_MAX = 64
_FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))  # A1111's: coarse to fine, radius and times


@dataclass(frozen=True)
class Mask:
    path: Path
    blur: int = DEFAULT_BLUR  # across (A1111's mask_blur_x)
    invert: bool = False
    fill: str = "original"
    area: str = "whole"
    padding: int = 0  # (masked area only)
    blur_y: int | None = None  # down (A1111's mask_blur_y); None: as ``blur``


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


def sharp_mask(mask: Mask) -> Image.Image:
    """The mask as given, grey (``grey``), inverted where asked."""
    from journal.images import open_image

    sharp = grey(open_image(mask.path))
    return ImageOps.invert(sharp) if mask.invert else sharp


def grey(mask: Image.Image) -> Image.Image:
    """A mask image as A1111 reads one: one with transparency by its alpha (more than half opaque: white), as its
    canvas draws masks; any other by its grey."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        return mask.getchannel("A").point(lambda a: 255 if a > 128 else 0)
    return mask.convert("L")


def prepared(mask: Mask, init: Image.Image, width: int, height: int) -> Prepared:
    """The pipeline's start image and mask for ``init`` (at the run's size for the whole picture; as it is for the
    masked area), and what its images are laid over."""
    blurred = _blurred(sharp_mask(mask), mask)
    if mask.area == "whole":
        blurred = blurred.resize(init.size, Image.LANCZOS)
        start = filled(init, blurred) if mask.fill != "original" else init
        doubled = Image.fromarray(np.minimum(np.asarray(blurred, dtype=np.uint16) * 2, 255).astype(np.uint8))
        return Prepared(start, blurred, init, doubled)
    box = crop_box(blurred, mask.padding, width, height)
    if box is None:  # (refused before a run starts: refusal)
        raise RunError("the mask has no white after its blur: give a smaller mask blur or a larger white area")
    mask_crop = fitted(blurred.crop(box), width, height)
    start = fitted(init.crop(box), width, height)
    if mask.fill != "original":
        start = filled(start, mask_crop)
    return Prepared(start, mask_crop, init, blurred, box)


def refusal(init: Image.Image, mask: Image.Image, *, invert: bool, area: str, blur: int | None = None,
            blur_y: int | None = None) -> str | None:
    """Why ``mask`` cannot paint ``init`` only where it is white (None: it can): A1111 finds the box in the blurred
    mask and cuts it from the init image, so they must be one size; a mask with no white, or whose white the blur
    spreads to nothing, has no box (A1111 falls back to plain img2img: promptism says so instead)."""
    if area != "masked":
        return None
    if mask.size != init.size:
        return (f"the mask is {mask.width}x{mask.height} and the init image {init.width}x{init.height}: the masked area "
                "is found in the mask and cut from the init image, so give a mask of the init image's size")
    white = grey(mask)
    white = ImageOps.invert(white) if invert else white
    if white.getbbox() is None:
        return "the mask has no white: there is nothing to paint (invert it, or leave out the mask for plain img2img)"
    across = DEFAULT_BLUR if blur is None else blur
    if _blurred(white, Mask(Path(), across, blur_y=blur_y)).getbbox() is None:
        return (f"the mask's white is blurred away (a blur of {across} spreads it to nothing): give a smaller mask blur "
                "or a larger white area")
    return None


def _blurred(sharp: Image.Image, mask: Mask) -> Image.Image:
    """``sharp`` blurred across by ``mask.blur`` pixels, then down by ``mask.blur_y`` (A1111's mask blur)."""
    values = np.asarray(sharp)
    values = blurred(values, mask.blur, axis=1)
    values = blurred(values, mask.blur if mask.blur_y is None else mask.blur_y, axis=0)
    return Image.fromarray(values)


def blurred(values: np.ndarray, sigma: int, axis: int) -> np.ndarray:
    """8-bit ``values`` blurred along ``axis`` as A1111 blurs a mask: OpenCV's ``GaussianBlur`` with a kernel
    2·int(2.5·sigma + 0.5) + 1 long and that sigma, to its bit. OpenCV blurs 8-bit images in fixed point: the
    kernel's weights (exp(-d²/2σ²), summing to 1) are made whole 256ths, each rounded with the rounding error of the
    ones before carried on to it, the middle one taking what makes them 256; each output is the weighted sum of
    its neighbours, the edge mirrored without repeating its last pixel (BORDER_REFLECT_101), plus 128, over 256.
    A sigma of 0: no blur."""
    if sigma <= 0:
        return values
    weights = _kernel(2 * int(2.5 * sigma + 0.5) + 1, sigma)
    reach = len(weights) // 2
    moved = np.moveaxis(values.astype(np.int64), axis, -1)
    n = moved.shape[-1]
    at = np.arange(-reach, n + reach)
    if n == 1:
        at = np.zeros_like(at)
    else:  # mirrored about the first and last pixels, as often as the kernel is longer than the image
        at = np.abs(at) % (2 * n - 2)
        at = np.where(at >= n, 2 * n - 2 - at, at)
    padded = moved[..., at]
    total = np.zeros(moved.shape, np.int64)
    for i, weight in enumerate(weights):
        total += weight * padded[..., i : i + n]
    return np.moveaxis(((total + 128) >> 8).clip(0, 255).astype(np.uint8), -1, axis)


def _kernel(size: int, sigma: float) -> list[int]:
    """OpenCV's bit-exact Gaussian kernel of ``size`` (odd) for 8-bit images, in 256ths (see ``blurred``)."""
    half = size // 2
    scale = -0.125 / (sigma * sigma)  # (x runs over even numbers 1-size .. size-1: x² is 4d²)
    values = [math.exp(float(x * x) * scale) for x in range(1 - size, 0, 2)]
    share = 1.0 / (sum(values) * 2 + 1.0)
    weights, carried, given = [0] * size, 0.0, 0
    for i, value in enumerate(values):
        exact = value * share * 256 + carried
        whole = round(exact)  # (to even, as OpenCV's cvRound)
        carried = exact - whole
        weights[i] = weights[size - 1 - i] = whole
        given += whole
    weights[half] = 256 - 2 * given
    return weights


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
    w = width if ratio < own else max(1, image.width * height // image.height)  # (a sliver of a box: a pixel)
    h = height if ratio >= own else max(1, image.height * width // image.width)
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
    """``image`` with its masked part (``mask``'s white: the blurred mask) painted with the colours round it, as
    A1111's fill makes it: the unmasked part as the opaque part of a premultiplied picture, blurred at each radius
    (Pillow's Gaussian blur) and laid over what the coarser ones made, the finer more times."""
    unmasked = Image.new("RGBa", image.size)
    unmasked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    out = Image.new("RGBA", image.size)
    for radius, times in _FILL_PASSES:
        layer = unmasked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(times):
            out.alpha_composite(layer)
    return out.convert("RGB")


def overlaid(images, made: Prepared):
    """The pipeline's images (``output_type="pt"``: N×3×H×W in 0..1) — resized back into the crop box, where only the
    masked area was painted — made 8-bit (as every image is: ``pixels.eight_bit``) and laid over the init image as
    A1111 lays them: the init image, transparent where ``made.overlay`` is white, alpha-composited over them (Pillow),
    which keeps the unmasked pixels as they were. Floats again (whole 255ths), for the writer."""
    import torch

    from .pixels import eight_bit

    if made.box is not None:
        x1, y1, x2, y2 = made.box
        canvas = np.zeros((images.shape[0], 3, made.base.height, made.base.width), dtype=np.float32)
        floats = images.float().cpu().numpy()
        for n, c in np.ndindex(floats.shape[:2]):
            canvas[n, c, y1:y2, x1:x2] = _covered_floats(floats[n, c], x2 - x1, y2 - y1)
        images = torch.from_numpy(canvas.clip(0, 1)).to(images)
    cover = Image.new("RGBa", made.base.size)
    cover.paste(made.base.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(made.overlay))
    cover = cover.convert("RGBA")
    out = []
    for pixels in eight_bit(images).permute(0, 2, 3, 1).cpu().numpy():
        image = Image.fromarray(pixels).convert("RGBA")
        image.alpha_composite(cover)
        out.append(np.asarray(image.convert("RGB")))
    return (torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255).to(images.device)


def latent_mask(mask: Image.Image, width: int, height: int) -> np.ndarray:
    """A1111's mask of the latents (1: painted): the blurred mask resized to the latents' ``width``×``height`` (Pillow's
    bicubic), each value rounded to 0 or 1 (half to even)."""
    return np.around(np.asarray(mask.resize((width, height), Image.BICUBIC), dtype=np.float32) / 255)


@contextmanager
def inpainting(pipe, made: Prepared, seeds: list[int], fill: str):
    """Around one inpainting call of ``pipe``: A1111's latent fills (``latent_fill``) and, for a UNet of 4 input
    channels (no inpainting model), the latents kept as the init image's where A1111 keeps them (``kept_latents``)."""
    with ExitStack() as stack:
        stack.enter_context(latent_fill(pipe, made, seeds, fill))
        stack.enter_context(kept_latents(pipe, made))
        yield


@contextmanager
def kept_latents(pipe, made: Prepared):
    """A model without an inpainting UNet keeps the init image's latents (noised to each step's level) where the mask
    of the latents is black: diffusers' mask for that is the pipeline's mask made 0 or 1 at the image's size and
    then taken at every eighth pixel (nearest), A1111's is ``latent_mask``; its is given to the pipeline instead. An
    inpainting UNet (9 channels) is given diffusers' own, which is A1111's for it (the mask rounded at the image's
    size, then nearest)."""
    unet = getattr(pipe, "unet", None)
    if unet is None or unet.config.in_channels != 4:
        yield
        return
    import torch

    own = pipe.prepare_mask_latents

    def prepare_mask_latents(*args, **kwargs):
        mask, *rest = own(*args, **kwargs)
        a1111 = torch.from_numpy(latent_mask(made.mask, mask.shape[-1], mask.shape[-2]))
        return (a1111[None, None].to(mask).expand(mask.shape).contiguous(), *rest)

    pipe.prepare_mask_latents = prepare_mask_latents
    try:
        yield
    finally:
        del pipe.prepare_mask_latents


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
        white = torch.from_numpy(latent_mask(made.mask, lw, lh))[None, None].to(image_latents)
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
