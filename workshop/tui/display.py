"""What this terminal draws and how an image fits it — decided once, shared by the workshop's pictures and the CLI's
``show --image`` (no Textual here): the drawing mode (sixel, kitty, half-blocks) given the terminal's answers and the
tmux around us, and an image letterboxed into a box of cells with its aspect kept on the screen."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Mapping

from PIL import Image

from .terminal import (DEFAULT_CELL, SIXEL_LIMIT, Answers, CellSize, PaneOffset, Tmux, ask, cell_size_from_winsize,
                       parse_answers, passthrough, probe_query, tmux_info, too_old_kitty)


@dataclass(frozen=True)
class Display:
    """How this terminal draws images."""

    mode: str  # "sixel", "kitty", "halfcell" or "none"
    cell: CellSize = DEFAULT_CELL
    passthrough: PaneOffset | None = field(default=None, compare=False)  # set: graphics pass through tmux unread
    tmux_sixel: bool = False  # tmux (3.4+, built with sixel) takes the sixel images and draws them itself
    notice: str | None = None  # one line for the user when the images are not what was asked for, and how to fix it
    sixel_limit: tuple[int, int] = SIXEL_LIMIT  # the largest sixel the terminal draws (pixels): larger ones are split

    @property
    def through_tmux(self) -> bool:
        """Images reach the terminal through tmux, which writes a synchronized update's text after the images drawn
        meanwhile, erasing them: the app must not use synchronized updates then."""
        return self.passthrough is not None or self.tmux_sixel

    def sent(self, sequences: list[str]) -> str:
        """Escape sequences as they are written: each wrapped in tmux's passthrough when images go through it."""
        return "".join(passthrough(s) for s in sequences) if self.passthrough is not None else "".join(sequences)


def choose(requested: str, answers: Answers, tmux: Tmux | None, cell: CellSize = DEFAULT_CELL,
           offset: PaneOffset | None = None) -> Display:
    """The drawing mode for ``--graphics requested`` given the terminal's answers and the tmux around us, if any; a
    notice says why images are not what was asked for, and how to get them."""
    if requested in ("none", "halfcell"):
        return Display(requested, cell)
    old_kitty = answers.old_kitty or (tmux and too_old_kitty(tmux.outer.lower()))
    if old_kitty and (requested == "kitty" or (requested == "auto" and not answers.sixel)):
        return Display("halfcell", cell, notice=f"{old_kitty} cannot place images in text (kitty 0.28 or newer can): "
                                                "images are half-blocks; update kitty to see them")
    if tmux is None:
        if requested == "auto":
            requested = "sixel" if answers.sixel else "kitty" if answers.kitty else "halfcell"
        return Display(requested, cell)
    wanted = tmux.outer_graphics() if requested == "auto" else requested
    if wanted == "sixel" and answers.sixel:  # tmux 3.4+ built with sixel says so in its DA1 answer: it draws them
        return Display("sixel", cell, tmux_sixel=True)
    if wanted and tmux.passthrough:
        return Display(wanted, cell, passthrough=offset or PaneOffset())
    if wanted is None:  # auto, and what the terminal outside tmux draws is unknown
        how = "" if tmux.passthrough else "run `tmux set -g allow-passthrough on` and "
        return Display("halfcell", cell, notice="inside tmux promptism cannot ask the terminal what it draws, so images "
                                                f"are half-blocks: {how}start with --graphics sixel or --graphics kitty "
                                                "if it draws those")
    return Display("halfcell", cell, notice=f"tmux holds back {wanted} images: run `tmux set -g allow-passthrough on` "
                                            "(and put it in ~/.tmux.conf) to see them; half-blocks until then")


def detect(requested: str, env: Mapping[str, str] = os.environ) -> tuple[Display, Answers, Tmux | None]:
    """Ask the terminal (and tmux) once and decide how images are drawn for ``--graphics requested``; also what the
    terminal said and the tmux around us (for the colours)."""
    tmux = tmux_info(env)
    plain = tmux is not None or bool(env.get("STY")) or env.get("TERM") == "linux"  # no APC/DCS queries there
    answers = parse_answers(ask(probe_query(plain)))
    cell = cell_size_from_winsize() or answers.cell or DEFAULT_CELL
    display = choose(requested, answers, tmux, cell, PaneOffset(env))
    return replace(display, sixel_limit=answers.sixel_limit or SIXEL_LIMIT), answers, tmux


def fit(image: tuple[int, int], box: tuple[float, float]) -> tuple[float, float]:
    """The largest size with ``image``'s aspect inside ``box`` (both in the same units)."""
    scale = min(box[0] / image[0], box[1] / image[1])
    return image[0] * scale, image[1] * scale


def placement(image: tuple[int, int], grid: tuple[int, int], unit: tuple[float, float]) -> tuple[int, int, int, int]:
    """Where ``letterbox`` puts an ``image``-sized picture on its ``grid``: (left, top, width, height) in grid pixels."""
    width, height = fit(image, (grid[0] * unit[0], grid[1] * unit[1]))
    size = (max(1, min(grid[0], round(width / unit[0]))), max(1, min(grid[1], round(height / unit[1]))))
    return (grid[0] - size[0]) // 2, (grid[1] - size[1]) // 2, *size


def letterbox(image: Image.Image, grid: tuple[int, int], unit: tuple[float, float], background: tuple[int, int, int]) -> Image.Image:
    """``image`` fitted into a ``grid``-sized canvas whose pixels are ``unit`` screen pixels each (half-blocks are half a
    cell high), aspect kept on the screen, centred on ``background`` (``scaled``)."""
    left, top, width, height = placement(image.size, grid, unit)
    canvas = Image.new("RGB", grid, background)
    canvas.paste(scaled(image, (width, height)), (left, top))
    return canvas


def scaled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` in RGB at ``size``: a small image grows by nearest neighbour (crisp pixels, as on the contact
    sheets); a large one shrinks smoothly."""
    grow = size[0] >= image.width and size[1] >= image.height
    return image.convert("RGB").resize(size, Image.Resampling.NEAREST if grow else Image.Resampling.LANCZOS)


def cells_covered(image: tuple[int, int], grid: tuple[int, int], cell: CellSize) -> tuple[int, int, int, int]:
    """The cells of a ``grid``-cell box that show some of the letterboxed ``image``: (left, top, right, bottom)."""
    left, top, width, height = placement(image, (grid[0] * cell.width, grid[1] * cell.height), (1, 1))
    return (left // cell.width, top // cell.height, -(-(left + width) // cell.width), -(-(top + height) // cell.height))


def spans(start: int, end: int, most: int) -> list[tuple[int, int]]:
    """``start``…``end`` cut into consecutive spans of at most ``most`` (at least 1)."""
    most = max(1, most)
    return [(first, min(end, first + most)) for first in range(start, end, most)]
