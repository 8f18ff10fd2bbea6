"""The workshop's link to the service: submit a job, follow it, cancel it, and find the jobs of this journal that
outlived an earlier workshop (to re-attach to them). Called from thread workers, never on the UI thread; torch-free."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..runner import events as ev
from ..runner.options import RunOptions
from ..service.api import JobInfo, JobRequest
from ..service.client import ServiceClient, connect
from ..service.executor import options_to_json


@dataclass
class Remote:
    """A service client for one journal."""

    client: ServiceClient
    journal: str

    @classmethod
    def start(cls, journal: str) -> Remote:
        """The running service, started detached when none runs (ServiceUnavailable if it cannot be)."""
        return cls(connect(autostart=True), journal)

    def submit_grid(self, spec: dict, options: RunOptions) -> JobInfo:
        return self.client.submit(JobRequest(kind="grid", journal=self.journal, spec=spec,
                                             options=options_to_json(options)))

    def submit_rerun(self, number: int) -> JobInfo:
        return self.client.submit(JobRequest(kind="rerun", journal=self.journal, number=number))

    def submit_resume(self, run_id: str, options: RunOptions) -> JobInfo:
        return self.client.submit(JobRequest(kind="resume", journal=self.journal, run=run_id,
                                             options=options_to_json(options)))

    def follow(self, job: JobInfo, on_event: Callable[[ev.Event], None]) -> JobInfo:
        """Pass the job's events to ``on_event`` (what happened so far first) until it ends; the job as it ended."""
        ended = job
        for item in self.client.follow(job.id, self.journal):
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
