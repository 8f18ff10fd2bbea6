"""Terminal output for the CLI: user text always printed literally (no markup, no escape sequences), tables, images."""

from __future__ import annotations

import shutil
import sys
import warnings
from functools import lru_cache
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from journal.text import visible


def literal(text: str) -> Text:
    """Rich Text that renders exactly ``text``: ``[bold]`` stays brackets, ESC becomes ␛."""
    return Text(visible(text))


@lru_cache(maxsize=1)
def console() -> Console:
    # Piped output is not wrapped at 80 columns: a table row stays one line for grep and friends.
    return Console(highlight=False, markup=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else 1000)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i == 0 else "left", overflow="fold")
    for row in rows:
        table.add_row(*(literal(cell) for cell in row))
    console().print(table, soft_wrap=False)


def draw_image(path: Path) -> None:
    """Draw an image inline at its own size (kitty / iTerm2 / coloured blocks, detected by term-image), shrunk only to
    fit 60 columns and the terminal's height; only on a terminal. Nothing pads it: one blank line, then what follows."""
    if not sys.stdout.isatty():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from term_image.image import AutoImage, Size

    from journal.images import open_image

    from term_image.exceptions import TermImageError

    columns, lines = shutil.get_terminal_size()
    image = AutoImage(open_image(path))
    try:
        image.set_size(Size.AUTO, frame_size=(min(columns, 60), max(1, min(lines - 2, 24))))
        image.draw(h_align="left", pad_width=1, v_align="top", pad_height=1)  # 1: no padding (0 would mean "terminal size")
    except TermImageError as exc:  # a terminal too small, or one that reports no size
        console().print(literal(f"(cannot draw {path.name} here: {exc})"))
    print()
