"""Contact sheets: one PNG per grid, A1111-style — column headers across the top, row headers down the left, active
keywords in black, inactive ones grey and struck through, axis values bare (S/R) or named (``Seed: 3``), with the
title and model line above. The label-free variant (for publishing) tiles the images alone. Small images (the
built-in model's 32×32) are enlarged by a whole factor, pixels kept sharp, so that tiles are at least ``MIN_TILE``
pixels and the labels fit; large ones come as tiles shrunk by a whole factor to at most ``MAX_TILE`` a side
(``sheet_tile``, made as each image is written), so a sheet of many 1024² images is quick to draw and encode.

``layout_sheet`` decides where every tile and every label goes; ``contact_sheet`` only draws that layout, so the
layout's promises are testable: labels wrap to the width they have (a word too long for it breaks), no two label
boxes overlap, and every label is drawn. An axis whose cells along a column (row, sub-grid) carry different labels —
the square layout of a plain list of seeds — cannot be a header: its labels become a caption under each cell.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from journal.text import one_line

from .hires import made_size
from .png import PngBands
from .records import RunRecord

PAD = 8
LINE = 18
ACTIVE = (0, 0, 0)
INACTIVE = (150, 150, 150)
MISSING = (220, 220, 220)
MIN_TILE = 128
MAX_TILE = 256
MAX_ROW_LABEL = 192  # row labels wrap at this width (or the tile's, if wider)
INDENT = 10  # a wrapped label's further lines are indented, so they do not read as labels of their own
_EDGES = (("x", "col"), ("y", "row"), ("z", "subgrid"))  # axis label key, and the cell field it heads


@dataclass(frozen=True)
class TextBox:
    """One label as drawn: its text wrapped into lines, the box they fill, and what it labels."""

    kind: str  # title | model | x (a column header) | y (a row header) | z (a sub-grid header) | cell (a caption)
    key: int  # the column, row, sub-grid or cell index it labels (0 for the title and model line)
    text: str
    lines: tuple[str, ...]
    x: int
    y: int
    width: int
    height: int
    active: bool = True

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.x + self.width, self.y + self.height)


@dataclass(frozen=True)
class Tile:
    index: int  # the cell's index
    x: int
    y: int


@dataclass(frozen=True)
class SheetLayout:
    width: int
    height: int
    tile_width: int
    tile_height: int
    tiles: tuple[Tile, ...]
    texts: tuple[TextBox, ...]


def sheet_tile(image: Image.Image) -> Image.Image:
    """An image as a contact sheet shows it: shrunk by the smallest whole factor that brings its longest side to at
    most MAX_TILE (a box filter: each tile pixel the mean of the pixels it covers), or as it is."""
    factor = math.ceil(max(image.size) / MAX_TILE)
    return image.reduce(factor) if factor > 1 else image


def tile_size(width: int, height: int) -> tuple[int, int]:
    """The tile of a ``width``×``height`` image: shrunk as ``sheet_tile`` shrinks it, or enlarged by the whole factor
    that makes its shorter side at least MIN_TILE."""
    factor = math.ceil(max(width, height) / MAX_TILE)
    width, height = -(-width // factor), -(-height // factor)
    scale = max(1, math.ceil(MIN_TILE / min(width, height)))
    return width * scale, height * scale


class Sheet:
    """A contact sheet drawn as its images come (``add``) and encoded as it goes: the rows above the first tile still
    missing are compressed at once (``png.PngBands``), so finishing it (``png``) leaves little to do; the header band
    above the first tile, which holds the title, is encoded last, so the title can say how many images there are."""

    def __init__(self, cells: list[dict], rows: int, cols: int, subgrids: int, tile: tuple[int, int], title: str = "",
                 model_line: str = "", labels: bool = True):
        self.title = title  # laid out now, drawn by ``finish`` (which may give another of no greater width)
        self.layout = layout_sheet(cells, rows, cols, subgrids, tile, title, model_line, labels)
        canvas = Image.new("RGB", (self.layout.width, self.layout.height), "white")
        _draw_texts(canvas, [t for t in self.layout.texts if t.kind != "title"])
        self.pixels = np.array(canvas)
        self._missing = {t.index: t for t in self.layout.tiles}
        self._head = min((t.y for t in self.layout.tiles), default=self.layout.height)
        self._encoded = self._head  # rows below the header band compressed so far
        self._bands = PngBands(self.pixels)

    def add(self, index: int, image: Image.Image) -> None:
        """Paste cell ``index``'s image (any size: it is fitted to the tile) and compress the rows it completes."""
        if (tile := self._missing.pop(index, None)) is None:
            return
        size = (self.layout.tile_width, self.layout.tile_height)
        image = sheet_tile(image)
        if image.size != size:
            image = image.resize(size, Image.NEAREST)  # a small image enlarged, its pixels kept sharp
        self.pixels[tile.y : tile.y + size[1], tile.x : tile.x + size[0]] = np.asarray(image.convert("RGB"))
        self._advance()

    def finish(self, title: str | None = None) -> Image.Image:
        """The sheet with its title (``title`` instead, if given), the tiles never added left grey."""
        self._complete(title)
        return Image.fromarray(self.pixels)

    def png(self, title: str | None = None) -> bytes:
        """The finished sheet (see ``finish``) as a PNG file: only the rows not compressed yet are compressed now."""
        self._complete(title)
        self._bands.encode(0, self._head)
        return self._bands.png()

    def _complete(self, title: str | None) -> None:
        """Grey the tiles never added, draw the title, and compress the rows below the header band still left."""
        title = self.title if title is None else title
        size = (self.layout.tile_width, self.layout.tile_height)
        for tile in self._missing.values():
            self.pixels[tile.y : tile.y + size[1], tile.x : tile.x + size[0]] = MISSING
        self._missing = {}
        head = Image.fromarray(self.pixels[: self._head])
        titles = [replace(t, text=title, lines=(one_line(title),)) for t in self.layout.texts if t.kind == "title"]
        _draw_texts(head, titles)
        self.pixels[: self._head] = np.asarray(head)
        self._advance()

    def _advance(self) -> None:
        ready = min((t.y for t in self._missing.values()), default=self.layout.height)
        if ready > self._encoded:
            self._bands.encode(self._encoded, ready)
            self._encoded = ready


def _draw_texts(image: Image.Image, texts: list[TextBox]) -> None:
    draw = ImageDraw.Draw(image)
    for text in texts:
        colour = ACTIVE if text.active and text.kind != "model" else INACTIVE
        for i, line in enumerate(text.lines):
            draw_line(draw, text.x + (INDENT if i else 0), text.y + i * LINE, line, colour, struck=not text.active)


def contact_sheet(cells: list[dict], images: dict[int, Image.Image], rows: int, cols: int, subgrids: int,
                  title: str = "", model_line: str = "", labels: bool = True) -> Image.Image:
    """Tile ``images`` by each cell's row/col/subgrid (sub-grids stack downwards), labelled as ``layout_sheet`` says."""
    width = max((im.width for im in images.values()), default=64)
    height = max((im.height for im in images.values()), default=64)
    sheet = Sheet(cells, rows, cols, subgrids, tile_size(width, height), title, model_line, labels)
    for index, image in images.items():
        sheet.add(index, image)
    return sheet.finish()


class RunSheets:
    """A run's two contact sheets — labelled, and label-free for publishing — laid out and labelled on a thread of
    their own from the moment the run starts, then drawn as its batches are written (on the writer's thread), then
    finished with the number of images the run made."""

    FILES = {"sheet.png": True, "sheet-unlabelled.png": False}

    def __init__(self, record: RunRecord):
        self.record = record
        drawing = ThreadPoolExecutor(1, thread_name_prefix="promptism-sheet")
        self._sheets = drawing.submit(self._draw)
        drawing.shutdown(wait=False)

    def _draw(self) -> dict[str, Sheet]:
        r = self.record
        cells = [c.model_dump(mode="json") for c in r.cells]  # the sheet draws journal cells (dicts) too
        sizes = [made_size(r.params, c.width or r.params.width or 64, c.height or r.params.height or 64)
                 for c in r.cells]  # (a hires fix's images are larger than the size its cells record)
        tile = tile_size(max((w for w, _ in sizes), default=64), max((h for _, h in sizes), default=64))  # (a size
        # axis: its largest)
        widest = self._title(len(cells))  # no title it gets later is wider
        made_by = ", ".join(m.id for m in r.models.values()) if r.models else r.model.id  # (a model axis: each)
        return {name: Sheet(cells, r.grid.rows, r.grid.cols, r.grid.subgrids, tile, widest, f"Generated with {made_by}",
                            labels) for name, labels in self.FILES.items()}

    def add(self, tiles: dict[int, Image.Image]) -> None:
        for sheet in self._sheets.result().values():
            for index, image in tiles.items():
                sheet.add(index, image)

    def files(self, images: int, pool: Executor) -> dict[str, Future]:
        """Each sheet's PNG (by file name), finished on ``pool``, its title counting ``images``."""
        return {name: pool.submit(sheet.png, self._title(images)) for name, sheet in self._sheets.result().items()}

    def _title(self, images: int) -> str:
        return f"{self.record.spec.mode} · {images} of {len(self.record.cells)} images"


def layout_sheet(cells: list[dict], rows: int, cols: int, subgrids: int, tile: tuple[int, int], title: str = "",
                 model_line: str = "", labels: bool = True) -> SheetLayout:
    """Where each tile and each label goes on a sheet of ``tile``-sized images."""
    tw, th = tile
    by_pos = {(c["subgrid"], c["row"], c["col"]): c for c in cells}
    if not labels:
        tiles = tuple(Tile(c["index"], col * tw, (z * rows + row) * th) for (z, row, col), c in by_pos.items())
        return SheetLayout(cols * tw, subgrids * rows * th, tw, th, tiles, ())
    edges = {axis: _uniform(cells, axis, field) for axis, field in _EDGES}

    def axis_labels(cell: dict, axis: str) -> list[dict]:
        return cell.get("labels", {}).get(axis, [])

    headers = {axis: {c[field]: axis_labels(c, axis) for c in cells} if edges[axis] else {} for axis, field in _EDGES}
    captions = {c["index"]: [lb for axis, _ in _EDGES if not edges[axis] for lb in axis_labels(c, axis)] for c in cells}

    # widths: columns are as wide as the tiles; row labels take what they need, up to MAX_ROW_LABEL
    row_labels = [lb for v in headers["y"].values() for lb in v]
    row_text_w = min(max((_width(_text(lb)) for lb in row_labels), default=0), max(tw, MAX_ROW_LABEL) - 2 * PAD)
    left = row_text_w + 2 * PAD if row_labels else 0
    grid_w = left + cols * tw
    col_blocks = {col: _wrap_all(v, tw - 2 * PAD) for col, v in headers["x"].items()}
    head_h = max((_lines(b) * LINE for b in col_blocks.values()), default=0)
    head_h += PAD if head_h else 0
    row_blocks = {row: _wrap_all(v, row_text_w) for row, v in headers["y"].items()}
    cap_blocks = {i: _wrap_all(v, tw - 2 * PAD) for i, v in captions.items()}
    caption_h = max((_lines(b) * LINE for b in cap_blocks.values()), default=0)
    caption_h += PAD if caption_h else 0
    row_h = [max(th, _lines(row_blocks.get(row, [])) * LINE) + caption_h for row in range(rows)]

    texts: list[TextBox] = []
    top = 0
    if title or model_line:
        for k, (kind, text) in enumerate((("title", title), ("model", model_line))):
            line = one_line(text)
            texts.append(TextBox(kind, 0, text, (line,), PAD, PAD // 2 + k * LINE, _width(line), LINE))
        top = 2 * LINE + PAD
    tiles: list[Tile] = []
    y0 = top
    for z in range(subgrids):
        z_labels = headers["z"].get(z, [])
        if z_labels:
            placed = _flow(z_labels, PAD, y0, grid_w - PAD)
            texts += [TextBox("z", z, *box) for box in placed]
            y0 = max(y + height for _, _, _, y, _, height, _ in placed) + PAD  # below the lowest
        for col, block in col_blocks.items():
            texts += [TextBox("x", col, *box) for box in _stack(block, left + col * tw + PAD, y0)]
        y = y0 + head_h
        for row in range(rows):
            block = row_blocks.get(row, [])
            block_top = y + max(0, (th - _lines(block) * LINE) // 2)
            texts += [TextBox("y", row, *box) for box in _stack(block, PAD, block_top)]
            for col in range(cols):
                cell = by_pos.get((z, row, col))
                if cell is None:
                    continue
                x = left + col * tw
                tiles.append(Tile(cell["index"], x, y))
                texts += [TextBox("cell", cell["index"], *box) for box in _stack(cap_blocks[cell["index"]], x + PAD, y + th + PAD // 2)]
            y += row_h[row]
        y0 = y + (PAD if z + 1 < subgrids else 0)
    width = max([grid_w, *(t.x + t.width + PAD for t in texts)])
    return SheetLayout(width, y0, tw, th, tuple(tiles), tuple(texts))


def _uniform(cells: list[dict], axis: str, field: str) -> bool:
    """Whether every cell at the same position along ``field`` carries the same ``axis`` labels (so a header can
    show them)."""
    seen: dict[int, list] = {}
    for c in cells:
        labels = c.get("labels", {}).get(axis, [])
        if seen.setdefault(c[field], labels) != labels:
            return False
    return True


_Wrapped = tuple[str, tuple[str, ...], bool]  # a label's text, its lines, whether it is active


def _wrap_all(labels: list[dict], width: int) -> list[_Wrapped]:
    return [(lb["text"], wrap(_text(lb), width), lb.get("active", True)) for lb in labels]


def _lines(block: list[_Wrapped]) -> int:
    return sum(len(lines) for _, lines, _ in block)


def _stack(block: list[_Wrapped], x: int, y: int) -> list[tuple]:
    """Labels one under the other from (x, y): the TextBox fields after kind and key."""
    out = []
    for text, lines, active in block:
        height = len(lines) * LINE
        out.append((text, lines, x, y, _block_width(lines), height, active))
        y += height
    return out


def _flow(labels: list[dict], x0: int, y0: int, right: int) -> list[tuple]:
    """Labels side by side from (x0, y0), on to a new line where the next one would pass ``right``."""
    out = []
    x, y, line_h = x0, y0, 0
    for lb in labels:
        lines = wrap(_text(lb), right - x0)
        width = _block_width(lines)
        if x > x0 and x + width > right:
            x, y, line_h = x0, y + line_h, 0
        out.append((lb["text"], lines, x, y, width, len(lines) * LINE, lb.get("active", True)))
        x += width + 2 * PAD
        line_h = max(line_h, len(lines) * LINE)
    return out


def wrap(text: str, width: int) -> tuple[str, ...]:
    """``text`` in lines that fit ``width`` pixels (the lines after the first are ``INDENT`` narrower): broken between
    words, and inside a word only where the word alone is wider."""
    lines: list[str] = []
    line = ""

    def room() -> int:
        return width - (INDENT if lines else 0)

    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if _width(candidate) <= room():
            line = candidate
            continue
        if line:
            lines.append(line)
        while _width(word) > room() and len(word) > 1:  # break the word where it stops fitting
            cut = next(n for n in range(len(word) - 1, 0, -1) if _width(word[:n]) <= room() or n == 1)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    lines.append(line)
    return tuple(lines)


def _block_width(lines: tuple[str, ...]) -> int:
    return max(_width(line) + (INDENT if i else 0) for i, line in enumerate(lines))


def draw_line(draw: ImageDraw.ImageDraw, x: int, y: int, line: str, colour, struck: bool = False) -> None:
    """One line of a label with its ink starting at ``x`` (a glyph that leans left is moved right), struck through
    if asked."""
    draw.text((x - min(0, _font().getbbox(line)[0] if line else 0), y), line, fill=colour, font=_font())
    if struck:
        draw.line([(x, y + LINE // 2), (x + _width(line) - 1, y + LINE // 2)], fill=colour, width=1)


def _text(label: dict) -> str:
    return one_line(label["text"])


@lru_cache(maxsize=1)
def _font():
    return ImageFont.load_default(size=13)


def _width(text: str) -> int:
    """How wide ``text``'s ink is, drawn by ``draw_line``."""
    if not text:
        return 0
    font = _font()
    left, _, right, _ = font.getbbox(text)
    return max(math.ceil(font.getlength(text)), right) - min(0, left)
