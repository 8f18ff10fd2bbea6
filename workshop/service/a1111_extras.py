"""AUTOMATIC1111's API routes that make no run: ``POST /sdapi/v1/png-info``, ``/interrogate``,
``/extra-single-image`` and ``/extra-batch-images``, with A1111 1.10's request fields and response shapes.

Decisions, where A1111 and promptism differ:
- png-info reads an image's generation metadata with the importer's reader (``journal.metadata``: A1111's PNG text,
  EXIF UserComment and stealth info, ComfyUI, Fooocus, InvokeAI, NovelAI). ``info`` is the A1111 infotext the image
  carries; for another tool's image (A1111 answers "" there) it is an infotext written from what the importer read,
  and ``parameters`` (A1111's ``parse_generation_parameters``: ``Prompt``, ``Size-1`` … as strings, with its
  defaults) comes from that too. ``items`` are the image's other text chunks. A promptism run's PNG carries pixels
  only: its info is "".
- interrogate ("clip" only) has no BLIP caption: the service's CLIP scorer (the ``clip`` setting, else the default
  model's own scorer) ranks promptism's own vocabulary (``interrogate/``: one file a category, ``NAME.topN.txt``
  keeps N), and the caption is the best matches in A1111's order, joined by ", ". DeepDanbooru and any other model
  is a 422 naming "clip".
- extras upscale with the upscalers that need no weights (None, Lanczos, Nearest: A1111's ``Upscaler.upscale``
  rule, its size a multiple of 8); a network upscaler, GFPGAN or CodeFormer is a 422, and so is an image that would
  come out larger than the pixel limit. The PNGs returned carry pixels only; nothing is written to a journal.
Nothing here logs what a request carries (its image's metadata holds a prompt).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from journal import InvalidInput
from journal.images import clean_png, open_image
from journal.limits import pixel_limit
from journal.metadata import GenerationInfo, a1111_fields, a1111_infotext, read_generation_info

from ..errors import RunError
from ..runner.hires import PIXEL, a1111_upscale
from ..settings import load_settings
from .a1111 import BadValue, _Named

MAX_BATCH = 32  # images of one extra-batch-images call
VOCABULARY = Path(__file__).parent / "interrogate"
_IGNORED_ITEMS = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background",
                  "timestamp", "duration", "progressive", "progression", "icc_profile", "chromaticity", "photoshop"}
_CHECKPOINT_FILES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
_SIZE = re.compile(r"^(\d+)x(\d+)$")


class PNGInfoRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: str


class PNGInfoResponse(BaseModel):
    info: str
    items: dict
    parameters: dict


class InterrogateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: str = ""
    model: str = "clip"


class InterrogateResponse(BaseModel):
    caption: str | None = None


class ExtrasRequest(BaseModel):
    """A1111's ExtrasBaseRequest fields and defaults."""

    model_config = ConfigDict(extra="ignore")

    resize_mode: Literal[0, 1] = 0  # 0: scale by upscaling_resize; 1: to upscaling_resize_w × upscaling_resize_h
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    codeformer_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    codeformer_weight: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    upscaling_resize: float = Field(2, gt=0, allow_inf_nan=False)
    upscaling_resize_w: int = Field(512, ge=1)
    upscaling_resize_h: int = Field(512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    upscale_first: bool = False


class ExtrasSingleImageRequest(ExtrasRequest):
    image: str = ""


class FileData(BaseModel):
    data: str
    name: str


class ExtrasBatchImagesRequest(ExtrasRequest):
    imageList: list[FileData] = Field(max_length=MAX_BATCH)


class ExtrasSingleImageResponse(BaseModel):
    html_info: str
    image: str | None = None


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str
    images: list[str]


# ------------------------------------------------------------------ images in and out


def decode(data: str, field: str) -> Image.Image:
    """A base64 image (a ``data:`` URL too) decoded under the pixel limit, its metadata kept; BadValue naming
    ``field`` for what is no image."""
    data = data.strip()
    if data.startswith("data:"):
        data = data.partition(",")[2]
    if not data:
        raise BadValue([field], "no image: send the image file's bytes in base64")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadValue([field], "not base64: send the image file's bytes in base64") from None
    try:
        return open_image(_Named(raw, field))
    except InvalidInput as exc:
        raise BadValue([field], str(exc)) from None


def encoded(image: Image.Image) -> str:
    """A PNG of the pixels alone, in base64."""
    return base64.b64encode(clean_png(image).data).decode("ascii")


# ------------------------------------------------------------------ png-info


def png_info(image: Image.Image) -> PNGInfoResponse:
    """A1111's answer for an image: its infotext, its other text chunks, the infotext parsed."""
    items = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)
             and k != "parameters" and k not in _IGNORED_ITEMS}
    found = read_generation_info(image)
    text = a1111_infotext(image) if found.source == "automatic1111" else None
    if text is None and found.source is not None:
        text = written_infotext(found, image.size)
    return PNGInfoResponse(info=text or "", items=items, parameters=parameters(found, text or ""))


def written_infotext(found: GenerationInfo, size: tuple[int, int]) -> str:
    """An A1111 infotext for what another tool's metadata says (the image's ``size`` where it gives none; a
    checkpoint named as A1111 names it, without its file's extension)."""
    p = found.params
    model = found.models[0] if found.models else None
    width, height = (p["width"], p["height"]) if p.get("width") and p.get("height") else size
    name = model.id if model else None
    if name and Path(name).suffix in _CHECKPOINT_FILES:
        name = name[: -len(Path(name).suffix)]
    pairs = {"Steps": p.get("steps"), "Sampler": p.get("sampler"), "CFG scale": p.get("guidance"), "Seed": found.seed,
             "Size": f"{width}x{height}", "Model hash": model.hash if model else None, "Model": name,
             "Denoising strength": p.get("strength")}
    line = ", ".join(f"{k}: {json.dumps(v) if ',' in str(v) else v}" for k, v in pairs.items() if v is not None)
    negative = f"\nNegative prompt: {found.negative_prompt}" if found.negative_prompt else ""
    return f"{found.prompt or ''}{negative}\n{line}".strip()


def parameters(found: GenerationInfo, text: str) -> dict:
    """A1111's ``parse_generation_parameters`` of ``text``, from the importer's reading: the prompts, each field of
    the settings line as a string (a ``WxH`` value as ``KEY-1`` and ``KEY-2``), then A1111's defaults."""
    res: dict = {"Prompt": found.prompt or "", "Negative prompt": found.negative_prompt or ""}
    for key, value in a1111_fields(text).items():
        size = _SIZE.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size[1], size[2]
        else:
            res[key] = value
    defaults = {"Clip skip": "1", "Hires resize-1": 0, "Hires resize-2": 0, "Hires sampler": "Use same sampler",
                "Hires checkpoint": "Use same checkpoint", "Hires prompt": "", "Hires negative prompt": "",
                "Mask mode": "Inpaint masked", "Masked content": "original", "Inpaint area": "Whole picture",
                "Masked area padding": 32, "RNG": "GPU", "Schedule type": "Automatic", "Schedule max sigma": 0,
                "Schedule min sigma": 0, "Schedule rho": 0, "VAE Encoder": "Full", "VAE Decoder": "Full",
                "FP8 weight": "Disable"}
    return res | {k: v for k, v in defaults.items() if k not in res}


# ------------------------------------------------------------------ interrogate


def vocabulary() -> list[tuple[str, int, list[str]]]:
    """promptism's categories for interrogate, in A1111's order (by file name): name, how many to keep, entries."""
    categories = []
    for path in sorted(VOCABULARY.glob("*.txt")):
        name, _, top = path.stem.partition(".top")
        entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        categories.append((name, int(top) if top.isdigit() else 1, entries))
    return categories


def scorer_name() -> str:
    """The CLIP scorer interrogate uses: the ``clip`` setting, else the default model's own; BadValue if none."""
    from ..runner.checks import NO_SCORER
    from ..runner.models import BUILTINS

    settings = load_settings()
    own = BUILTINS[settings.model].clip if settings.model in BUILTINS else None
    name = settings.clip if settings.clip not in (None, NO_SCORER) else own
    if not name:
        raise BadValue(["model"], "no CLIP scorer is set for interrogate: set clip = \"ARCH:PRETRAINED_TAG\" (or "
                       "ARCH:/path/to/weights.safetensors) in the service's config.toml")
    return name


def interrogate(image: Image.Image) -> str:
    """The caption: each category's best matches for ``image`` by the scorer's cosine similarity, joined by ", "."""
    from ..runner.devices import pick_device
    from ..runner.scoring import load_scorer

    try:
        scorer = load_scorer(scorer_name(), pick_device("auto"))
    except RunError as exc:
        raise BadValue(["model"], f"{exc} (the service's clip setting)") from None
    features = scorer.image_features([scorer.prepare(image)])[0]
    matches = []
    for name, top, entries in vocabulary():
        sims = _text_features(scorer, name, tuple(entries)) @ features
        order = sorted(range(len(entries)), key=lambda i: (-float(sims[i]), i))
        matches += [entries[i] for i in order[:top]]
    return ", ".join(matches)


def _text_features(scorer, name: str, entries: tuple[str, ...]):
    """A category's text embeddings, computed once for each loaded scorer (kept with it)."""
    cache = scorer.__dict__.setdefault("_interrogate", {})
    if (name, entries) not in cache:
        cache[name, entries] = scorer.text_features(list(entries))
    return cache[name, entries]


# ------------------------------------------------------------------ extras


def check_extras(req: ExtrasRequest) -> None:
    """What promptism cannot do of an extras request, refused before any image is decoded."""
    for field in ("gfpgan_visibility", "codeformer_visibility"):
        if getattr(req, field) > 0:
            raise BadValue([field], f"promptism restores no faces ({field.partition('_')[0].upper()} needs weights "
                           "promptism has not got): leave it 0")
    for field in ("upscaler_1", "upscaler_2"):
        name = getattr(req, field)
        if name not in PIXEL:
            latent = " (latent upscalers work on a model's latents: the hires fix's)" if name.startswith("Latent") else ""
            shown = json.dumps(name) if len(name) <= 80 else "of that name"
            raise BadValue([field], f"promptism has no upscaler {shown}{latent}; those that need no weights "
                           f"are {', '.join(PIXEL)} (see /sdapi/v1/upscalers)")


def upscaled(image: Image.Image, req: ExtrasRequest, field: str) -> tuple[Image.Image, str]:
    """A1111's extras upscale of one image and its info line; BadValue where the result is no size or too large."""
    image = image if image.mode in ("RGB", "RGBA") else image.convert("RGB")
    info: dict[str, object] = {}
    if req.upscaler_1 == "None":
        return image, ""
    if req.resize_mode == 1:
        scale = max(req.upscaling_resize_w / image.width, req.upscaling_resize_h / image.height)
        info["Postprocess upscale to"] = f"{req.upscaling_resize_w}x{req.upscaling_resize_h}"
        where = ["upscaling_resize_w"]
    else:
        scale = req.upscaling_resize
        info["Postprocess upscale by"] = scale
        where = ["upscaling_resize"]
    canvas = (req.upscaling_resize_w, req.upscaling_resize_h) if req.resize_mode == 1 and req.upscaling_crop else None
    wide, high = image.width * scale, image.height * scale  # (the upscalers' size: the result's at most)
    for w, h in ((wide, high), canvas or (0, 0)):
        if w * h > pixel_limit():
            shown = f"{w:.0f}x{h:.0f}" if w * h < 1e30 else "more pixels than that"
            raise BadValue(where, f"{field}: {image.width}x{image.height} scaled by {scale:g} is {shown}, over the limit "
                           f"of {pixel_limit():,} pixels (max_image_pixels in config.toml): scale it less")
    dest = (int(wide // 8 * 8), int(high // 8 * 8))  # A1111's: each side rounded down to a multiple of 8
    if min(dest) < 1:
        raise BadValue(where, f"{field}: {image.width}x{image.height} scaled by {scale:g} is {dest[0]}x{dest[1]} (A1111 "
                       "rounds each side down to a multiple of 8): no image; scale it up more")
    result = a1111_upscale(image, req.upscaler_1, scale)
    info["Postprocess upscaler"] = req.upscaler_1
    if req.upscaler_2 != "None" and req.extras_upscaler_2_visibility > 0:
        second = a1111_upscale(image, req.upscaler_2, scale)
        result = Image.blend(result, second.convert(result.mode), req.extras_upscaler_2_visibility)
        info["Postprocess upscaler 2"] = req.upscaler_2
    if canvas:
        cropped = Image.new("RGB", canvas)
        cropped.paste(result, box=(canvas[0] // 2 - result.width // 2, canvas[1] // 2 - result.height // 2))
        result = cropped
        info["Postprocess crop to"] = f"{canvas[0]}x{canvas[1]}"
    return result, ", ".join(f"{k}: {v}" for k, v in info.items())


def as_html(text: str) -> str:
    """A1111's ``plaintext_to_html``."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


# ------------------------------------------------------------------ the routes


async def answered(work, *args):
    """``work(*args)`` off the event loop; a BadValue it raises answered as the 422 it is."""
    try:
        return await run_in_threadpool(work, *args)
    except BadValue as exc:
        return exc.response()


def add_routes(api: APIRouter, service) -> None:
    """png-info, interrogate and the extras on A1111's router (``service`` is not needed: no job is made)."""

    @api.post("/png-info", response_model=PNGInfoResponse)
    async def png_info_route(req: PNGInfoRequest):
        return await answered(lambda: png_info(decode(req.image, "image")))

    @api.post("/interrogate", response_model=InterrogateResponse)
    async def interrogate_route(req: InterrogateRequest):
        if req.model != "clip":
            return BadValue(["model"], "promptism interrogates with \"clip\" alone (DeepDanbooru and other models need "
                            "weights promptism has not got)").response()
        return await answered(lambda: InterrogateResponse(caption=interrogate(decode(req.image, "image").convert("RGB"))))

    @api.post("/extra-single-image", response_model=ExtrasSingleImageResponse)
    async def extra_single_image(req: ExtrasSingleImageRequest):
        def work():
            check_extras(req)
            image, info = upscaled(decode(req.image, "image"), req, "image")
            return ExtrasSingleImageResponse(html_info=as_html(info), image=encoded(image))

        return await answered(work)

    @api.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse)
    async def extra_batch_images(req: ExtrasBatchImagesRequest):
        def work():
            check_extras(req)
            images, info = [], ""
            for i, item in enumerate(req.imageList):
                field = f"imageList[{i}].data"
                image, info = upscaled(decode(item.data, field), req, field)
                images.append(encoded(image))
            return ExtrasBatchImagesResponse(html_info=as_html(info), images=images)

        return await answered(work)
