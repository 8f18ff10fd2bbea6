"""The workshop's link to the service: follow a job, cancel it, and find the jobs of this journal that
outlived an earlier workshop (to re-attach to them). Called from thread workers, never on the UI thread; torch-free."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..runner import events as ev
from ..service.api import JobInfo
from ..service.client import ServiceClient, connect


@dataclass
class Remote:
    """A service client for one journal."""

    client: ServiceClient
    journal: str

    @classmethod
    def start(cls, journal: str) -> Remote:
        """The running service, started detached when none runs (ServiceUnavailable if it cannot be)."""
        return cls(connect(autostart=True), journal)

    def follow(self, job: JobInfo, on_event: Callable[[ev.Event], None], stop: Callable[[], bool]) -> JobInfo | None:
        """Pass the job's events to ``on_event`` (what happened so far first) until it ends — the job as it ended —
        or until ``stop()`` (the workshop quits; the job runs on): None."""
        ended = job
        for item in self.client.follow(job.id, self.journal):
            if stop():
                return None
            if isinstance(item, JobInfo):
                ended = item
            else:
                on_event(item)
        return ended

    def cancel(self, job: JobInfo) -> None:
        ServiceClient(self.client.socket).cancel(job.id, self.journal)  # its own connection: follow holds the other

    def unfinished(self) -> list[JobInfo]:
        """This journal's jobs that are running or queued, running first (with their spec and options: same journal)."""
        mine = [j for j in self.client.jobs(self.journal) if j.journal == self.journal and not j.ended_yet]
        return sorted(mine, key=lambda j: j.state != "running")
