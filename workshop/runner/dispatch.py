"""Batches made elsewhere: what a worker in another process (a Ray actor on another GPU or node) needs to run a run's
batches exactly as this process would (``Work``), the protocol of whatever deals them out (``Dispatch``: the service's
Ray executor), and ``run_batches``, which a worker calls — an ``Engine`` over its batches, so the engine stays the one
place that runs pipelines. Same model, device type, CPU threads, speed-ups, sampler and batches: the same pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from . import events as ev
from .backends import load
from .devices import pick_device, using_threads
from .engine import FinishedBatch, Job
from .models import ModelSource
from .records import ParamsRecord
from .speedups import Speedups, active


@dataclass(frozen=True)
class Work:
    """A run's batches' common settings, as its record has them (``session._run`` makes it)."""

    source: ModelSource
    device_type: str  # cpu | cuda | mps: the run's, which every worker uses
    threads: int | None  # torch's CPU threads on the CPU (they decide float reduction order), None on a GPU
    allow_pickle: bool
    params: ParamsRecord  # steps, guidance, size, sampler, speed-ups …
    preview_every: int = 0


class Dispatch(Protocol):
    def run(self, work: Work, jobs: list[Job], layout: list[list[int]], *, on_event: Callable[[ev.Event], None],
            cancel: Callable[[], bool]) -> Iterator[FinishedBatch]:
        """Each batch of ``layout`` made (in the order they finish), numbered by its place in ``layout``; events as
        the engine's (a Step's counts over the whole run); ``engine.Cancelled`` once cancelled between steps,
        ``engine.Interrupted`` when its workers are gone with batches left."""


def run_batches(work: Work, jobs: list[Job], layout: list[list[int]], *, on_event: Callable[[ev.Event], None],
                cancel: Callable[[], bool]) -> Iterator[FinishedBatch]:
    """``layout``'s batches made by an Engine in this process — the model loaded once and kept warm (``models``), on
    the work's device type at its CPU threads, with its speed-ups and sampler."""
    device = pick_device(work.device_type)
    speedups = Speedups.from_params(work.params)
    backend = load(work.source, device, allow_pickle=work.allow_pickle, speedups=speedups)
    with using_threads(work.threads), active(speedups):
        engine = backend.make_engine(work.params, on_event=on_event, cancel=cancel, preview_every=work.preview_every)
        yield from engine.run(jobs, layout)
