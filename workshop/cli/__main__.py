"""``python -m workshop.cli``: the ``promptism`` command (how a detached service is started)."""

from . import entry

entry()
