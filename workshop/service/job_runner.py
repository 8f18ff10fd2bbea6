"""Running one job for a client — the CLI or the TUI — with one protocol, whether the job runs in the service or in
this process: ``run`` passes the job's events to ``on_event`` as they come and returns how it ended (``JobOutcome``);
``cancel``, from any thread, asks it to stop between steps (its finished images are kept). The clients only render
events and word the outcome. Both ways end in ``executor.run_job``; the service way imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..runner import events as ev
from .api import JobInfo, JobOutcome, JobRequest


class JobRunner(Protocol):
    def run(self, request: JobRequest, on_event: Callable[[ev.Event], None], *,
            stop: Callable[[], bool] = lambda: False) -> JobOutcome | None:
        """Run ``request`` to its end. ``stop()``: the client is going away (the workshop quits) — a job in this
        process is cancelled, a service's job runs on and None is returned. Bad input raises (nothing written)."""

    def cancel(self) -> None:
        """Cancel the job between steps; before it has started, as soon as it does."""


class LocalJobs:
    """Jobs in this process (``--local``, ``service = false``): the runner is imported when the first one runs."""

    def __init__(self, before_write: Callable[[], None] = lambda: None):
        self.before_write = before_write  # called once a grid is checked, just before its run folder is written
        self.cancel_asked = False

    def run(self, request: JobRequest, on_event: Callable[[ev.Event], None], *,
            stop: Callable[[], bool] = lambda: False) -> JobOutcome:
        from .executor import run_job

        return run_job(request, on_event=on_event, cancel=lambda: self.cancel_asked or stop(),
                       before_write=self.before_write)

    def cancel(self) -> None:
        self.cancel_asked = True


class ServiceJobs:
    """Jobs in the service, through ``client`` — submitted here, or ``job``, one already there (to re-attach to or
    follow). A cancel goes over a connection of its own: the first one is inside the event stream's read."""

    def __init__(self, client, job: JobInfo | None = None):
        self.client = client
        self.job = job
        self.cancel_asked = False
        self.ended = False  # followed to its end (a client that stopped following leaves it False)

    def run(self, request: JobRequest | None, on_event: Callable[[ev.Event], None], *,
            stop: Callable[[], bool] = lambda: False) -> JobOutcome | None:
        if self.job is None:
            self.job = self.client.submit(request)
        if self.cancel_asked:  # cancelled before the service had the job
            self.cancel()
        ended = self.job
        for item in self.client.follow(self.job.id, self.job.journal):
            if stop():
                return None
            if isinstance(item, JobInfo):
                ended = item
            else:
                on_event(item)
        self.ended = True
        return JobOutcome(run=ended.run, state=ended.state, verified=ended.verified, error=ended.error)

    def cancel(self) -> None:
        from .client import ServiceClient

        self.cancel_asked = True
        if self.job is not None:
            ServiceClient(self.client.socket).cancel(self.job.id, self.job.journal)
