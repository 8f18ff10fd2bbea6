"""``Service``: the in-process object behind the HTTP routes (and the A1111 router). A FIFO queue of jobs persisted
in the state folder (0600: a restarted service knows what was queued; a job that was running when the service died
shows ``interrupted``, with its run), one worker thread that owns the device and runs the jobs through its
``executor.Executor`` (the local one, or Ray's), each job's progress events fanned out to any number of watchers (a late one first gets a replay),
cancel, and the idle timeout. The log names jobs, states and runs — never a prompt, never an error's text."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from journal.journal import tool_version
from journal.text import one_line

from ..contract import GivenOptions
from ..paths import write_private
from ..runner import events as ev
from .api import JobInfo, JobOutcome, JobRequest, ServiceStatus
from .errors import ServiceError
from .executor import Executor, LocalExecutor

log = logging.getLogger("promptism.service")
KEEP_ENDED = 50  # ended jobs the queue file remembers (for `runs --follow` and the TUI)


class QueueFull(ServiceError):
    """The queue holds as many jobs as it may."""


@dataclass
class _Job:
    info: JobInfo
    request: JobRequest
    cancel: bool = False
    history: list[ev.Event] = field(default_factory=list)  # what happened so far, less all but the last Step/Preview
    last_step: ev.Step | None = None
    last_preview: ev.Preview | None = None
    watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = field(default_factory=list)
    queued_at: float = field(default_factory=time.monotonic)


class Service:
    def __init__(self, queue_file: Path, *, journal: Path | None = None, idle_timeout_s: float = 900.0,
                 max_queue: int = 100, socket: str = "", listen: str | None = None,
                 on_idle: Callable[[], None] = lambda: None, executor: Executor | None = None):
        self.journal = journal
        self.executor = executor or LocalExecutor()
        self.queue_file = queue_file
        self.idle_timeout_s = idle_timeout_s
        self.max_queue = max_queue
        self.socket, self.listen = socket, listen
        self.on_idle = on_idle
        self.device: str | None = None
        self.started = _now()
        self._started_at = time.monotonic()
        self._last_active = time.monotonic()
        self._warmed_at = float("inf")  # when the worker's warm-up ended
        self._warm = threading.Event()  # set when it has (see wait_warm), or the service stops
        self._warm_error: str | None = None  # why the warm-up failed: every job fails with it
        self._jobs: dict[str, _Job] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="promptism-worker", daemon=True)
        self._load()

    # -- the API -----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait for the worker's warm-up (it imports torch and diffusers): code that imports the runner on another
        thread meanwhile may find diffusers half-imported (its lazy module is not thread-safe) and fail. False where
        ``timeout`` passed first; a service whose worker is not running (not started, or ended) has none to wait for."""
        return not self._worker.is_alive() or self._warm.wait(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Cancel the running job (its finished images stay; `resume` finishes it) and end the worker. Queued jobs
        end with this service (the next one lists them as interrupted, never run: their commands were told so)."""
        self._warm.set()  # (nothing waits for a warm-up any more)
        with self._cond:
            self._stopping = True
            for job in self._jobs.values():
                if job.info.state == "running":
                    job.cancel = True
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout)
        self.executor.close()

    def submit(self, request: JobRequest) -> JobInfo:
        with self._cond:
            queued = sum(1 for j in self._jobs.values() if j.info.state == "queued")
            if queued >= self.max_queue:
                raise QueueFull(f"the queue is full ({queued} jobs): wait for some to finish or cancel some "
                                "(max_queue in config.toml)")
            info = JobInfo(id=_new_id(), kind=request.kind, journal=request.journal, state="queued", created=_now(),
                           spec=request.spec, options=request.options, number=request.number, run=request.run)
            self._jobs[info.id] = _Job(info, request)
            self._last_active = time.monotonic()
            self._save()
            self._cond.notify_all()
        log.info("job %s queued (%s)", info.id, info.kind)
        return info

    def job(self, job_id: str) -> JobInfo:
        """KeyError for a job the service does not know."""
        with self._cond:
            return self._jobs[job_id].info

    def jobs(self) -> list[JobInfo]:
        """Every job it knows, oldest first."""
        with self._cond:
            return [j.info for j in self._jobs.values()]

    def current(self) -> JobInfo | None:
        with self._cond:
            return next((j.info for j in self._jobs.values() if j.info.state == "running"), None)

    def last_step(self, job_id: str) -> ev.Step | None:
        with self._cond:
            return self._jobs[job_id].last_step

    def last_preview(self, job_id: str) -> ev.Preview | None:
        with self._cond:
            return self._jobs[job_id].last_preview

    def cancel(self, job_id: str) -> JobInfo:
        """A queued job is cancelled at once, a running one between steps (its finished images stay)."""
        with self._cond:
            job = self._jobs[job_id]
            if job.info.state == "queued":
                self._end(job, "cancelled")
            elif job.info.state == "running":
                job.cancel = True
            return job.info

    async def subscribe(self, job_id: str) -> AsyncIterator[ev.Event]:
        """The job's events: a replay of what happened so far, then live ones; ends with the job. KeyError for a job
        the service does not know."""
        queue: asyncio.Queue = asyncio.Queue()
        with self._cond:
            job = self._jobs[job_id]
            replay = [*job.history, *(e for e in (job.last_step, job.last_preview) if e is not None)]
            live = not job.info.ended_yet
            if live:
                job.watchers.append((asyncio.get_running_loop(), queue))
        for event in replay:
            yield event
        if not live:
            return
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            with self._cond:
                job.watchers = [w for w in job.watchers if w[1] is not queue]

    async def wait(self, job_id: str) -> JobInfo:
        """Until the job ends."""
        async for _ in self.subscribe(job_id):
            pass
        return self.job(job_id)

    def status(self) -> ServiceStatus:
        from ..runner import models

        with self._cond:
            active = [j.info.public() for j in self._jobs.values() if not j.info.ended_yet]
            ended = [j.info.public() for j in self._jobs.values() if j.info.ended_yet][-5:]
        return ServiceStatus(pid=os.getpid(), started=self.started, uptime_s=round(time.monotonic() - self._started_at, 1),
                             device=self.device, loaded_models=models.loaded_models(), jobs=[*ended, *active],
                             socket=self.socket, listen=self.listen, idle_timeout_s=self.idle_timeout_s,
                             version=tool_version())

    # -- the worker --------------------------------------------------------------------------------------------------

    def _work(self) -> None:
        self._warm_up()
        while True:
            with self._cond:
                job = self._next()
                while job is None and not self._stopping:
                    if time.monotonic() - self._last_active > self.idle_timeout_s:
                        log.info("idle for %.0f s: exiting", self.idle_timeout_s)
                        self._stopping = True
                        self.on_idle()
                        return
                    self._cond.wait(timeout=min(1.0, self.idle_timeout_s))
                    job = self._next()
                if self._stopping:
                    return
                job.info = job.info.model_copy(update={"state": "running", "started": _now()})
                self._save()
            log.info("job %s running", job.info.id)
            try:
                self._execute(job)
            except Exception as exc:  # noqa: BLE001 - the worker outlives any job: it fails, the next one runs
                log.error("job %s: the worker caught %s; the service serves on", job.info.id, type(exc).__name__)
                with self._cond:
                    if not job.info.ended_yet:
                        self._end(job, "failed", error=failure(exc)[0], error_type="internal")

    def _warm_up(self) -> None:
        """The executor made ready now (torch imported, the device picked, Ray's workers started), so the first job
        does not wait for it."""
        try:
            self.device = self.executor.warm_up()
        except Exception as exc:  # noqa: BLE001 - the worker lives on: each job fails with this line (``_execute``)
            self._warm_error = failure(exc)[0]
            log.error("the warm-up failed (%s): every job fails with it", type(exc).__name__)
        finally:
            self._warmed_at = time.monotonic()
            self._warm.set()

    def _next(self) -> _Job | None:
        return next((j for j in self._jobs.values() if j.info.state == "queued"), None)

    def _execute(self, job: _Job) -> None:
        error = kind = None
        if job.queued_at < self._warmed_at:  # it came while the service was starting: it waited for the warm-up
            self._emit(job, ev.Phase(name="service warm-up (torch, diffusers, the device)",
                                     seconds=round(self._warmed_at - job.queued_at, 3)))
        if self._warm_error:  # (the machine's: a job cannot run where the runner could not be made ready)
            outcome, error, kind = JobOutcome(run=job.info.run, state="failed"), \
                f"the service could not get its runner ready: {self._warm_error}", "machine"
        else:
            try:
                outcome = self.executor.run(job.request, on_event=lambda e: self._emit(job, e),
                                            cancel=lambda: job.cancel)
            except Exception as exc:  # noqa: BLE001 - a job that fails is one line to its client; the service serves on
                log.info("job %s failed (%s)", job.info.id, type(exc).__name__)
                outcome, (error, kind) = JobOutcome(run=job.info.run, state="failed"), failure(exc)
        if outcome.state == "interrupted":  # (the executor's workers were lost: a Ray cluster gone)
            error = f"the Ray workers were lost during the job; `promptism resume {outcome.run}` finishes it"
            kind = "machine"
        with self._cond:
            self._end(job, outcome.state, run=outcome.run or job.info.run, verified=outcome.verified, error=error,
                      error_type=kind)
        log.info("job %s %s%s", job.info.id, job.info.state, f": run {job.info.run}" if job.info.run else "")

    def _emit(self, job: _Job, event: ev.Event) -> None:
        with self._cond:
            if isinstance(event, ev.Step):
                job.last_step = event
            elif isinstance(event, ev.Preview):
                job.last_preview = event
            else:
                job.history.append(event)
            if isinstance(event, ev.RunStarted):  # saved now: a service killed mid-run still knows the job's run
                job.info = job.info.model_copy(update={"run": event.run, "cells": event.cells, "done": 0})
                self._save()
            elif isinstance(event, ev.BatchFinished):  # saved too: after a kill, status counts what is on disk
                job.info = job.info.model_copy(update={"done": (job.info.done or 0) + len(event.cells)})
                self._save()
            self._tell(job, event)

    def _tell(self, job: _Job, item: ev.Event | None) -> None:
        for loop, queue in list(job.watchers):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the watcher's loop has closed
                job.watchers.remove((loop, queue))

    def _end(self, job: _Job, state: str, **update) -> None:
        """(Under the lock.) The job's end: recorded, saved, and its watchers' streams closed."""
        job.info = job.info.model_copy(update={"state": state, "ended": _now(), **update})
        self._tell(job, None)
        job.watchers.clear()
        self._last_active = time.monotonic()
        self._save()

    # -- the queue file ----------------------------------------------------------------------------------------------

    def _save(self) -> None:
        """(Under the lock.) Every job not ended, and the latest ended ones, with their requests."""
        ended = [j for j in self._jobs.values() if j.info.ended_yet][-KEEP_ENDED:]
        for old in [j for j in self._jobs.values() if j.info.ended_yet and j not in ended]:
            del self._jobs[old.info.id]
        doc = [_saved(j) for j in self._jobs.values()]
        try:
            write_private(self.queue_file, json.dumps({"jobs": doc}, ensure_ascii=False).encode("utf-8"))
        except (OSError, ValueError) as exc:  # (a full disk): the jobs go on in memory; a kill loses the queue
            log.error("the queue file could not be written (%s)", type(exc).__name__)

    def _load(self) -> None:
        """The jobs a previous service left, each ended: a running one was interrupted with it (`resume` finishes its
        run); a queued one never began and is not run now — its command was told the service stopped before it began,
        and nobody may be waiting for it any more."""
        try:
            doc = json.loads(self.queue_file.read_text(encoding="utf-8"))
            saved = [(JobInfo.model_validate(d["info"]), JobRequest.model_validate(d["request"])) for d in doc["jobs"]]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            kept = self.queue_file.with_name(f"{self.queue_file.name}.unreadable")
            os.replace(self.queue_file, kept)
            log.warning("the queue file could not be read (%s): kept as %s, starting empty", type(exc).__name__, kept)
            return
        for info, request in saved:
            if not info.ended_yet:  # its spec and options are kept once, in its request
                began = info.state == "running"
                info = info.model_copy(update={"spec": request.spec, "options": request.options, "state": "interrupted",
                                               "ended": _now()})
                log.info("job %s was interrupted%s", info.id, (f": run {info.run}" if info.run else "") if began
                         else " before it began: not run")
            self._jobs[info.id] = _Job(info, request)
        with self._cond:
            self._save()


def _saved(job: _Job) -> dict:
    """A job as the queue file (0600) keeps it: its prompt once, in its request, and only while the job may still
    run; an ended one without its spec, options or error (its run folder has what the journal needs)."""
    request = job.request.model_copy(update={"spec": None, "options": GivenOptions()}) if job.info.ended_yet else job.request
    return {"info": job.info.public().model_dump(mode="json"), "request": request.model_dump(mode="json")}


def failure(exc: Exception) -> tuple[str, str]:
    """A job's failure as its client gets it: one line (it may quote the prompt: never logged; options in the API's
    words) and its kind (``JobInfo.error_type``): the error's own code for a user's problem — the request's fault,
    which the A1111 routes answer with a 422 — "machine" for what the machine refused, "internal" for a bug."""
    from journal import ExperimentNotFound, InvalidInput, JournalError, NotAJournal, PrivacyError

    from ..errors import PromptismError, as_wire, option, os_error_line, worded

    if isinstance(exc, PromptismError):
        return one_line(exc.worded(as_wire)), exc.code
    if isinstance(exc, (InvalidInput, NotAJournal, PrivacyError, ExperimentNotFound)):  # the journal refusing what it was given
        return one_line(exc.worded(as_wire)), "invalid"
    if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__:
        return worded(f"out of memory: try a smaller {option('max-batch')} or {option('size')}", as_wire), "machine"
    if isinstance(exc, JournalError):  # a lock held, git failing, a full disk: the machine's, said by the journal
        return one_line(exc.worded(as_wire)), "machine"
    if isinstance(exc, OSError):
        return one_line(os_error_line(exc, as_wire)), "machine"
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return one_line(f"internal error: {type(exc).__name__}: {detail}"), "internal"


def _new_id() -> str:
    return "j" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
