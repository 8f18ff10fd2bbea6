"""The promptism journal: a git repository of numbered text-to-image experiments whose prompts stay private.

Never imports textual, torch or diffusers (an import-linter contract in pyproject.toml enforces it).
"""

from importlib import import_module

from .errors import ExperimentNotFound, InvalidInput, JournalError, JournalLocked, NotAJournal, PrivacyError

#: Imported when first asked for, so that a command needing only the errors or the text rules imports no git or Pillow.
_LAZY = {"Finding": "journal", "Journal": "journal", "is_journal": "journal", "Compute": "model", "Experiment": "model",
         "ImageRecord": "model", "ModelInfo": "model", "NewExperiment": "model", "NewImage": "model"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Compute", "Experiment", "ExperimentNotFound", "Finding", "ImageRecord", "InvalidInput", "Journal",
    "JournalError", "JournalLocked", "ModelInfo", "NewExperiment", "NewImage", "NotAJournal", "PrivacyError",
    "is_journal",
]
