"""Terminal output for the CLI: user text always printed literally (no markup, no escape sequences), tables, images.
Rich loads when something is first printed through it (a ``--json`` command never loads it)."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from journal.text import control_free, visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def literal(text: str) -> Text:
    """Rich Text that renders exactly ``text``: ``[bold]`` stays brackets, ESC becomes ␛."""
    from rich.text import Text

    return Text(visible(text))


def say(text: str, *, err: bool = False) -> None:
    """Print a line that holds user text (a title, a path, a model name) literally."""
    (stderr_console() if err else console()).print(literal(text))


def dump_json(data) -> str:
    """JSON for scripts: values exact, but every control, bidi or invisible character written as a ``\\u`` escape, so
    the text is safe to show on a terminal too (``ensure_ascii=False`` alone writes C1 controls and U+202E raw)."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return "".join(ch if ch == "\n" or control_free(ch) else _escape(ch) for ch in text)  # raw newlines: indentation


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


@lru_cache(maxsize=1)
def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


@lru_cache(maxsize=1)
def console() -> Console:
    from rich.console import Console

    # Piped output is not wrapped at 80 columns: a table row stays one line for grep and friends.
    return Console(highlight=False, markup=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else 1000)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

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
    except (TermImageError, ValueError) as exc:  # a terminal too small, or one that reports no size (0×0: ValueError)
        console().print(literal(f"(cannot draw {path.name} here: {exc})"))
    print()
