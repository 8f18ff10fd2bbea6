"""The single-writer lock: an flock on ``.promptism/lock`` whose file names the holder (pid and command).

flock is released by the kernel when the holder and every child it passed the descriptor to have exited, so a
crashed writer never leaves the journal locked, and no recovery starts while a git command it ran is still running.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import time
from pathlib import Path

from .errors import JournalError, JournalLocked
from .text import visible
from .wording import option

ORPHAN_GRACE = 10.0  # seconds a dead writer's git child may take to finish


class WriterLock:
    def __init__(self, path: Path, journal_path: Path):
        self._path = path
        self._journal_path = journal_path
        self._fd: int | None = None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; raise JournalLocked naming the holder if it stays busy."""
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            raise JournalError(f"journal {visible(str(self._journal_path))} is not writable by you (permission denied on "
                               f"{self._path.name}); reading it works, to write use a journal of your own ({option('journal', 'DIR')})") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                if _dead(holder):  # a killed writer's git child still holds the lock for a moment: wait for it
                    deadline = max(deadline, time.monotonic() + ORPHAN_GRACE)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise JournalLocked(self._journal_path, holder or "another process") from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        command = os.path.basename(sys.argv[0]) + (" " + sys.argv[1] if len(sys.argv) > 1 else "")
        os.pwrite(fd, f"pid {os.getpid()} ({command})".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def inherited_fds(self) -> tuple[int, ...]:
        """File descriptors to pass to child processes (git) so the lock outlives a writer killed mid-command."""
        return () if self._fd is None else (self._fd,)


def _dead(holder: str) -> bool:
    match = re.match(r"pid (\d+)", holder)
    return bool(match) and not pid_alive(int(match.group(1)))


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
