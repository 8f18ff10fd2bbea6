"""promptism's error base: every error a user can cause says one line that names the problem and the fix, and
carries a ``code`` (what kind of problem, stable for programs: the service's HTTP status is chosen by it) and, where
one field is at fault, that ``field`` (a run option or spec key), so each surface can point at its own control."""

from __future__ import annotations


class PromptismError(Exception):
    """A problem a user can fix; ``str()`` is its one line."""

    code = "invalid"  # the kind of problem; subclasses and raisers name their own

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.field = field


class RunError(PromptismError):
    """A model that will not load, an input the pipeline cannot take, or a run that could not finish."""


class RunCancelled(RunError):
    """A run its user cancelled; the images finished before it are kept (in run ``run_id``)."""

    code = "cancelled"

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id
