"""Messages thread workers post to the UI (the only way work reaches widgets): one message per outcome, so each is
handled once, by the one place it is meant for.

A run's messages go to its grid screen and do not bubble: when that screen has been closed, the worker posts them to
the app instead (``PromptismApp.to_screen``), which says what happened in a notification.
"""

from __future__ import annotations

from textual.message import Message


class RunEvent(Message, bubble=False):
    """A runner progress event (step, preview, batch finished …)."""

    def __init__(self, event) -> None:
        super().__init__()
        self.event = event


class RunDone(Message, bubble=False):
    """A run (or a rerun) ended, finished or cancelled, its images on disk. ``verified``: for a rerun, whether every
    image came out byte-identical to the journal's; None for a run."""

    def __init__(self, run, verified: bool | None = None) -> None:
        super().__init__()
        self.run = run
        self.verified = verified


class RunFailed(Message, bubble=False):
    """A run or a rerun failed; ``error`` is a one-line, user-facing message; ``run`` the run it left behind (its
    images kept, for `u` to finish), when there is one."""

    def __init__(self, error: str, run: str | None = None) -> None:
        super().__init__()
        self.error = error
        self.run = run


class ServiceLost(Message):
    """The service stopped while a job was followed (it is started again by the next run)."""


class ModelReady(Message):
    def __init__(self, model: str, description: str) -> None:
        super().__init__()
        self.model = model
        self.description = description


class ModelFailed(Message):
    """The model did not load at start-up; ``error`` is a one-line, user-facing message."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class JournalListed(Message, bubble=False):
    """The journal screen's search found ``experiments``; ``runs``: the runs not accepted yet, None when not listed."""

    def __init__(self, experiments: list, runs: list | None) -> None:
        super().__init__()
        self.experiments = experiments
        self.runs = runs


class JobsFound(Message):
    """The service holds jobs of this journal that outlived an earlier workshop (running first, then queued)."""

    def __init__(self, jobs: list) -> None:
        super().__init__()
        self.jobs = jobs
