"""Files a user names, read safely: only a regular file is opened for reading (a FIFO would wait for a writer, a
device such as /dev/zero never end), and a text file only up to ``TEXT_MAX_BYTES`` — a spec, a prompt, titles or
wildcards file larger than that is not one."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from .errors import InvalidInput
from .text import visible

TEXT_MAX_BYTES = 4 * 2**20  # a text file a user names (spec, prompt, titles, wildcards): 4 MB, far past any real one


def open_regular(path: str | os.PathLike, what: str) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; a FIFO, a device, a socket or a folder is InvalidInput
    ("X is a FIFO, not ``what``; pass a file"), said before a byte is read. Its type is checked before it is opened
    (a device is never opened) and again on the open descriptor (opened with O_NONBLOCK: a FIFO put there meanwhile
    does not wait). A missing file is FileNotFoundError."""
    _regular(os.stat(path).st_mode, path, what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _regular(os.fstat(fd).st_mode, path, what)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_text(path: str | os.PathLike, what: str, *, pipe: bool = False) -> str:
    """A user's text file (``what``: "spec file" …) as UTF-8; InvalidInput in one line naming the file for one that
    is missing, not a regular file, unreadable, over ``TEXT_MAX_BYTES``, or not UTF-8. ``pipe``: a pipe is read too
    while something writes to it, as ``cat`` reads it (``--prompt-file <(pass show prompt)`` keeps a prompt out of
    the shell's history), and ``-`` is the standard input; a FIFO that no one holds open for writing is refused at
    once, not waited on."""
    shown = _shown(path)
    try:
        if pipe and (str(path) == "-" or stat.S_ISFIFO(os.stat(path).st_mode)):
            data = _from_pipe(path, shown, what)
        else:
            with open_regular(path, f"{'an' if what[0] in 'aeiou' else 'a'} {what}") as file:
                data = file.read(TEXT_MAX_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{shown}: no such {what}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {shown} ({exc.strerror or exc.__class__.__name__}); check the path and its "
                           "permissions") from None
    if len(data) > TEXT_MAX_BYTES:
        raise InvalidInput(f"{shown} is larger than {TEXT_MAX_BYTES // 2**20} MB, more than any {what} holds; pass the "
                           "right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{shown} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _from_pipe(path: str | os.PathLike, shown: str, what: str) -> bytes:
    """A pipe's bytes (at most one past the bound) once its writers close it; InvalidInput at once when it has none."""
    fd = os.dup(0) if str(path) == "-" else os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        os.set_blocking(fd, False)
        try:
            first = pipe.read(TEXT_MAX_BYTES + 1)
        except BlockingIOError:  # a writer is there, with nothing written yet
            first = None
        if first == b"" and str(path) != "-":
            raise InvalidInput(f"{shown} is a FIFO no one writes to, not {what}; pass a file (or write to it)")
        os.set_blocking(fd, True)
        chunks = [first or b""]
        while (size := sum(map(len, chunks))) <= TEXT_MAX_BYTES and (more := pipe.read(TEXT_MAX_BYTES + 1 - size)):
            chunks.append(more)
        return b"".join(chunks)


def _regular(mode: int, path: str | os.PathLike, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = ("directory" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else
                "socket" if stat.S_ISSOCK(mode) else "device")
        raise InvalidInput(f"{_shown(path)} is a {kind}, not {what}; pass a file")


def _shown(path: str | os.PathLike) -> str:
    return visible(str(path), keep_newlines=False)
