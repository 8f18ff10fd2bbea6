"""How the workshop words an error: one line, and the workshop's own keys and fields where compose, the runner or
the journal name a command-line flag ("add some with --keyword" becomes "add some with ctrl+n")."""

from __future__ import annotations

import re

from journal.privacy import TitleRevealsPrompt
from journal.text import one_line

from ..errors import os_error_line

# a command-line flag → what the workshop calls the same thing
FIELDS = {
    "keyword": "ctrl+n (new keyword)",
    "prompt": "a prompt (ctrl+l)",
    "negative": "the negative prompt",
    "seeds": "seeds",
    "steps": "steps",
    "guidance": "guidance",
    "size": "size",
    "init-image": "init image",
    "strength": "strength",
    "model": "model",
    "out": "folder",
    "title": "a title",
    "x": "the x axis",
    "y": "the y axis",
    "z": "the z axis",
    "sampler": "sampler",
}
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: [A-Z]{2,}\b)?")
_SPEC_FILE = re.compile(r"\s*\(or [^()]* in the spec(?: file)?\)")  # the workshop has no spec file


def say(error: BaseException | str) -> str:
    """``error`` in one line, in the workshop's words. A flag the workshop has no key or field for stays, marked as
    belonging to the command line."""
    if isinstance(error, TitleRevealsPrompt):
        return error.reason + ": choose another title"
    text = one_line(os_error_line(error) if isinstance(error, OSError) else str(error)) or type(error).__name__
    text = _SPEC_FILE.sub("", text)
    return _FLAG.sub(lambda m: FIELDS.get(m[1]) or f"{m[0]} (on the command line)", text)
