"""The workshop's link to the service: the service started (or found) for this journal, and the jobs of this journal
that outlived an earlier workshop (to re-attach to them); its jobs run through ``service.job_runner.ServiceJobs``.
Called from thread workers, never on the UI thread; torch-free."""

from __future__ import annotations

from dataclasses import dataclass

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

    def unfinished(self) -> list[JobInfo]:
        """This journal's jobs that are running or queued, running first (with their spec and options: same journal)."""
        mine = [j for j in self.client.jobs(self.journal) if j.journal == self.journal and not j.ended_yet]
        return sorted(mine, key=lambda j: j.state != "running")
