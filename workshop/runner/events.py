"""Progress events a run emits, in order: Loading (the pipeline, then a scorer: seconds the first time), RunStarted,
then per batch BatchStarted, Step…, Preview…, BatchFinished (or BatchSplit when out of memory), then RunFinished.
``to_json`` gives the JSON-lines form (previews carry images, which JSON leaves out)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from PIL import Image


@dataclass(frozen=True)
class Event:
    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "images"}
        return {"event": type(self).__name__, **data}


@dataclass(frozen=True)
class Loading(Event):
    """A model is about to load (cached after the first time in a process)."""

    model: str
    device: str
    part: str = "pipeline"  # pipeline | scorer


@dataclass(frozen=True)
class RunStarted(Event):
    run: str
    cells: int
    batches: int
    model: str
    device: str


@dataclass(frozen=True)
class BatchStarted(Event):
    batch: int
    cells: list[int]


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
class RunFinished(Event):
    run: str
    state: str  # finished | cancelled
    images: int
    seconds: float
