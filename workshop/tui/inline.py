"""Images printed inline, in the terminal's scrollback, for the CLI (``promptism show --image``): sixel, kitty graphics
or half-block cells as the terminal draws them (``display.detect``, the workshop's own probe), each in a box of cells
that keeps the image's aspect on the screen whatever the cells' shape. No Textual here: the CLI prints the string."""

from __future__ import annotations

import warnings

from PIL import Image

from . import kitty, sixel
from .display import Display, fit, scaled

MAX_COLUMNS = 60  # the widest an image is drawn (it is shrunk to fit, never grown past a half-cell a pixel)
MAX_LINES = 24


def box(image: tuple[int, int], display: Display, columns: int, lines: int) -> tuple[int, int]:
    """The cells an image is drawn in: a pixel a half-block wide (what half-blocks show at full detail), its aspect kept
    on the screen, shrunk to fit ``columns`` × ``lines`` (and MAX_COLUMNS × MAX_LINES)."""
    cell = display.cell
    width, height = fit(image, (min(image[0], columns, MAX_COLUMNS) * cell.width,
                                min(image[1] * cell.width / cell.height, lines, MAX_LINES) * cell.height))
    return max(1, round(width / cell.width)), max(1, round(height / cell.height))


def draw(image: Image.Image, display: Display, columns: int, lines: int) -> str:
    """``image`` as the terminal draws it, then a newline: the cursor ends on the line below the picture."""
    cols, rows = box(image.size, display, columns, lines)
    if display.mode == "sixel" and display.passthrough is None:  # (through tmux's passthrough: nowhere to place it)
        return _sixel(image, display, cols, rows)
    if display.mode == "kitty":
        return _kitty(image, display, cols, rows)
    return _halfcell(image, cols, rows)


def _sixel(image: Image.Image, display: Display, cols: int, rows: int) -> str:
    """One sixel no larger than the terminal draws; the terminal moves the cursor below it, to the next line."""
    limit = display.sixel_limit
    width, height = fit(image.size, (min(cols * display.cell.width, limit[0]), min(rows * display.cell.height, limit[1])))
    return sixel.image_to_sixel(scaled(image, (max(1, int(width)), max(1, int(height))))) + "\n"


def _kitty(image: Image.Image, display: Display, cols: int, rows: int) -> str:
    """The image sent once, then shown by placeholder cells naming it (through tmux's passthrough when it is on)."""
    image_id = kitty.new_id()
    cell = display.cell
    sequences = kitty.transmit(image_id, scaled(image, (cols * cell.width, rows * cell.height)), cols, rows)
    r, g, b = kitty.id_color(image_id)
    return display.sent(sequences) + "".join(f"\x1b[38;2;{r};{g};{b}m{kitty.placeholders(row, 0, cols)}\x1b[39m\n" for row in range(rows))


def _halfcell(image: Image.Image, cols: int, rows: int) -> str:
    """Two pixels a cell, drawn by term-image at exactly ``cols`` × ``rows`` (24-bit colour)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (term-image warns when it finds no terminal of its own to ask)
        import term_image
        from term_image.image import BlockImage

    term_image.disable_queries()  # the terminal was asked once already (display.detect)
    blocks = BlockImage(image.convert("RGB"), width=cols, height=rows)
    return f"{blocks:1.1}" + "\n"  # (padding 1: none)

