"""The service's job records, as clients send and receive them (pydantic, torch-free: the CLI imports them).

Stand-in from the i14-a1111 branch with exactly the fields DESIGN.md gives; the service branch owns this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class JobRequest(BaseModel):
    """What a client asks for."""

    kind: Literal["grid", "rerun", "resume"]
    journal: str  # absolute path: the job runs against that journal
    spec: dict | None = None  # grid: the values compose.spec.spec_from takes (paths absolute)
    options: dict = {}  # RunOptions fields (size as [w, h]; guided settings nested)
    number: int | None = None  # rerun: the experiment
    run: str | None = None  # resume: the run id


class JobInfo(BaseModel):
    """What the service says about a job."""

    id: str
    kind: str
    journal: str
    state: Literal["queued", "running", "finished", "cancelled", "failed", "interrupted"]
    run: str | None = None
    cells: int | None = None
    done: int | None = None
    error: str | None = None
    verified: bool | None = None
    created: str
    started: str | None = None
    ended: str | None = None
