"""Named crash points for the crash-safety tests: ``PROMPTISM_FAILPOINT=name`` makes the process SIGKILL itself there,
``name@N`` at the N-th time it gets there.

The tests kill real subprocesses at every step of a write to prove the journal recovers from each.
Unset (always, outside those tests), ``hit`` is a dictionary-free string comparison.
"""

import os
import signal
import threading

_NAME, _, _NTH = (os.environ.get("PROMPTISM_FAILPOINT") or "").partition("@")
_ARMED = _NAME or None
_left = [int(_NTH) if _NTH.isdigit() else 1]
_counting = threading.Lock()


def hit(name: str) -> None:
    if _ARMED == name:
        with _counting:
            _left[0] -= 1
            if _left[0] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
