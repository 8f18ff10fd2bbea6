"""Errors the journal raises: each message is one line that names the problem and the fix (an option it names
marked with ``wording.option``, for each surface to word as its own)."""

from .wording import Worded


class JournalError(Worded):
    """Base class: anything the journal refuses or cannot do."""


class NotAJournal(JournalError):
    """The directory is missing or is not a promptism journal."""


class JournalLocked(JournalError):
    """Another process holds the writer lock."""

    def __init__(self, path, holder: str):
        self.holder = holder
        super().__init__(f"journal {path} is being written by {holder}; try again when it finishes")


class ExperimentNotFound(JournalError):
    """No experiment has that number."""


class InvalidInput(JournalError):
    """A title, image, document or argument the journal will not store."""


class PrivacyError(JournalError):
    """Publishing would reveal a private prompt or keyword."""
