"""Terminal output for the CLI: user text always printed literally (no markup, no escape sequences), tables, images.
Rich loads when something is first printed through it (a ``--json`` command never loads it)."""

from __future__ import annotations

import json
import os
import sys
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


def draw_images(paths: list[Path], graphics: str) -> None:
    """Draw images inline, one after another, as the terminal draws them (sixel, kitty or half-blocks: asked once, as
    the workshop asks), each with its aspect kept and shrunk only to fit 60 columns and the terminal's height; only on
    a terminal. Nothing pads them: one blank line after each, then what follows."""
    if not sys.stdout.isatty():
        return
    from journal import InvalidInput
    from journal.images import open_image

    from ..tui.display import detect
    from ..tui.inline import draw

    display = detect(graphics)[0]
    if display.notice:
        console().print(literal(f"note: {display.notice}"))
    if display.mode == "none":
        return
    columns, lines = os.get_terminal_size(sys.stdout.fileno())  # (shutil's would say 80×24 for a 0×0 terminal)
    for path in paths:
        if not columns or not lines:  # a terminal that reports no size (0×0)
            console().print(literal(f"(cannot draw {path.name} here: the terminal reports no size)"))
            continue
        try:
            drawing = draw(open_image(path), display, columns, max(1, lines - 2))
        except InvalidInput as exc:  # over the pixel limit, or not an image
            console().print(literal(f"(cannot draw {path.name}: {exc})"))
            continue
        sys.stdout.write(drawing + "\n")
        sys.stdout.flush()
