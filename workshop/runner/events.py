"""Progress events a run emits, in order: Loading (the pipeline, then a scorer: seconds the first time), RunStarted,
PromptPastLimit (when a prompt is longer than the model reads), Note (what a model lacks that its images depend on), then per batch BatchStarted, Step…, Preview…, BatchFinished (or BatchSplit when out of memory; BatchRetried when a
Ray worker died), then RunFinished —
and, before the first step, a Phase as each part of getting there ends (imports, loading the model: see ``timing``).
``to_json`` gives the JSON-lines form (previews carry images, which JSON leaves out unless ``previews=True``: then
as base64 PNG, the service's wire form); ``from_json`` rebuilds the same typed event from either."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Event:
    def to_json(self, previews: bool = False) -> dict:
        """The event as JSON data; a Preview's images as base64 PNG when ``previews``, else left out."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self, Preview):
            data.pop("images")
            if previews:
                data["images"] = [_png64(image) for image in self.images]
        return {"event": type(self).__name__, **data}


def from_json(data: dict) -> Event:
    """The event ``Event.to_json`` wrote (a Preview without its images gets none); ValueError for anything else."""
    kind = _KINDS.get(data.get("event")) if isinstance(data, dict) else None
    if kind is None:
        raise ValueError(f"not a progress event: {str(data)[:80]}")
    values = {f.name: data.get(f.name) for f in fields(kind) if f.name in data}
    if kind is Preview:
        values["images"] = [image for text in data.get("images", []) if (image := _from_png64(text)) is not None]
    try:
        return kind(**values)
    except TypeError as exc:
        raise ValueError(f"a {kind.__name__} event with the wrong fields: {exc}") from None


def _png64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_png64(text) -> Image.Image | None:
    """A preview's image, decoded as every image promptism opens (bounded by the pixel limit); None for one that is
    not an image or is over the limit: a preview is never worth failing a run's progress for."""
    from journal import InvalidInput  # (a client that shows no previews never imports Pillow)
    from journal.images import open_image

    try:
        return open_image(io.BytesIO(base64.b64decode(text, validate=True)))
    except (InvalidInput, ValueError, TypeError):  # (bad base64 is a ValueError; a non-text, a TypeError)
        return None


@dataclass(frozen=True)
class Loading(Event):
    """A model is about to load (cached after the first time in a process)."""

    model: str
    device: str
    part: str = "pipeline"  # pipeline | scorer


@dataclass(frozen=True)
class Phase(Event):
    """A part of getting a job to its first step — an import, resolving or loading the model, the service's warm-up,
    … — and the seconds it took (``promptism generate --verbose`` lists them)."""

    name: str
    seconds: float


@dataclass(frozen=True)
class RunStarted(Event):
    run: str
    cells: int
    batches: int
    model: str  # as credited (a local folder's or single file's name: its path is private)
    device: str


@dataclass(frozen=True)
class PromptPastLimit(Event):
    """Some images' prompts are longer than the text encoder's window (CLIP's 77 tokens, a window per BREAK part):
    the model sees only the start of each. Counts only — never the prompt's words."""

    cells: list[int]
    tokens: int  # the longest of them, start and end tokens included
    limit: int


@dataclass(frozen=True)
class Note(Event):
    """Something about the model the run's images depend on, said once before it starts (an SD 3 without T5: its
    prompts are read by its CLIPs alone)."""

    text: str


@dataclass(frozen=True)
class BatchStarted(Event):
    batch: int
    cells: list[int]
    worker: str = ""  # where it runs, when not in this process: a Ray worker as HOST:PID


@dataclass(frozen=True)
class Step(Event):
    batch: int
    cells: list[int]
    step: int
    steps: int
    done: int  # steps done in the whole run
    total: int
    it_per_s: float
    eta_s: float | None


@dataclass(frozen=True)
class Preview(Event):
    batch: int
    cells: list[int]
    step: int
    images: list[Image.Image] = field(repr=False)


@dataclass(frozen=True)
class BatchFinished(Event):
    batch: int
    cells: list[int]
    seconds: float


@dataclass(frozen=True)
class BatchSplit(Event):
    """Out of GPU memory: the batch is retried in two halves, and later batches keep to the smaller size."""

    cells: list[int]
    size: int
    new_size: int


@dataclass(frozen=True)
class BatchRetried(Event):
    """The worker making a batch died (killed, out of memory, its node lost): its cells go to another worker."""

    batch: int
    cells: list[int]
    attempt: int  # the how-many-th retry of these cells
    worker: str = ""


@dataclass(frozen=True)
class RunFinished(Event):
    run: str
    state: str  # finished | cancelled | interrupted (the workers were lost)
    images: int
    seconds: float


_KINDS: dict[str, type[Event]] = {kind.__name__: kind for kind in
                                  (Loading, Phase, RunStarted, PromptPastLimit, Note, BatchStarted, Step, Preview, BatchFinished, BatchSplit, BatchRetried,
                                   RunFinished)}
