"""Timing what takes a job to its first step (imports, resolving and loading the model, …): ``phase`` times a block and
reports it as a ``Phase`` event to the sink that ``reporting`` installed for this thread (the job's ``on_event``), or to
nobody. Phases never overlap: one inside another is reported on its own and left out of the outer one's seconds, so
the phases of a job add up to the time they took together."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from . import events as ev

_SINK: ContextVar[Callable[[ev.Event], None] | None] = ContextVar("phase_sink", default=None)
_INNER: ContextVar[list[float] | None] = ContextVar("inner_phases", default=None)  # seconds of the phases inside
MIN_REST_S = 0.05  # what an outer phase has left beside the phases inside it is reported from this on


@contextmanager
def reporting(on_event: Callable[[ev.Event], None]) -> Iterator[None]:
    """Report the phases timed in this thread, within the block, to ``on_event``."""
    token = _SINK.set(on_event)
    try:
        yield
    finally:
        _SINK.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as the phase ``name`` (reported when it ends without an error, if anyone listens)."""
    sink = _SINK.get()
    if sink is None:
        yield
        return
    outer, inner = _INNER.get(), []
    token = _INNER.set(inner)
    started = time.perf_counter()
    try:
        yield
    finally:
        _INNER.reset(token)
    took = time.perf_counter() - started
    if outer is not None:
        outer.append(took)
    rest = took - sum(inner)
    if not inner or rest >= MIN_REST_S:
        sink(ev.Phase(name=name, seconds=round(rest, 3)))
