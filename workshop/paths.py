"""Where promptism keeps things on disk: XDG locations via platformdirs, each with an environment override — and the
service's private places: its runtime folder (socket, pid file, lock) and its state folder (queue, log, token)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

from journal.atomic import write_atomic

from .errors import PromptismError

APP = "promptism"
SOCKET_MAX = 107  # bytes a Unix socket path may have (sun_path is 108 with its NUL)


class UnsafePath(PromptismError):
    """A private folder promptism will not use: someone else's, or one others may write into."""

    code = "unsafe_path"


def journal_dir() -> Path:
    """``$PROMPTISM_JOURNAL``, else ``<user data dir>/promptism/journal``."""
    return Path(os.environ.get("PROMPTISM_JOURNAL") or platformdirs.user_data_path(APP) / "journal").expanduser()


def cache_dir() -> Path:
    """``$PROMPTISM_CACHE``, else the user cache directory: built-in models are built here once."""
    return Path(os.environ.get("PROMPTISM_CACHE") or platformdirs.user_cache_path(APP)).expanduser()


def runtime_dir() -> Path:
    """The service's runtime folder (mode 0700): ``$PROMPTISM_RUNTIME``, else ``$XDG_RUNTIME_DIR/promptism``, else
    ``<cache>/run``. Where that would make the socket's path too long for the kernel, a short 0700 folder in the
    system's temporary directory, named after the user id."""
    given = os.environ.get("PROMPTISM_RUNTIME")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(given).expanduser() if given else Path(xdg) / APP if xdg else cache_dir() / "run"
    if len(os.fsencode(folder.absolute() / SOCKET)) > SOCKET_MAX:
        folder = Path("/tmp") / f"{APP}-{os.getuid()}"
    return private_dir(folder.absolute())


SOCKET = "service.sock"


def socket_path() -> Path:
    return runtime_dir() / SOCKET


def pid_file() -> Path:
    return runtime_dir() / "service.pid"


def lock_file() -> Path:
    """Held (flock) for the life of the service: a second one finds it taken."""
    return runtime_dir() / "service.lock"


def state_dir() -> Path:
    """``$PROMPTISM_STATE``, else the user state directory (mode 0700): the service's persisted queue, log and token."""
    folder = Path(os.environ.get("PROMPTISM_STATE") or platformdirs.user_state_path(APP)).expanduser()
    return private_dir(folder.absolute())


def log_file() -> Path:
    """Where a detached service writes its log (never a prompt)."""
    return state_dir() / "service.log"


def token_file() -> Path:
    """The bearer token of ``serve --listen`` (mode 0600)."""
    return state_dir() / "token"


def queue_file() -> Path:
    return state_dir() / "jobs.json"


def private_dir(folder: Path) -> Path:
    """``folder``, created 0700 where missing; UnsafePath for one another user owns, a symlink, or one others may
    write into (a folder of ours that others may only read is closed to 0700)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{folder} is not a folder (a symlink?): promptism keeps private files there; remove it")
    if info.st_uid != os.getuid():
        raise UnsafePath(f"{folder} belongs to another user (uid {info.st_uid}): promptism keeps private files there; "
                         "set PROMPTISM_RUNTIME / PROMPTISM_STATE to a folder of your own")
    if info.st_mode & 0o022:
        raise UnsafePath(f"{folder} may be written by others (mode {stat.S_IMODE(info.st_mode):o}): promptism keeps "
                         f"private files there; chmod 700 {folder}")
    if info.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, atomically, readable by the user alone (0600) from its first byte: journal's
    crash-safe ``write_atomic``, whose temporary file ``mkstemp`` creates 0600."""
    write_atomic(path, data)


def made_once(target: Path, make: Callable[[Path], None]) -> Path:
    """The folder ``target``, made by ``make(folder)`` the first time (in a staging folder beside it, then renamed:
    concurrent makers are safe and no half-made folder is ever seen); a folder holding ``model_index.json`` is made."""
    if (target / "model_index.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        make(staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "model_index.json").exists():  # not merely another process finishing first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
