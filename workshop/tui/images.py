"""Inline images in the workshop: how they are drawn (decided once, before the app takes the terminal over) and the
widget that draws them — sixel, kitty graphics or half-block cells, each image fitted into its box with its aspect
kept and centred on the widget's background.

Inside tmux, sixel and kitty graphics go through tmux's passthrough when its ``allow-passthrough`` option is on (and
tmux 3.4+ built with sixel draws sixel itself); otherwise the workshop says how to turn it on and uses half-blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from PIL import Image
from rich.color import Color as RichColor
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.css.scalar import Unit
from textual.dom import NoScreen
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from journal import InvalidInput
from journal.images import open_image

from . import kitty, sixel
from .terminal import (DEFAULT_CELL, SIXEL_LIMIT, Answers, CellSize, PaneOffset, Tmux, ask, cell_size_from_winsize,
                       parse_answers, passthrough, probe_query, supports_truecolor, tmux_info, too_old_kitty)


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


def prepare(requested: str, truecolor: bool | None = None, env: Mapping[str, str] = os.environ) -> Display:
    """Ask the terminal (and tmux) once, before the app starts, and decide how images and colours are drawn. 24-bit
    colour is announced to Textual through $COLORTERM (``truecolor`` True/False overrides the detection)."""
    tmux = tmux_info(env)
    plain = tmux is not None or bool(env.get("STY")) or env.get("TERM") == "linux"  # no APC/DCS queries there
    answers = parse_answers(ask(probe_query(plain)))
    cell = cell_size_from_winsize() or answers.cell or DEFAULT_CELL
    display = replace(choose(requested, answers, tmux, cell, PaneOffset(env)), sixel_limit=answers.sixel_limit or SIXEL_LIMIT)
    colours = truecolor if truecolor is not None else (supports_truecolor(env, answers, tmux) or display.mode == "kitty")
    if colours:
        os.environ["COLORTERM"] = "truecolor"  # read by the App's console when it is made
    elif truecolor is False:
        os.environ.pop("COLORTERM", None)
    return display


def image_widget(display: Display, source: Path | Image.Image | None, **kwargs) -> Widget:
    """An image drawn as ``display`` says; a plain placeholder for ``none``, a missing image or an unreadable file."""
    image = source
    if isinstance(source, Path) and display.mode != "none":
        try:
            image = open_image(source)  # bounded in pixels: a decompression bomb is refused, not decoded
        except InvalidInput:
            image = None
    if display.mode == "none" or image is None:
        classes = " ".join(filter(None, ["image-placeholder", kwargs.pop("classes", "")]))
        return Static("·" if source is None else "✕" if image is None else "▦", classes=classes, **kwargs)
    return Picture(display, image, **kwargs)


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
    cell high), aspect kept on the screen, centred on ``background``. Small images grow by nearest neighbour (crisp
    pixels, as on the contact sheets); large ones shrink smoothly."""
    left, top, *size = placement(image.size, grid, unit)
    grow = size[0] >= image.width and size[1] >= image.height
    scaled = image.convert("RGB").resize(tuple(size), Image.Resampling.NEAREST if grow else Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", grid, background)
    canvas.paste(scaled, (left, top))
    return canvas


def cells_covered(image: tuple[int, int], grid: tuple[int, int], cell: CellSize) -> tuple[int, int, int, int]:
    """The cells of a ``grid``-cell box that show some of the letterboxed ``image``: (left, top, right, bottom)."""
    left, top, width, height = placement(image, (grid[0] * cell.width, grid[1] * cell.height), (1, 1))
    return (left // cell.width, top // cell.height, -(-(left + width) // cell.width), -(-(top + height) // cell.height))


def spans(start: int, end: int, most: int) -> list[tuple[int, int]]:
    """``start``…``end`` cut into consecutive spans of at most ``most`` (at least 1)."""
    most = max(1, most)
    return [(first, min(end, first + most)) for first in range(start, end, most)]


def move_to(x: int, y: int) -> str:
    return f"\x1b[{y + 1};{x + 1}H"


_ZERO_WIDTH = ((ControlType.CURSOR_FORWARD, 0),)  # a control segment: Textual counts it as no cells and never cuts it


class Picture(Widget):
    """An image fitted into this widget's box (give it a size, or one side and ``auto`` for the other), drawn in the
    display's mode. No border or padding: the image is the whole widget."""

    DEFAULT_CSS = "Picture { width: auto; height: auto; }"

    def __init__(self, display: Display, image: Image.Image, **kwargs):
        super().__init__(**kwargs)
        self._graphics = display
        self._image = image.convert("RGB")
        self._cache: dict = {}
        self._generation = 0  # counts image changes: the kitty image is sent again after one
        self._kitty_id = kitty.new_id()
        self._kitty_sent: tuple | None = None

    @property
    def image(self) -> Image.Image:
        return self._image

    @image.setter
    def image(self, image: Image.Image) -> None:
        resized = image.size != self._image.size
        self._image = image.convert("RGB")
        self._generation += 1
        self._cache.clear()
        self.refresh(layout=resized)

    def redraw(self) -> None:
        """Draw the image again, kitty's sent anew: tmux redraws a pane's text, not the images passed through it."""
        self._kitty_sent = None
        self.refresh()

    # ------------------------------------------------------------------------------------------------- sizing

    def _given(self, dimension: str, container: Size, viewport: Size) -> int | None:
        scalar = getattr(self.styles, dimension)
        if scalar is None or scalar.is_auto:
            return None
        if scalar.unit == Unit.FRACTION:
            return getattr(container, dimension)
        return int(scalar.resolve(container, viewport))

    def get_content_width(self, container: Size, viewport: Size) -> int:
        cell = self._graphics.cell
        height = self._given("height", container, viewport)
        if height is None:  # both auto: the image's own size in cells
            return max(1, min(container.width, -(-self._image.width // cell.width)))
        return max(1, min(container.width, round(height * cell.height * self._image.width / self._image.height / cell.width)))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        cell = self._graphics.cell
        return max(1, round(width * cell.width * self._image.height / self._image.width / cell.height))

    # ------------------------------------------------------------------------------------------------ drawing

    def _background(self) -> tuple[int, int, int]:
        return self.background_colors[1].rgb

    def _blank(self, width: int) -> Strip:
        return Strip([Segment(" " * width, Style(bgcolor=RichColor.from_rgb(*self._background())))], width)

    def render_lines(self, crop: Region) -> list[Strip]:
        width, height = self.size
        if not width or not height:
            return []
        try:
            active = self.screen.is_active
        except NoScreen:  # not on a screen (yet): nothing to draw
            active = False
        if not active:  # under a modal: an image drawn now would cover the dialog
            return [self._blank(crop.width)] * crop.height
        draw = {"sixel": self._sixel_lines, "kitty": self._kitty_lines}.get(self._graphics.mode, self._halfcell_lines)
        return draw(crop)

    def _cached(self, key: tuple, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _halfcell_lines(self, crop: Region) -> list[Strip]:
        """Each cell shows two pixels: the upper one as the foreground of ▀, the lower one as its background."""
        width, height = self.size
        cell = self._graphics.cell

        def make() -> list[Strip]:
            canvas = letterbox(self._image, (width, height * 2), (cell.width, cell.height / 2), self._background())
            pixels = canvas.load()
            colour = {}
            lines = []
            for row in range(height):
                segments = []
                for x in range(width):
                    upper, lower = pixels[x, 2 * row], pixels[x, 2 * row + 1]
                    style = colour.get((upper, lower))
                    if style is None:
                        style = colour[upper, lower] = Style(color=RichColor.from_rgb(*upper), bgcolor=RichColor.from_rgb(*lower))
                    segments.append(Segment("▀", style))
                lines.append(Strip(segments, width).simplify())
            return lines

        lines = self._cached(("halfcell", width, height, self._background()), make)
        return [line.crop(crop.x, crop.right) for line in lines[crop.y:crop.bottom]]

    def _sixel_lines(self, crop: Region) -> list[Strip]:
        """One sixel per text row, drawn after that row's blank cells: any row Textual repaints (a toast gone, a
        scroll) repaints its own slice, and the cursor ends where the row's next cell is. The screen's last row is
        left blank — an image that reaches it makes the terminal scroll. Only the cells the image covers are sent (the
        letterbox around it is blank cells), cut into tiles no larger than the terminal draws: xterm drops a sixel
        over its maxGraphicSize (1000×1000 unless set) without a trace.

        tmux's own sixel is different: it keeps no more than 20 images, and text written over one deletes it and
        redraws the pane. There the picture is one sixel (as few tiles as the limit allows), and the cells it covers
        get no text at all (the cursor jumps over them)."""
        width, height = self.size
        cell = self._graphics.cell
        indices, palette = self._cached(("sixel", width, height, cell, self._background()), lambda: sixel.palettize(
            letterbox(self._image, (width * cell.width, height * cell.height), (1, 1), self._background())))
        left, top, right, bottom = cells_covered(self._image.size, (width, height), cell)
        left, right = max(left, crop.x), min(right, crop.right)
        top, bottom = max(top, crop.y), min(bottom, crop.bottom, self.screen.size.height - 1 - self.region.y)
        whole = self._graphics.tmux_sixel
        lines = [self._blank(crop.width)] * crop.height
        if right <= left or bottom <= top:
            return lines
        if whole:
            for row in range(top, bottom):
                lines[row - crop.y] = self._around(crop, row, left, right)
        most_columns, most_rows = (limit // size for limit, size in zip(self._graphics.sixel_limit, cell))
        for first, end in spans(top, bottom, most_rows if whole else 1):
            tiles = [self._tile(indices, palette, first, end, x, x_end) for x, x_end in spans(left, right, most_columns)]
            finish = move_to(self.region.x + crop.right, self.region.y + end - 1)
            last = end - 1 - crop.y
            lines[last] = Strip([*lines[last], *(Segment(t, control=_ZERO_WIDTH) for t in tiles),
                                 Segment(finish, control=_ZERO_WIDTH)], crop.width)
        return lines

    def _around(self, crop: Region, row: int, left: int, right: int) -> Strip:
        """A row of tmux's own sixel: blank cells beside the image and none under it (the cursor jumps over them)."""
        jump = [Segment(move_to(self.region.x + right, self.region.y + row), control=_ZERO_WIDTH)]
        before, after = (list(self._blank(n)) if n > 0 else [] for n in (left - crop.x, crop.right - right))
        return Strip([*before, *jump, *after], crop.width)

    def _tile(self, indices, palette, top: int, bottom: int, left: int, right: int) -> str:
        """The sixel of the image's cells ``left``…``right`` × ``top``…``bottom``, placed there by absolute position."""
        cell = self._graphics.cell
        data = self._cached(("sixel-tile", self.size, cell, self._background(), top, bottom, left, right), lambda: sixel.encode(
            indices[top * cell.height:bottom * cell.height, left * cell.width:right * cell.width], palette))
        x, y = self.region.x + left, self.region.y + top
        if self._graphics.passthrough is not None:  # tmux does not move the terminal's cursor for a passthrough: we do
            pane_left, pane_top = self._graphics.passthrough()
            return passthrough(move_to(pane_left + x, pane_top + y) + data)
        return move_to(x, y) + data

    def _kitty_lines(self, crop: Region) -> list[Strip]:
        """Placeholder cells naming the image by its id (in the foreground colour) and their row and column; the image
        itself is sent (again) whenever its pixels or its box change."""
        width = min(self.size.width, kitty.MAX_CELLS)
        height = min(self.size.height, kitty.MAX_CELLS)
        cell = self._graphics.cell
        key = (width, height, cell, self._background(), self._generation)
        style = Style(color=RichColor.from_rgb(*kitty.id_color(self._kitty_id)))
        lines = []
        for row in range(crop.y, crop.bottom):
            if row >= height:
                lines.append(self._blank(crop.width))
                continue
            columns = max(0, min(crop.right, width) - crop.x)
            segments = [Segment(kitty.placeholders(row, crop.x, columns), style)] if columns else []
            if columns < crop.width:
                segments += self._blank(crop.width - columns)
            lines.append(Strip(segments, crop.width))
        if self._kitty_sent != key and lines:
            canvas = letterbox(self._image, (width * cell.width, height * cell.height), (1, 1), self._background())
            sequences = kitty.transmit(self._kitty_id, canvas, width, height)
            send = "".join(passthrough(s) for s in sequences) if self._graphics.passthrough is not None else "".join(sequences)
            lines[0] = Strip([Segment(send, control=_ZERO_WIDTH), *lines[0]], crop.width)
            self._kitty_sent = key
        return lines
