"""The experiment document: its fields, their validation, and the public (prompt-free) view of it.

An experiment is stored twice with identical content: as ``experiment.json`` in its folder (committed to git, the
source of truth) and as a TinyDB document in ``journal.json`` (the queryable index). Both go through
``Experiment.from_doc`` so nothing malformed is ever written.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import ValidationError

from .errors import InvalidInput
from .grid_record import GridRecord, ImageSettings, run_settings
from .slug import check_title
from .text import quoted

if TYPE_CHECKING:
    from .images import CleanImage

SCHEMA_VERSION = 1
SEED_LIMIT = 2**64  # seeds are unsigned 64-bit (A1111: 32-bit, ComfyUI: 64-bit)
SIZE_LIMIT = 2**16
STATUSES = ("unreleased", "published")
#: Fields that hold the artist's private prompt; left out of every public view.
PRIVATE_FIELDS = ("prompt", "negative_prompt", "keywords", "terms", "grid")
#: The private field of each image record (the variant prompt it was made from).
PRIVATE_IMAGE_FIELDS = ("prompt",)


@dataclass(frozen=True)
class ModelInfo:
    """What made the images: always credited when an experiment is shown or published."""

    id: str
    revision: str | None = None
    hash: str | None = None
    pipeline: str | None = None
    scheduler: str | None = None

    @property
    def credit(self) -> str:
        return self.id


@dataclass(frozen=True)
class Compute:
    device: str | None = None
    seconds: float | None = None
    energy_wh: float | None = None  # measured GPU energy (NVML), when available
    co2_g: float | None = None  # estimated from energy_wh and the configured grid intensity
    threads: int | None = None  # torch's CPU threads on a CPU run (they decide float reduction order, so the pixels)


@dataclass(frozen=True)
class ImageRecord:
    file: str
    sha256: str
    width: int
    height: int
    seed: int | None = None
    prompt: str | None = None  # the variant prompt this image was made from (private)
    score: float | None = None
    animation: str | None = None  # a GIF of how the image came to be (CLIP-guided runs), next to it
    animation_sha256: str | None = None
    pixels: str | None = None  # images.pixel_hash of the image: an import skips pictures the journal has


OPTIONAL_IMAGE_FIELDS = ("animation", "animation_sha256", "pixels")  # left out of documents when empty


@dataclass(frozen=True)
class NewImage:
    """An image to accept into the journal, with what is known about how it was made."""

    path: Path
    seed: int | None = None
    prompt: str | None = None
    score: float | None = None
    animation: Path | None = None
    clean: CleanImage | None = None  # its pixels already re-encoded (an import reads each file once): used over path


@dataclass(frozen=True)
class NewExperiment:
    """Everything ``Journal.accept`` needs; the journal assigns number, folder, hashes and timestamps."""

    title: str
    model: ModelInfo
    images: Sequence[NewImage]
    prompt: str = ""
    negative_prompt: str = ""
    keywords: Sequence[str] = ()
    terms: Sequence[str] = ()  # other private words of the prompt: a grid's base prompt, S/R values, dynamic choices
    grid: GridRecord | None = None
    params: dict = field(default_factory=dict)
    parent: int | None = None
    compute: Compute | None = None
    extra_models: Sequence[ModelInfo] = ()  # further models credited after ``model`` (a base and a refiner)

    @property
    def secrets(self) -> list[str]:
        """Every private string a title must not contain."""
        return [self.prompt, self.negative_prompt, *self.keywords, *self.terms, *(i.prompt or "" for i in self.images)]


@dataclass(frozen=True)
class Experiment:
    number: int
    title: str
    slug: str
    dir: str
    model: ModelInfo
    images: tuple[ImageRecord, ...]
    created: str
    updated: str
    prompt: str = ""
    negative_prompt: str = ""
    keywords: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    grid: GridRecord | None = None  # the run it was accepted from (none: imported)
    params: dict = field(default_factory=dict)
    parent: int | None = None
    status: str = "unreleased"
    published: str | None = None
    compute: Compute | None = None
    tool_version: str = ""
    schema: int = SCHEMA_VERSION
    extra_models: tuple[ModelInfo, ...] = ()  # further models credited after ``model``; absent from older documents

    @property
    def credit(self) -> str:
        """Every model that made the images, as shown wherever the experiment is: ``base + refiner``, and the LoRAs
        it applied (``with LoRA NAME, NAME``)."""
        return " + ".join(m.credit for m in (self.model, *self.extra_models)) + self.lora_credit

    @property
    def lora_credit(self) -> str:
        """`` with LoRA NAME, …`` from its parameters' LoRAs ("NAME: HASH", or a workflow's "NAME"), or nothing."""
        names = [entry.rpartition(": ")[0] or entry for entry in self.params.get("loras") or () if isinstance(entry, str)]
        return f" with LoRA {', '.join(names)}" if names else ""

    def to_doc(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v for k, v in items})
        doc["grid"] = self.grid.to_doc() if self.grid is not None else None
        for image in doc["images"]:  # documents without animations read exactly as before animations existed
            for key in OPTIONAL_IMAGE_FIELDS:
                if image[key] is None:
                    del image[key]
        if not doc["terms"]:  # likewise documents without extra private terms
            del doc["terms"]
        if not doc["extra_models"]:  # and with one model
            del doc["extra_models"]
        return doc

    @property
    def secrets(self) -> list[str]:
        """Every private string a title must not contain."""
        return [self.prompt, self.negative_prompt, *self.keywords, *self.terms, *(i.prompt or "" for i in self.images)]

    def image_settings(self) -> list[ImageSettings]:
        """What each image was made with, in the images' order: its grid cell's own settings (an axis's) over the
        experiment's parameters. Public (no prompt, no keyword)."""
        if self.grid is not None and len(self.grid.picked_cells()) == len(self.images):
            return self.grid.image_settings(self.params, self.model.id)
        return [run_settings(self.params, image.seed, self.model.id) for image in self.images]

    def public_doc(self) -> dict[str, Any]:
        """The document without the prompt, negative prompt, keywords, grid spec or variant prompts."""
        doc = self.to_doc()
        for key in PRIVATE_FIELDS:
            doc.pop(key, None)
        for image in doc["images"]:
            for key in PRIVATE_IMAGE_FIELDS:
                image.pop(key)
        return doc

    def replace(self, **changes) -> "Experiment":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_doc(cls, doc: Any) -> "Experiment":
        """Build and validate; raise InvalidInput naming the first bad field."""
        if not isinstance(doc, dict):
            raise InvalidInput("an experiment document must be a JSON object")
        d = dict(doc)
        try:
            exp = cls(
                number=_req(d, "number", int),
                title=check_title(_req(d, "title", str)),
                slug=_req(d, "slug", str),
                dir=_req(d, "dir", str),
                model=ModelInfo(**_fields(ModelInfo, _req(d, "model", dict), "model")),
                images=tuple(ImageRecord(**_fields(ImageRecord, i, "images[]")) for i in _req(d, "images", list)),
                created=_req(d, "created", str),
                updated=_req(d, "updated", str),
                prompt=_opt(d, "prompt", str, ""),
                negative_prompt=_opt(d, "negative_prompt", str, ""),
                keywords=tuple(_opt(d, "keywords", list, [])),
                terms=tuple(_opt(d, "terms", list, [])),
                grid=_grid(_opt(d, "grid", dict, None)),
                params=_opt(d, "params", dict, {}),
                parent=_opt(d, "parent", int, None),
                status=_opt(d, "status", str, "unreleased"),
                published=_opt(d, "published", str, None),
                compute=Compute(**_fields(Compute, d["compute"], "compute")) if d.get("compute") is not None else None,
                tool_version=_opt(d, "tool_version", str, ""),
                schema=_opt(d, "schema", int, SCHEMA_VERSION),
                extra_models=tuple(ModelInfo(**_fields(ModelInfo, m, "extra_models[]")) for m in _opt(d, "extra_models", list, [])),
            )
        except TypeError as exc:
            raise InvalidInput(f"malformed experiment document: {exc}") from None
        exp._check()
        return exp

    def _check(self) -> None:
        n = self.number
        if n < 1:
            raise InvalidInput(f"experiment number must be 1 or more, not {n}")
        if self.status not in STATUSES:
            raise InvalidInput(f"#{n}: status must be one of {', '.join(STATUSES)}, not {quoted(self.status)}")
        if not self.images:
            raise InvalidInput(f"#{n}: an experiment needs at least one image")
        if not all(isinstance(k, str) and k for k in self.keywords):
            raise InvalidInput(f"#{n}: keywords must be non-empty strings")
        if not all(isinstance(t, str) for t in self.terms):
            raise InvalidInput(f"#{n}: terms must be strings")
        if self.parent is not None and not 1 <= self.parent < n:
            raise InvalidInput(f"#{n}: parent must be an earlier experiment, not #{self.parent}")
        for key, value in self.params.items():
            if not isinstance(key, str) or not _json_scalar_or_list(value):
                raise InvalidInput(f"#{n}: parameter {quoted(key)} must be a number, string, boolean, null or a list of them")
        for image in self.images:
            for file in (image.file, *([image.animation] if image.animation is not None else [])):
                if "/" in file or file.startswith(".") or not file:
                    raise InvalidInput(f"#{n}: image file name {quoted(file)} must be a plain name inside the folder")
            for name, value, top in (("seed", image.seed, SEED_LIMIT), ("width", image.width, SIZE_LIMIT), ("height", image.height, SIZE_LIMIT)):
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < top):
                    raise InvalidInput(f"#{n}: image {name} {quoted(value)} must be a whole number from 0 to {top - 1}")
            if image.score is not None and not _finite(image.score):
                raise InvalidInput(f"#{n}: image score must be a finite number")
        if self.compute is not None:
            for name in ("seconds", "energy_wh", "co2_g"):
                value = getattr(self.compute, name)
                if value is not None and not _finite(value):
                    raise InvalidInput(f"#{n}: compute {name} must be a finite number")
            threads = self.compute.threads
            if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
                raise InvalidInput(f"#{n}: compute threads must be a whole number of 1 or more")


def _grid(value: dict | None) -> GridRecord | None:
    if value is None:
        return None
    try:
        return GridRecord.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"experiment field 'grid' is malformed at {where or 'its top'}: {first['msg']}") from None


def _req(d: dict, key: str, typ: type):
    if key not in d:
        raise InvalidInput(f"experiment document lacks the field {quoted(key)}")
    return _typed(d[key], key, typ)


def _opt(d: dict, key: str, typ: type, default):
    value = d.get(key, default)
    return default if value is None else _typed(value, key, typ)


def _typed(value, key: str, typ: type):
    if typ is int and isinstance(value, bool) or not isinstance(value, typ):
        raise InvalidInput(f"experiment field {quoted(key)} must be {typ.__name__}, not {type(value).__name__}")
    return value


def _fields(cls, value, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput(f"experiment field {quoted(where)} must be an object")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - known
    if unknown:
        raise InvalidInput(f"experiment field {quoted(where)} has unknown keys: {', '.join(sorted(unknown))}")
    return value


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _json_scalar_or_list(v) -> bool:
    if isinstance(v, list):
        return all(_json_scalar_or_list(x) and not isinstance(x, list) for x in v)
    return v is None or isinstance(v, (str, bool, int)) or _finite(v)
