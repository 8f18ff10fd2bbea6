"""How the workshop words an error: one line, naming each option the error speaks of (``errors.option``) as the
workshop's own key or field ("add some with ctrl+n"), and one it has none for as belonging to the command line."""

from __future__ import annotations

from journal.privacy import TitleRevealsPrompt
from journal.text import one_line

from journal.wording import Worded

from ..errors import from_wire, os_error_line, worded

# an option (its command-line name) → what the workshop calls the same thing
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
    "out": "the gallery folder",
    "title": "a title",
    "x": "the x axis",
    "y": "the y axis",
    "z": "the z axis",
    "sampler": "sampler",
    "mode": "mode",
}


def as_field(name: str, metavar: str) -> str:
    """The workshop's words for an option: its key or field, else the flag, said to be the command line's."""
    return FIELDS.get(name) or f"--{name}{' ' + metavar if metavar else ''} (on the command line)"


def say(error: BaseException | str) -> str:
    """``error`` in one line, in the workshop's words; a string is a service's error (a job's), in the API's words."""
    if isinstance(error, TitleRevealsPrompt):
        return error.reason + ": choose another title"
    if isinstance(error, Worded):  # promptism's errors and the journal's
        text = error.worded(as_field)
    elif isinstance(error, OSError):
        text = os_error_line(error, as_field)
    elif isinstance(error, str):
        text = worded(from_wire(error), as_field)
    else:
        text = str(error)
    return one_line(text) or type(error).__name__
