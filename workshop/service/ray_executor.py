"""The service's Ray executor: a job's planned batches dealt to Ray actors — one per GPU of the cluster (``num_gpus=1``),
or, on a cluster without GPUs, ``CPU_WORKERS`` CPU actors — each holding a warm pipeline per model (``runner.models``'
pool, in the actor's process) and running an ``Engine`` over the batches it is given (``batches.run_batches``). The
service loads no model: what a run's checks and record ask of its model is asked of an actor (``_RemoteBackend``).
Each finished batch's pixels come back to the service, which writes the run folder as the local executor does (the
same ``BatchWriter``) — at most ``IN_FLIGHT`` batches per actor held for it, however far behind it is; the engine's
events stream back with them (a Ray streaming generator), their step counts made the run's. An actor that dies has
its batch's cells dealt again to another, up to ``RETRIES`` times each (a ``BatchRetried`` event); cancel reaches
every actor between steps; when every actor is gone (the cluster lost) the run is left ``interrupted``, and
``resume`` finishes it. Actors the cluster cannot place are not waited for: the others go on, and where none can
start, warm-up says what is missing. This is the only module that imports Ray (``promptism[ray]``)."""

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

from journal import ModelInfo

from ..compose.grid import Grid
from ..runner import events as ev
from ..runner.backends import Backend, load
from ..runner.batches import Work, run_batches
from ..runner.devices import pick_device
from ..runner.engine import Cancelled, FinishedBatch, Interrupted, Job
from ..runner.models import ModelSource
from ..runner.options import RunOptions
from ..runner.speedups import Speedups
from ..errors import RunError
from .api import JobOutcome, JobRequest
from .errors import ServiceError
from .executor import run_job, warm_runner

RETRIES = 2  # times a batch's cells are dealt again after the actor making them died
RESTARTS = 3  # times Ray restarts a dead actor (its warm models are loaded again)
CPU_WORKERS = 2  # actors on a cluster without GPUs (for tests: CPUs give no speed-up)
PING_TIMEOUT_S = 120.0  # a restarted actor imports torch and answers; one that does not is given up
IN_FLIGHT = 2  # batches dealt to an actor at once: the next waits there while one runs, so no round trip is between
# (each dealing thread deals its next batch once the writer has taken its last: the service holds at most IN_FLIGHT
# finished batches per actor for the writer)

# A model as a worker loads it: its source, the device type, allow_pickle, the speed-ups
Model = tuple[ModelSource, str, bool, Speedups]


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

    def ask(self, model: Model, method: str, args: tuple) -> object:
        """``method(*args)`` of ``model``'s backend, loaded here (and kept warm for the batches to come): what the
        service's checks and the run's record need of the model, which the service does not load."""
        source, device_type, allow_pickle, speedups = model
        backend = load(source, pick_device(device_type), allow_pickle=allow_pickle, speedups=speedups)
        return getattr(backend, method)(*args)

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
        self.short: str | None = None  # why some workers are missing (the cluster cannot place them now), in words
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
        """The cluster joined and its workers started (those it can place); torch imported here, where the runs are
        prepared and written — but no model loaded: the workers load them."""
        where = warm_runner()
        self.connect()
        self._fill()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        kind = f"{gpus} GPU" if gpus else f"{len(self.slots)} CPU"
        short = f" · {self.short}" if self.short else ""
        return f"Ray: {len(self.slots)} workers ({kind}){short} · runs written here on {where}"

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
        """One actor per GPU of the cluster (CPU_WORKERS on a cluster without), those that died replaced — as many as
        the cluster can place now (``short`` says why the others are missing; the next job tries again).
        ServiceError, in one line naming what the cluster lacks, where no worker can start at all."""
        self.slots = [_Slot(s.actor, name) for s in self.slots if (name := _name(s.actor)) is not None]
        gpus = int(ray.cluster_resources().get("GPU", 0))
        request = _request(gpus)
        need = (gpus or self.cpu_workers) - len(self.slots)
        ever = _capacity(request) - len(self.slots)
        now = min(need, _room(request), ever)
        # none of ours alive and none free now, though the cluster could hold them: wait for them (freed resources
        # reach Ray's view within moments; resources another job holds, until PING_TIMEOUT_S)
        count = now if self.slots or now else min(need, ever)
        self.short = f"{need - count} more cannot start: {_lacking(request, count)}" if count < need else None
        if count <= 0 and not self.slots:
            raise ServiceError(f"no Ray worker can start: {_lacking(request, 0)}")
        actors = [Worker.options(**_options(request)).remote() for _ in range(count)]
        for actor in actors:
            name = _name(actor)
            if name is None:
                raise ServiceError(f"a Ray worker did not start within {PING_TIMEOUT_S:g} s (see `ray status`: are "
                                   "the GPUs free?)")
            self.slots.append(_Slot(actor, name))


def _request(gpus: int) -> dict[str, float]:
    """What one worker asks the cluster for, by Ray's resource names: a GPU and a CPU, or a CPU on a cluster without
    GPUs."""
    return {"GPU": 1.0, "CPU": 1.0} if gpus else {"CPU": 1.0}


def _options(request: dict[str, float]) -> dict:
    """``request`` as ``Worker.options`` takes it."""
    custom = {name: amount for name, amount in request.items() if name not in ("CPU", "GPU")}
    return {"num_cpus": request.get("CPU", 0), "num_gpus": request.get("GPU", 0), "resources": custom}


def _fits(request: dict[str, float], resources: dict[str, float]) -> int:
    """How many workers asking ``request`` ``resources`` hold."""
    return min(int(resources.get(name, 0) // amount) for name, amount in request.items())


def _room(request: dict[str, float]) -> int:
    """Workers asking ``request`` that the cluster's free resources hold now."""
    return _fits(request, ray.available_resources())


def _capacity(request: dict[str, float]) -> int:
    """Workers asking ``request`` that the cluster's nodes hold when nothing else runs (each worker's resources on
    one node)."""
    return sum(_fits(request, node["Resources"]) for node in ray.nodes() if node["Alive"])


def _lacking(request: dict[str, float], placing: int) -> str:
    """Why one more worker than ``placing`` cannot start, in words: what it asks for, what the cluster has free."""
    free, total = ray.available_resources(), ray.cluster_resources()
    asks = ", ".join(f"{amount:g} {name}" for name, amount in request.items())
    short = [f"{max(0.0, free.get(name, 0) - placing * amount):g} of {total[name]:g} {name} free" if total.get(name)
             else f"no {name}" for name, amount in request.items()
             if free.get(name, 0) - placing * amount < amount]
    return (f"each asks for {asks}, and the cluster has {', '.join(short) or 'no node with all of them free'} "
            "(see `ray status`)")


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
    next batch left and stream its events and pixels into one queue, which ``run`` yields from in the run's thread;
    a thread takes its next batch once the writer has taken its last. Its models are loaded by the actors."""

    def __init__(self, slots: list[_Slot]):
        self.slots = slots

    def load(self, source: ModelSource, device, *, allow_pickle: bool, speedups: Speedups) -> Backend:
        """``source``'s backend, loaded now by the first actor (its Loading event and phase are this call's; a
        model that does not load is refused now); the run's checks and record ask it there."""
        backend = _RemoteBackend(self.slots[0], (source, device.type, allow_pickle, speedups))
        backend.model_info()
        return backend

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
            held = _Held()  # this thread's finished batches not yet taken by the writer
            while held.wait_taken(stop):
                with turn:
                    while not (stop.is_set() or todo) and busy[0]:
                        turn.wait(0.1)
                    if stop.is_set() or not todo or slot.dead:
                        return
                    number, cells = todo.pop(0)
                    busy[0] += 1
                try:
                    if not self._make(job, slot, work, number, [by_index[i] for i in cells], held, out, progress,
                                      todo, tries, turn):
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
                if isinstance(item, _Finished):
                    yield item.batch  # (back here once the writer has taken it)
                    item.held.taken()
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

    def _make(self, job: str, slot: _Slot, work: Work, number: int, jobs: list[Job], held: _Held,
              out: queue.SimpleQueue, progress: _Progress, todo: list, tries: dict[int, int],
              turn: threading.Condition) -> bool:
        """Batch ``number``'s ``jobs`` made by ``slot``'s actor, its events relayed and its pixels put ``out`` (each
        counted ``held`` until the writer takes it); whether the actor can take another batch (one that died does
        not, unless it was the last alive: then it is waited for, as Ray restarts it)."""
        cells = [j.index for j in jobs]
        made: set[int] = set()
        try:
            for ref in slot.actor.run.options(num_returns="streaming").remote(job, work, jobs, [cells]):
                item = ray.get(ref)
                if isinstance(item, FinishedBatch):
                    made.update(item.cells)
                    out.put(held.add(replace(item, number=number)))
                elif isinstance(item, Cancelled):
                    return False
                else:
                    progress.relay(number, item, slot.name)
            return True
        except RayTaskError as exc:  # the batch itself failed (bad input, a model that does not load)
            out.put(_cause(exc))
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


@dataclass(frozen=True)
class _Finished:
    """A finished batch on its way to the writer, and the count of its dealing thread's that it is in."""

    batch: FinishedBatch
    held: _Held


class _Held:
    """A dealing thread's finished batches that the writer has not taken yet: the thread deals no other batch until
    it has them all, so a writer that falls behind stops the dealing (the service holds at most IN_FLIGHT finished
    batches per actor, besides the writer's own PENDING) instead of piling the pixels up in memory."""

    def __init__(self):
        self.count = 0
        self._cond = threading.Condition()

    def add(self, batch: FinishedBatch) -> _Finished:
        with self._cond:
            self.count += 1
        return _Finished(batch, self)

    def taken(self) -> None:
        with self._cond:
            self.count -= 1
            self._cond.notify_all()

    def wait_taken(self, stop: threading.Event) -> bool:
        """Until the writer has taken every batch counted (True), or the run stops (False)."""
        with self._cond:
            while self.count and not stop.is_set():
                self._cond.wait(0.1)
        return not stop.is_set()


class _RemoteBackend:
    """A run's model under Ray, as the service sees it (``backends.Backend``, less an engine: the actors make the
    batches): loaded by an actor, never in the service, and what the run's checks and record ask of it — its native
    size, most steps, model info, parameters, the grid's checks — asked of that actor, which keeps it warm for the
    batches."""

    def __init__(self, slot: _Slot, model: Model):
        self.source = model[0]
        self.guided = self.source.kind == "guided"
        self._slot, self._model = slot, model

    def native_size(self) -> int:
        return self._ask("native_size")

    def max_steps(self) -> tuple[int | None, str]:
        return self._ask("max_steps")

    def model_info(self) -> ModelInfo:
        return self._ask("model_info")

    def params(self, options: RunOptions) -> dict:
        return self._ask("params", options)

    def check(self, grid: Grid, options: RunOptions) -> None:
        self._ask("check", grid, options)

    def _ask(self, method: str, *args):
        try:
            return ray.get(self._slot.actor.ask.remote(self._model, method, args))
        except RayTaskError as exc:  # the model's own refusal (RunError), or its failure to load
            raise _cause(exc) from None
        except RayError:
            raise RunError(f"the Ray worker {self._slot.name} was lost while it loaded {self.source.id}: try again "
                           "(see `ray status`)") from None


def _cause(exc: RayTaskError) -> Exception:
    """What a Ray task raised, as itself where Ray kept it."""
    return exc.cause if isinstance(exc.cause, Exception) else RunError(str(exc).splitlines()[0])


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
