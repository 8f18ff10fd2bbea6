"""``--journal DIR`` and ``--json``, the options most commands share: apart from the commands, so the group and
every command module take them without importing the journal library."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from .. import paths

JOURNAL_HELP = "Journal directory. Default: $PROMPTISM_JOURNAL, else your user data directory."
JOURNAL_PATH = click.Path(file_okay=False, path_type=Path)


def journal_option(fn):
    """``--journal DIR`` for every command, after it or before it (``promptism --journal DIR log``); the default is
    $PROMPTISM_JOURNAL, else the user data directory."""

    @click.option("--journal", "journal_dir", type=JOURNAL_PATH, default=None, help=JOURNAL_HELP)
    @functools.wraps(fn)
    def wrapper(*args, journal_dir: Path | None, **kwargs):
        given_first = (click.get_current_context().find_root().obj or {}).get("journal")
        return fn(*args, journal_dir=journal_dir or given_first or paths.journal_dir(), **kwargs)

    return wrapper


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)
