"""Where a run's batches are made: ``RunModels``, a run's backends by the names its cells give their models (the engine
picks each batch's), here or in a worker; what a worker in another process (a Ray actor on another GPU or node) needs
to run a run's batches exactly as this process would (``Work``), the protocol of whatever deals them out
(``Dispatch``: the service's Ray executor, which also loads the run's models in its workers, not here), and
``run_batches``, which a worker calls — an ``Engine`` over its batches, so the engine stays the one place that runs
pipelines. Same models, device type, CPU threads, speed-ups, samplers and batches: the same pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from . import events as ev
from .backends import Backend, load
from .devices import device_name, pick_device, using_threads
from .engine import FinishedBatch, Job
from .models import ModelSource
from .records import ParamsRecord
from .speedups import Speedups, active


@dataclass(frozen=True)
class Work:
    """A run's batches' common settings, as its record has them (``execution._run`` makes it)."""

    source: ModelSource  # the run's own model
    sources: dict[str, ModelSource]  # a model axis's models by the names its cells give them (empty without one)
    device_type: str  # cpu | cuda | mps: the run's, which every worker uses
    threads: int | None  # torch's CPU threads on the CPU (they decide float reduction order), None on a GPU
    allow_pickle: bool
    params: ParamsRecord  # steps, guidance, size, sampler, speed-ups …
    preview_every: int = 0


class RunModels:
    """A run's backends by the names its cells give their models (a model axis's): the run's own, loaded before it
    starts, and the others loaded when their batches come — one after another (the batches of each model are
    together), each let go when the next one loads (the warm pool keeps what fits, as between runs)."""

    def __init__(self, first: Backend, sources: dict[str, ModelSource], device, *, allow_pickle: bool,
                 speedups: Speedups, on_event: Callable[[ev.Event], None]):
        self.first, self.sources, self.device = first, sources, device
        self.allow_pickle, self.speedups, self.on_event = allow_pickle, speedups, on_event
        self.current: tuple[str, Backend] | None = None

    def __call__(self, name: str | None) -> Backend:
        source = self.sources.get(name) if name is not None else None
        if source is None or source == self.first.source:
            return self.first
        if self.current is None or self.current[0] != name:
            self.current = None  # let go of the last one before the next loads
            self.on_event(ev.Loading(model=source.id, device=device_name(self.device)))
            self.current = (name, load(source, self.device, allow_pickle=self.allow_pickle, speedups=self.speedups))
        return self.current[1]


class Dispatch(Protocol):
    def load(self, source: ModelSource, device, *, allow_pickle: bool, speedups: Speedups) -> Backend:
        """``source``'s backend as a worker loads it (kept warm there for the batches): what the run's checks and
        record ask of the model is answered there, and this process loads no model of its own."""

    def run(self, work: Work, jobs: list[Job], layout: list[list[int]], *, on_event: Callable[[ev.Event], None],
            cancel: Callable[[], bool]) -> Iterator[FinishedBatch]:
        """Each batch of ``layout`` made (in the order they finish), numbered by its place in ``layout``; events as
        the engine's (a Step's counts over the whole run); ``engine.Cancelled`` once cancelled between steps,
        ``engine.Interrupted`` when its workers are gone with batches left."""


def run_batches(work: Work, jobs: list[Job], layout: list[list[int]], *, on_event: Callable[[ev.Event], None],
                cancel: Callable[[], bool]) -> Iterator[FinishedBatch]:
    """``layout``'s batches made by an Engine in this process — each on its model (the run's, or a model axis's),
    loaded once and kept warm (``models``), on the work's device type at its CPU threads, with its speed-ups and its
    sampler (the cell's, else the run's)."""
    device = pick_device(work.device_type)
    speedups = Speedups.from_params(work.params)
    backend = load(work.source, device, allow_pickle=work.allow_pickle, speedups=speedups)
    models = RunModels(backend, work.sources, device, allow_pickle=work.allow_pickle, speedups=speedups, on_event=on_event)
    with using_threads(work.threads), active(speedups):
        engine = backend.make_engine(work.params, on_event=on_event, cancel=cancel, preview_every=work.preview_every,
                                     models=models)
        yield from engine.run(jobs, layout)
