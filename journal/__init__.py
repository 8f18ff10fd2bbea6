"""The promptism journal: a git repository of numbered text-to-image experiments whose prompts stay private.

Never imports textual, torch or diffusers (an import-linter contract in pyproject.toml enforces it).
"""

from .errors import ExperimentNotFound, InvalidInput, JournalError, JournalLocked, NotAJournal, PrivacyError
from .journal import Finding, Journal, is_journal
from .model import Compute, Experiment, ImageRecord, ModelInfo, NewExperiment, NewImage

__all__ = [
    "Compute", "Experiment", "ExperimentNotFound", "Finding", "ImageRecord", "InvalidInput", "Journal",
    "JournalError", "JournalLocked", "ModelInfo", "NewExperiment", "NewImage", "NotAJournal", "PrivacyError",
    "is_journal",
]
