"""Where promptism keeps things on disk: XDG locations via platformdirs, each with an environment override."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "promptism"


def journal_dir() -> Path:
    """``$PROMPTISM_JOURNAL``, else ``<user data dir>/promptism/journal``."""
    return Path(os.environ.get("PROMPTISM_JOURNAL") or platformdirs.user_data_path(APP) / "journal").expanduser()


def cache_dir() -> Path:
    """``$PROMPTISM_CACHE``, else the user cache directory: built-in models are built here once."""
    return Path(os.environ.get("PROMPTISM_CACHE") or platformdirs.user_cache_path(APP)).expanduser()
