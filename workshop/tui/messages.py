"""Messages thread workers post to the UI (the only way work reaches widgets)."""

from __future__ import annotations

from textual.message import Message


class RunEvent(Message):
    """A runner progress event (step, preview, batch finished …)."""

    def __init__(self, event) -> None:
        super().__init__()
        self.event = event


class RunDone(Message):
    def __init__(self, run) -> None:
        super().__init__()
        self.run = run


class WorkFailed(Message):
    """Any background job failed; ``error`` is a one-line, user-facing message."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ModelReady(Message):
    def __init__(self, model: str, description: str) -> None:
        super().__init__()
        self.model = model
        self.description = description
