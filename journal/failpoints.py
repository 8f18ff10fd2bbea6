"""Named crash points for the crash-safety tests: ``PROMPTISM_FAILPOINT=name`` makes the process SIGKILL itself there.

The tests kill real subprocesses at every step of a write to prove the journal recovers from each.
Unset (always, outside those tests), ``hit`` is a dictionary-free string comparison.
"""

import os
import signal

_ARMED = os.environ.get("PROMPTISM_FAILPOINT")


def hit(name: str) -> None:
    if _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
