"""What the terminal can do, asked once before the app takes it over: sixel and kitty graphics, 24-bit colour, the
size of a cell in pixels — and, inside tmux, what tmux lets through (its DCS passthrough) and to which terminal.

Every query is followed by a primary device-attributes request (DA1), which every terminal answers: reading stops at
that answer, so a terminal that ignores a query costs nothing and no answer is left behind for the app to read.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import termios
import time
import tty
from dataclasses import dataclass
from typing import Mapping, NamedTuple

KITTY_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"  # a 1×1 image query: kitty answers OK
CELL_QUERY = "\x1b[16t"  # the cell size in pixels: CSI 6 ; height ; width t
TRUECOLOR_QUERY = "\x1b[48;2;1;2;3m\x1bP$qm\x1b\\\x1b[m"  # set a 24-bit background, ask it back (DECRQSS), reset
VERSION_QUERY = "\x1b[>q"  # XTVERSION: the terminal's name and version, e.g. kitty(0.35.2)
SIXEL_SIZE_QUERY = "\x1b[?2;1;0S"  # XTSMGRAPHICS, read the sixel geometry in force (xterm answers only with the
# third parameter): CSI ? 2 ; 0 ; width ; height S
DA1 = "\x1b[c"  # primary device attributes: parameter 4 means sixel graphics

_DA1_ANSWER = re.compile(r"\x1b\[\?([\d;]*)c")
_KITTY_OK = re.compile(r"\x1b_Gi=31;OK\x1b\\")
_CELL_ANSWER = re.compile(r"\x1b\[6;(\d+);(\d+)t")
_SGR_ANSWER = re.compile(r"\x1bP1\$r([\d;:]*)m\x1b\\")
_RGB_1_2_3 = re.compile(r"(?:^|[;:])48[;:]2[;:]+1[;:]2[;:]3(?:$|[;:])")
_SIXEL_SIZE_ANSWER = re.compile(r"\x1b\[\?2;0;(\d+);(\d+)S")
_VERSION_ANSWER = re.compile(r"\x1bP>\|([^\x1b]*)\x1b\\")
_OLD_KITTY = re.compile(r"kitty\(0\.((?:[0-9]|1[0-9]|2[0-7])\.[0-9]+)")  # Unicode placeholders came with kitty 0.28


class CellSize(NamedTuple):
    """A terminal cell, in pixels."""

    width: int
    height: int


DEFAULT_CELL = CellSize(10, 20)  # what a VT340 draws, and about what most fonts are: 1 wide to 2 high
SIXEL_LIMIT = (1000, 1000)  # xterm's default maxGraphicSize: it drops a larger sixel whole (assumed when not told)


@dataclass(frozen=True)
class Answers:
    """What the terminal said to the probe (nothing at all when there is no terminal)."""

    sixel: bool = False
    kitty: bool = False  # kitty graphics with Unicode placeholders
    truecolor: bool = False
    cell: CellSize | None = None
    sixel_limit: tuple[int, int] | None = None  # the largest sixel image in pixels (XTSMGRAPHICS), when answered
    old_kitty: str | None = None  # "kitty(0.26.5)": a kitty too old for Unicode placeholders (answers, draws nothing)
    answered: bool = False  # the terminal answered DA1: a VT-style emulator, not a pipe or a silent line


def probe_query(plain: bool) -> str:
    """The probe. ``plain`` (inside tmux, GNU screen or the Linux console): no kitty query — tmux takes an APC
    string as the window title — and no DECRQSS or XTSMGRAPHICS, which go unanswered there."""
    return ("" if plain else KITTY_QUERY + TRUECOLOR_QUERY + SIXEL_SIZE_QUERY) + CELL_QUERY + VERSION_QUERY + DA1


def parse_answers(text: str) -> Answers:
    """Read the terminal's answers to ``probe_query``."""
    da1 = _DA1_ANSWER.search(text)
    cell = _CELL_ANSWER.search(text)
    sgr = _SGR_ANSWER.search(text)
    version = _VERSION_ANSWER.search(text)
    limit = _SIXEL_SIZE_ANSWER.search(text)
    old = too_old_kitty(version.group(1)) if version else None
    return Answers(
        sixel=bool(da1) and "4" in da1.group(1).split(";"),
        kitty=bool(_KITTY_OK.search(text)) and not old,
        truecolor=bool(sgr) and bool(_RGB_1_2_3.search(sgr.group(1))),
        cell=CellSize(int(cell.group(2)), int(cell.group(1))) if cell and int(cell.group(1)) and int(cell.group(2)) else None,
        sixel_limit=(int(limit.group(1)), int(limit.group(2))) if limit and int(limit.group(1)) and int(limit.group(2)) else None,
        old_kitty=old,
        answered=bool(da1),
    )


def too_old_kitty(name: str) -> str | None:
    """``name`` (a terminal's name and version, "kitty(0.26.5)") when it is a kitty without Unicode placeholders."""
    found = _OLD_KITTY.search(name)
    return f"kitty(0.{found.group(1)})" if found else None


def ask(query: str, timeout: float = 1.0) -> str:
    """Write ``query`` to the terminal and read its answers up to the DA1 answer that ends them ("" without a terminal
    or when nothing comes back within ``timeout`` seconds)."""
    if not (sys.__stdin__ and sys.__stdout__ and sys.__stdin__.isatty() and sys.__stdout__.isatty()):
        return ""
    fd = sys.__stdin__.fileno()
    saved = termios.tcgetattr(fd)
    answer = b""
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        os.write(sys.__stdout__.fileno(), query.encode())
        deadline = time.monotonic() + timeout
        while not _DA1_ANSWER.search(answer.decode("latin-1")):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            answer += os.read(fd, 4096)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    return answer.decode("latin-1")


def cell_size_from_winsize() -> CellSize | None:
    """The cell size from the kernel's window size (xterm, tmux 3.3+ and most terminals fill in the pixels)."""
    import fcntl
    import struct

    if not (sys.__stdout__ and sys.__stdout__.isatty()):
        return None
    try:
        rows, cols, width, height = struct.unpack("HHHH", fcntl.ioctl(sys.__stdout__.fileno(), termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return CellSize(width // cols, height // rows) if rows and cols and width >= cols and height >= rows else None


# ---------------------------------------------------------------------------------------------------------- tmux

TMUX_FORMAT = "\t".join(["#{version}", "#{allow-passthrough}", "#{client_termname}", "#{client_termtype}",
                         "#{client_termfeatures}"])
_KITTY_TERMINALS = ("kitty", "ghostty")
_SIXEL_TERMINALS = ("foot", "mlterm", "wezterm", "contour", "mintty", "konsole", "yaft", "iterm2",
                    "xterm(")  # xterm by its own answer, "XTerm(379)", not by TERM=xterm-*, which most terminals set


@dataclass(frozen=True)
class Tmux:
    """The tmux around us: its version, whether it passes escape sequences through, and the terminal outside it."""

    version: str
    passthrough: bool
    outer: str  # the outer terminal's TERM and its self-reported name, e.g. "xterm-kitty kitty(0.32.2)"
    features: frozenset[str]  # what tmux believes the outer terminal has: RGB, sixel (tmux 3.4+), …

    def outer_graphics(self) -> str | None:
        """"kitty" or "sixel" when the terminal outside tmux is known to draw them, else None."""
        outer = self.outer.lower()
        if any(name in outer for name in _KITTY_TERMINALS) and not too_old_kitty(outer):
            return "kitty"
        if "sixel" in self.features or any(name in outer for name in _SIXEL_TERMINALS):
            return "sixel"
        return None


def parse_tmux(text: str) -> Tmux | None:
    """Read tmux's answer to ``TMUX_FORMAT``."""
    fields = text.rstrip("\n").split("\t")
    if len(fields) != 5:
        return None
    version, passthrough, termname, termtype, features = fields
    return Tmux(version=version, passthrough=passthrough in ("1", "on", "all"), outer=f"{termname} {termtype}".strip(),
                features=frozenset(f for f in features.split(",") if f))


def _tmux_display(fmt: str, env: Mapping[str, str]) -> str | None:
    target = ["-t", env["TMUX_PANE"]] if env.get("TMUX_PANE") else []
    try:
        result = subprocess.run(["tmux", "display-message", "-p", *target, fmt], capture_output=True, text=True,
                                timeout=2, env=dict(env))
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def tmux_info(env: Mapping[str, str] = os.environ) -> Tmux | None:
    """The tmux we run in ($TMUX), or None outside tmux or when tmux cannot be asked."""
    if not env.get("TMUX"):
        return None
    text = _tmux_display(TMUX_FORMAT, env)
    return parse_tmux(text) if text is not None else None


def passthrough(sequence: str) -> str:
    """``sequence`` wrapped in tmux's DCS passthrough: tmux hands it to the outer terminal unread (every ESC doubled)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


class PaneOffset:
    """Where our tmux pane starts on the outer terminal (columns, rows). A passed-through image is placed there by
    absolute position — tmux does not move the outer cursor before a passthrough — so the offset is asked again
    whenever the pane's size changes (a split or a zoom moves it too)."""

    def __init__(self, env: Mapping[str, str] = os.environ):
        self.env = dict(env)
        self._size: tuple[int, int] | None = None
        self._offset = (0, 0)

    def __call__(self) -> tuple[int, int]:
        size = tuple(shutil.get_terminal_size())
        if size != self._size:
            self._size = size
            text = _tmux_display("#{pane_left} #{pane_top}", self.env) or ""
            left, _, top = text.strip().partition(" ")
            self._offset = (int(left), int(top)) if left.isdigit() and top.isdigit() else (0, 0)
        return self._offset


# ---------------------------------------------------------------------------------------------------- colours

_TRUECOLOR_TERMS = ("xterm-kitty", "xterm-ghostty", "alacritty", "foot", "foot-extra", "wezterm", "contour", "mintty")
_TRUECOLOR_PROGRAMS = ("iTerm.app", "WezTerm", "vscode", "ghostty", "Hyper", "Tabby", "rio")


_256_TERMS = ("xterm", "mlterm", "rxvt", "screen", "tmux", "vt340", "foot", "alacritty", "wezterm", "st")


def supports_256(env: Mapping[str, str], answers: Answers) -> bool:
    """Whether 256 colours reach the screen where $TERM does not say so (TERM=xterm, mlterm: Textual would use 16):
    every terminal emulator that answers DA1 has them, and so do the ones named — not the Linux console."""
    term = env.get("TERM", "")
    if term == "linux" or term.endswith(("-16color", "-mono", "-m")) or term in ("", "dumb"):
        return False
    return answers.answered or term.split("-")[0] in _256_TERMS


def supports_truecolor(env: Mapping[str, str], answers: Answers, tmux: Tmux | None) -> bool:
    """Whether 24-bit colour reaches the screen. $COLORTERM says so where it is set, but ssh does not forward it: then
    inside tmux, tmux's RGB feature for the outer terminal decides (tmux turns 24-bit colour into 256 without it);
    outside, a TERM or TERM_PROGRAM known for it, or the terminal's own answer to the DECRQSS query."""
    if env.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return True
    if tmux is not None:
        return "RGB" in tmux.features or "Tc" in tmux.features
    term = env.get("TERM", "")
    if term.endswith(("-direct", "-truecolor")) or term in _TRUECOLOR_TERMS:
        return True
    return env.get("TERM_PROGRAM", "") in _TRUECOLOR_PROGRAMS or answers.truecolor
