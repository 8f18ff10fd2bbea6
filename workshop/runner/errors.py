"""The runner's one error type: bad input or a failed run, said in one line that names the fix."""


class RunError(Exception):
    """A model that will not load, an input the pipeline cannot take, or a run that could not finish."""


class RunCancelled(RunError):
    """A run its user cancelled; the images finished before it are kept (in run ``run_id``)."""

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id
