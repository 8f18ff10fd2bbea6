"""``python -m workshop.cli``: the ``promptism`` command (how a detached service is started)."""

import sys

from . import main

sys.exit(main())
