"""Options named inside error messages, worded by each surface as its own control. A message names an option with
``option("guidance")`` — its command-line name, marked — never as a flag; ``worded`` says it in a surface's words:
the command line's flag (``as_flag``, what ``str()`` of an error gives), the service API's ``‹guidance›``
(``as_wire``, which promptism's clients read back with ``from_wire``), the workshop's field, an A1111 request's field.
The marks are two control characters round the name; only a well-formed mark (a name of lower-case letters and
dashes between them) is worded, and every line is escaped on its way out (``text.one_line``), so user text inside a
message that holds such characters can neither break a message's wording nor reach a terminal raw."""

from __future__ import annotations

import re
from collections.abc import Callable

OPEN, CLOSE = "\x1e", "\x1f"  # round an option's name in a message
_NAME = r"([a-z][a-z0-9-]*)(?: ([A-Z][A-Z_]*))?"  # "init-image", "journal DIR"
_MARKED = re.compile(f"{OPEN}{_NAME}{CLOSE}")
_WIRE = re.compile(f"‹{_NAME}›")

# How a surface names an option: (name, metavar) → its words.
Namer = Callable[[str, str], str]


def option(name: str, metavar: str = "") -> str:
    """The option ``name`` (its command-line spelling without dashes: "init-image"; ``metavar`` the value the
    command line takes, "DIR") as a message names it."""
    return f"{OPEN}{name}{' ' + metavar if metavar else ''}{CLOSE}"


def as_flag(name: str, metavar: str) -> str:
    """The command line's words for an option: its flag."""
    return f"--{name}{' ' + metavar if metavar else ''}"


def as_wire(name: str, metavar: str) -> str:
    """The service API's words for an option (``from_wire`` reads them back)."""
    return f"‹{name}{' ' + metavar if metavar else ''}›"


def worded(message: str, namer: Namer) -> str:
    """``message`` with each option it names in ``namer``'s words."""
    return _MARKED.sub(lambda m: namer(m[1], m[2] or ""), message)


def from_wire(text: str) -> str:
    """A message as the service's API words it, with its options marked again (to word them as this client's own)."""
    return _WIRE.sub(lambda m: option(m[1], m[2] or ""), text)


class Worded(Exception):
    """An error whose message (its first argument) may name options: ``str()`` words them for the command line,
    ``worded(namer)`` for another surface."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.worded(as_flag)

    def worded(self, namer: Namer) -> str:
        return worded(self.message, namer)
