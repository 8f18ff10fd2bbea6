"""The service's typed records, the one schema of the API, the CLI and the TUI: what a client asks for (JobRequest),
what the service says about a job (JobInfo) and about itself (ServiceStatus). Pydantic only: torch-free."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..contract import Flag, GivenOptions, Named, Spec, Whole

JobKind = Literal["grid", "rerun", "resume"]
JobState = Literal["queued", "running", "finished", "cancelled", "failed", "interrupted"]
ENDED = ("finished", "cancelled", "failed", "interrupted")


class JobRequest(BaseModel):
    """A job: a grid run (``spec``, its paths absolute), a rerun of experiment ``number``, or the resume of ``run`` —
    in the journal at ``journal`` (an absolute path). ``options`` are those the client was given: the service
    resolves them over the spec's ``model`` and ``[params]`` and its settings (``runner.options.resolve``)."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind
    journal: Named
    spec: Spec | None = None
    options: GivenOptions = Field(default_factory=GivenOptions)
    number: Annotated[Whole, Field(ge=1)] | None = None
    run: Named | None = None
    create: Flag = False  # grid: make the journal if there is none yet (a first `promptism generate` does)


class JobInfo(BaseModel):
    """What the service says about a job. ``spec``, ``options`` and ``error`` (which may quote the prompt) go only to
    a client on the Unix socket (its owner) that names the job's journal, or to the TCP client that submits it, in
    the answer to its submit; ``journal`` to no TCP client (None there)."""

    id: str
    kind: JobKind
    journal: str | None
    state: JobState
    run: str | None = None
    cells: int | None = None
    done: int | None = None
    error: str | None = None
    error_type: str | None = None  # a failed job's kind of failure: its error code where the request was at fault
    # ("invalid", "bad_spec" …), else "machine" (memory, disk, journal) or "internal" (a bug)
    verified: bool | None = None
    created: str
    started: str | None = None
    ended: str | None = None
    spec: Spec | None = None
    options: GivenOptions | None = None
    number: int | None = None

    @property
    def ended_yet(self) -> bool:
        return self.state in ENDED

    def public(self) -> JobInfo:
        """The job as anyone on the socket may see it: no spec, options or error."""
        return self.model_copy(update={"spec": None, "options": None, "error": None})

    def remote(self) -> JobInfo:
        """The job as a TCP client sees it: not even the journal it writes to."""
        return self.public().model_copy(update={"journal": None})


class JobOutcome(BaseModel):
    """How a job ended: its run (None when it ended before it made one), that run's state, for a rerun whether it
    reproduced the journal's bytes, and a failed job's one line as the service said it (it may quote the prompt:
    shown to its user, never logged)."""

    run: str | None
    state: JobState
    verified: bool | None = None
    error: str | None = None


class ServiceStatus(BaseModel):
    """``serve status``: no prompt anywhere."""

    pid: int
    started: str
    uptime_s: float
    device: str | None
    loaded_models: list[str]
    jobs: list[JobInfo]
    socket: str
    listen: str | None
    idle_timeout_s: float
    version: str


class ErrorBody(BaseModel):
    """Every error response: one line; what kind of problem (``code``: "no_journal", "bad_spec", "malformed" …) and
    the field at fault where one is (``spec.params.steps``). An option the line names is written ``‹guidance›`` (its
    command-line name, ``‹journal DIR›`` with the value it takes): promptism's clients word it as their own control.
    A job's ``error`` is written the same way."""

    error: str
    code: str | None = None
    field: str | None = None
