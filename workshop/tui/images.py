"""Inline images in the workshop: how they are drawn (decided once, before the app takes the terminal over) and the
widget that draws them — sixel, kitty graphics or half-block cells, each image fitted into its box with its aspect
kept and centred on the widget's background.

Inside tmux, sixel and kitty graphics go through tmux's passthrough when its ``allow-passthrough`` option is on (and
tmux 3.4+ built with sixel draws sixel itself); otherwise the workshop says how to turn it on and uses half-blocks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from PIL import Image
from rich.color import Color as RichColor
from rich.segment import ControlType, Segment
from rich.style import Style
from textual import constants as textual_constants
from textual.css.scalar import Unit
from textual.dom import NoScreen
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from journal import InvalidInput
from journal.images import open_image

from . import kitty, sixel
from .display import Display, cells_covered, detect, letterbox, spans
from .terminal import passthrough, supports_256, supports_truecolor


def prepare(requested: str, truecolor: bool | None = None, env: Mapping[str, str] = os.environ) -> Display:
    """Ask the terminal (and tmux) once, before the app starts, and decide how images and colours are drawn. 24-bit
    colour is announced to Textual through $COLORTERM (``truecolor`` True/False overrides the detection); otherwise
    256 colours through Textual's colour system wherever the terminal has them ($TERM=xterm alone made it 16)."""
    display, answers, tmux = detect(requested, env)
    colours = truecolor if truecolor is not None else (supports_truecolor(env, answers, tmux) or display.mode == "kitty")
    if colours:
        os.environ["COLORTERM"] = "truecolor"  # read by the App's console when it is made
    elif truecolor is False:
        os.environ.pop("COLORTERM", None)
    if "TEXTUAL_COLOR_SYSTEM" not in env:  # (set by the user: theirs to decide)
        textual_constants.COLOR_SYSTEM = "256" if not colours and supports_256(env, answers) else "auto"
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
            send = self._graphics.sent(kitty.transmit(self._kitty_id, canvas, width, height))
            lines[0] = Strip([Segment(send, control=_ZERO_WIDTH), *lines[0]], crop.width)
            self._kitty_sent = key
        return lines
