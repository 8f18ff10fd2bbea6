"""The service's Ray executor: a job's planned batches dealt to Ray actors — one per GPU of the cluster (``num_gpus=1``),
or, on a cluster without GPUs, ``CPU_WORKERS`` CPU actors — each holding a warm pipeline per model (``runner.models``'
pool, in the actor's process) and running an ``Engine`` over the batches it is given (``batches.run_batches``). Each
finished batch's pixels come back to the service, which writes the run folder as the local executor does (the same
``BatchWriter``); the engine's events stream back with them (a Ray streaming generator), their step counts made the
run's. An actor that dies has its batch's cells dealt again to another, up to ``RETRIES`` times each (a
``BatchRetried`` event); cancel reaches every actor between steps; when every actor is gone (the cluster lost) the run
is left ``interrupted``, and ``resume`` finishes it. This is the only module that imports Ray (``promptism[ray]``)."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayError, RayTaskError

from ..runner import events as ev
from ..runner.batches import Work, run_batches
from ..runner.engine import Cancelled, FinishedBatch, Interrupted, Job
from ..errors import RunError
from .api import JobOutcome, JobRequest
from .errors import ServiceError
from .executor import run_job, warm_runner

RETRIES = 2  # times a batch's cells are dealt again after the actor making them died
RESTARTS = 3  # times Ray restarts a dead actor (its warm models are loaded again)
CPU_WORKERS = 2  # actors on a cluster without GPUs (for tests: CPUs give no speed-up)
PING_TIMEOUT_S = 120.0  # a restarted actor imports torch and answers; one that does not is given up
IN_FLIGHT = 2  # batches dealt to an actor at once: the next waits there while one runs, so no round trip is between


@ray.remote(max_concurrency=IN_FLIGHT + 1, max_restarts=RESTARTS)
class Worker:
    """One device's worker: makes the batches it is dealt, one at a time, streaming the engine's events, then each
    finished batch. Its threads: IN_FLIGHT calls of ``run`` (one makes its batch, the next waits its turn) and one
    for ``cancel``."""

    def __init__(self):
        self._turn = threading.Lock()
        self._cancelled: set[str] = set()
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def ping(self) -> str:
        return self.name

    def cancel(self, job: str) -> None:
        self._cancelled.add(job)

    def run(self, job: str, work: Work, jobs: list[Job], layout: list[list[int]]) -> Iterator[object]:
        """Events, then a FinishedBatch per batch of ``layout``; a ``Cancelled`` (yielded, not raised) once ``job``
        is cancelled."""
        with self._turn:
            yield from self._make(job, work, jobs, layout)

    def _make(self, job: str, work: Work, jobs: list[Job], layout: list[list[int]]) -> Iterator[object]:
        if job in self._cancelled:
            yield Cancelled()
            return
        items: queue.SimpleQueue = queue.SimpleQueue()
        end = object()

        def make() -> None:
            try:
                for batch in run_batches(work, jobs, layout, on_event=items.put, cancel=lambda: job in self._cancelled):
                    items.put(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the generator, which raises it to the service
                items.put(exc)
            items.put(end)

        threading.Thread(target=make, name="promptism-batch", daemon=True).start()
        while (item := items.get()) is not end:
            if isinstance(item, BaseException) and not isinstance(item, Cancelled):
                raise item
            yield item


@dataclass
class _Slot:
    actor: object  # the Worker's handle
    name: str  # HOST:PID
    dead: bool = False  # died during this job: its batches go to the others


class RayExecutor:
    """The service's executor on a Ray cluster: ``address`` "auto" joins the one RAY_ADDRESS names or ``ray start``
    began on this machine, else starts a local one (every GPU of this machine, stopped with the service); another
    address (``HOST:PORT``, ``ray://HOST:10001``) joins that cluster.
    ``cpu_workers``: the actors on a cluster without GPUs.
    Where Ray is already initialised in this process (tests), that cluster is used and left running."""

    def __init__(self, address: str = "auto", *, cpu_workers: int = CPU_WORKERS):
        self.address = address
        self.cpu_workers = cpu_workers
        self.slots: list[_Slot] = []
        self._owns_ray = False

    def connect(self) -> None:
        """Join the cluster (or start it); ServiceError, in one line, if that fails."""
        if ray.is_initialized():
            return
        try:
            ray.init(address=None if self.address == "auto" else self.address, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ServiceError(f"cannot reach the Ray cluster at {self.address} ({type(exc).__name__}): start it "
                               "(`ray start --head`) or pass --ray auto") from None
        self._owns_ray = True

    def warm_up(self) -> str:
        where = warm_runner()  # prepares and writes the runs here
        self.connect()
        self._fill()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        kind = f"{gpus} GPU" if gpus else f"{len(self.slots)} CPU"
        return f"Ray: {len(self.slots)} workers ({kind}) · runs written here on {where}"

    def run(self, request: JobRequest, *, on_event, cancel) -> JobOutcome:
        self._fill()
        return run_job(request, on_event=on_event, cancel=cancel, dispatch=_Deal(self.slots))

    def close(self) -> None:
        for slot in self.slots:
            ray.kill(slot.actor, no_restart=True)
        self.slots = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def _fill(self) -> None:
        """One actor per GPU of the cluster (CPU_WORKERS on a cluster without), those that died replaced."""
        self.slots = [_Slot(s.actor, name) for s in self.slots if (name := _name(s.actor)) is not None]
        gpus = int(ray.cluster_resources().get("GPU", 0))
        want = gpus or self.cpu_workers
        made = [Worker.options(num_gpus=1, num_cpus=1) if gpus else Worker.options(num_cpus=1)
                for _ in range(want - len(self.slots))]
        actors = [options.remote() for options in made]
        for actor in actors:
            name = _name(actor)
            if name is None:
                raise ServiceError("a Ray worker did not start (see `ray status`: are the GPUs free?)")
            self.slots.append(_Slot(actor, name))


def _name(actor) -> str | None:
    """The actor's HOST:PID once it answers (after a restart too); None when it is gone for good or does not answer
    within PING_TIMEOUT_S."""
    deadline = time.monotonic() + PING_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            return ray.get(actor.ping.remote(), timeout=left)
        except ActorUnavailableError:  # restarting
            time.sleep(0.1)
        except (RayError, GetTimeoutError):
            return None
    return None


class _Deal:
    """One job's batches dealt to the slots' actors (``dispatch.Dispatch``): IN_FLIGHT threads per actor each take the
    next batch left and stream its events and pixels into one queue, which ``run`` yields from in the run's thread."""

    def __init__(self, slots: list[_Slot]):
        self.slots = slots

    def run(self, work: Work, jobs: list[Job], layout: list[list[int]], *, on_event: Callable[[ev.Event], None],
            cancel: Callable[[], bool]) -> Iterator[FinishedBatch]:
        by_index = {j.index: j for j in jobs}
        todo: list[tuple[int, list[int]]] = list(enumerate(layout))  # (the planned batch's number, cells left)
        tries: dict[int, int] = {}
        out: queue.SimpleQueue = queue.SimpleQueue()
        turn = threading.Condition()
        busy = [0]  # batches being made: one may yet come back to be dealt again
        stop = threading.Event()
        progress = _Progress(sum(by_index[b[0]].effective_steps for b in layout), on_event)
        job = uuid.uuid4().hex  # what cancel names to the actors

        def deal(slot: _Slot) -> None:
            while True:
                with turn:
                    while not (stop.is_set() or todo) and busy[0]:
                        turn.wait(0.1)
                    if stop.is_set() or not todo or slot.dead:
                        return
                    number, cells = todo.pop(0)
                    busy[0] += 1
                try:
                    if not self._make(job, slot, work, number, [by_index[i] for i in cells], out, progress, todo,
                                      tries, turn):
                        return
                finally:
                    with turn:
                        busy[0] -= 1
                        turn.notify_all()

        threads = [threading.Thread(target=deal, args=(s,), name="promptism-ray", daemon=True)
                   for s in self.slots for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        cancelled, failure = False, None
        try:
            while any(t.is_alive() for t in threads) or not out.empty():
                if not cancelled and cancel():
                    cancelled = True
                    self._stop(stop, job)
                try:
                    item = out.get(timeout=0.02)
                except queue.Empty:
                    continue
                if isinstance(item, FinishedBatch):
                    yield item
                elif isinstance(item, ev.Event):
                    on_event(item)
                elif failure is None:
                    failure = item
                    self._stop(stop, job)
        finally:
            if any(t.is_alive() for t in threads):  # the run ended early (the writer failed): stop the actors
                self._stop(stop, job)
            for thread in threads:
                thread.join()
        if failure is not None:
            raise failure
        if cancelled:
            raise Cancelled()
        if todo:
            raise Interrupted()

    def _make(self, job: str, slot: _Slot, work: Work, number: int, jobs: list[Job], out: queue.SimpleQueue,
              progress: _Progress, todo: list, tries: dict[int, int], turn: threading.Condition) -> bool:
        """Batch ``number``'s ``jobs`` made by ``slot``'s actor, its events relayed and its pixels put ``out``;
        whether the actor can take another batch (one that died does not, unless it was the last alive: then it is
        waited for, as Ray restarts it)."""
        cells = [j.index for j in jobs]
        made: set[int] = set()
        try:
            for ref in slot.actor.run.options(num_returns="streaming").remote(job, work, jobs, [cells]):
                item = ray.get(ref)
                if isinstance(item, FinishedBatch):
                    made.update(item.cells)
                    out.put(replace(item, number=number))
                elif isinstance(item, Cancelled):
                    return False
                else:
                    progress.relay(number, item, slot.name)
            return True
        except RayTaskError as exc:  # the batch itself failed (bad input, a model that does not load)
            out.put(exc.cause if isinstance(exc.cause, Exception) else RunError(str(exc).splitlines()[0]))
            return False
        except RayError as exc:  # the actor died, or the cluster went away
            left = [i for i in cells if i not in made]  # none: it died after its batch came (nothing to deal again)
            if left:
                progress.forget(number)  # (before another slot can take the batch and count its steps)
            with turn:
                if left:
                    tries[number] = attempt = tries.get(number, 0) + 1
                    if attempt > RETRIES:
                        out.put(RunError(f"batch {number} failed on {attempt} Ray workers (each died): see `ray "
                                         "status` and the workers' logs"))
                        return False
                    todo.insert(0, (number, left))
                    out.put(ev.BatchRetried(batch=number, cells=left, attempt=attempt, worker=slot.name))
                slot.dead = True
                last = all(s.dead for s in self.slots)
                turn.notify_all()
            if not last or isinstance(exc, ActorDiedError) or (name := _name(slot.actor)) is None:
                return False  # the others take its batches (the next job waits for its restart: ``_fill``)
            slot.name, slot.dead = name, False
            return True

    def _stop(self, stop: threading.Event, job: str) -> None:
        """No more batches dealt, and the batches running stopped between steps."""
        stop.set()
        for slot in self.slots:
            try:
                slot.actor.cancel.remote(job)
            except RayError:
                pass


class _Progress:
    """The actors' events as the run's: batch numbers as planned, and each Step's counts, rate and ETA over the whole
    run (the steps of a batch whose actor died are taken back)."""

    def __init__(self, total: int, on_event: Callable[[ev.Event], None]):
        self.total = total
        self.on_event = on_event
        self.done = 0
        self.by_batch: dict[int, int] = {}
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def relay(self, number: int, event: ev.Event, worker: str) -> None:
        with self.lock:
            if isinstance(event, ev.Step):
                self.done += 1
                self.by_batch[number] = self.by_batch.get(number, 0) + 1
                elapsed = time.monotonic() - self.started
                rate = self.done / elapsed if elapsed > 0 else 0.0
                event = replace(event, batch=number, done=self.done, total=self.total, it_per_s=rate,
                                eta_s=(self.total - self.done) / rate if rate else None)
            elif isinstance(event, ev.BatchStarted):
                event = replace(event, batch=number, worker=worker)
            elif hasattr(event, "batch"):
                event = replace(event, batch=number)
            self.on_event(event)

    def forget(self, number: int) -> None:
        with self.lock:
            self.done -= self.by_batch.pop(number, 0)
