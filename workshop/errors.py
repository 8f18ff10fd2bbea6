"""promptism's error base: every error a user can cause says one line that names the problem and the fix, and
carries a ``code`` (what kind of problem, stable for programs: the service's HTTP status is chosen by it) and, where
one field is at fault, that ``field`` (a run option or spec key), so each surface can point at its own control.

A message names the options it speaks of with ``option("guidance")``, never as a flag: each surface words them as
its own control (``journal.wording``, whose names this module gives the workshop too).

``os_error_line`` is the one translation of the machine's refusals (a full disk, a permission) into a line with what
to do, for the CLI, the service and the TUI alike."""

from __future__ import annotations

import errno

from journal.wording import Namer, Worded, as_flag, as_wire, from_wire, option, worded

__all__ = ["Namer", "PromptismError", "RunCancelled", "RunError", "as_flag", "as_wire", "from_wire", "option",
           "os_error_line", "settings_without", "worded"]


class PromptismError(Worded):
    """A problem a user can fix; ``str()`` is its one line in the command line's words, ``worded(namer)`` in
    another surface's (journal.wording)."""

    code = "invalid"  # the kind of problem; subclasses and raisers name their own

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.field = field


class RunError(PromptismError):
    """A model that will not load, an input the pipeline cannot take, or a run that could not finish."""


class RunCancelled(RunError):
    """A run its user cancelled; the images finished before it are kept (in run ``run_id``)."""

    code = "cancelled"

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id


def settings_without(feature: str, needed: str, settings) -> None:
    """RunError where one of ``settings`` — (option name, value) pairs of ``feature``'s settings — is given while the
    option that asks for ``feature`` (``needed``: how to give it) is not: "--hires-steps is a setting of the hires
    fix: give --hires SCALE (e.g. 2) too, or leave it out"."""
    given = next((name for name, value in settings if value is not None), None)
    if given is not None:
        raise RunError(f"{option(given)} is a setting of {feature}: give {needed} too, or leave it out")


_OS_FIXES = {
    errno.ENOSPC: "free some disk space and try again",
    errno.EDQUOT: "free some space within your quota and try again",
    errno.EFBIG: "free some space (or lift the file-size limit) and try again",
    errno.EACCES: f"check that you may write there, or use a journal of your own ({option('journal', 'DIR')})",
    errno.EPERM: f"check that you may write there, or use a journal of your own ({option('journal', 'DIR')})",
    errno.EROFS: f"the file system is read-only: use a journal on a writable disk ({option('journal', 'DIR')})",
    errno.ENOENT: "check the path",
}


def os_error_line(exc: OSError, namer: Namer = as_flag) -> str:
    """An OSError as one line: what failed, where, and what to do (its options in ``namer``'s words). A journal write
    cut short is finished or rolled back by the next command, so nothing is half-written."""
    where = f" ({exc.filename})" if exc.filename else ""
    fix = _OS_FIXES.get(exc.errno, "check the disk and the path, then try again")
    return worded(f"{exc.strerror or exc.__class__.__name__}{where}: {fix}", namer)
