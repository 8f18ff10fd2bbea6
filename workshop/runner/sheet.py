"""Contact sheets: one PNG per grid, A1111-style — column headers across the top, row headers down the left, active
keywords in black, inactive ones grey and struck through, axis values bare (S/R) or named (``Seed: 3``), with the
title and model line above. The label-free variant (for publishing) tiles the images alone. Small images (the
built-in model's 32×32) are enlarged by a whole factor, pixels kept sharp, so that tiles are at least ``MIN_TILE``
pixels and the labels fit."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

PAD = 8
LINE = 18
ACTIVE = (0, 0, 0)
INACTIVE = (150, 150, 150)
MISSING = (220, 220, 220)
MIN_TILE = 128


def contact_sheet(cells: list[dict], images: dict[int, Image.Image], rows: int, cols: int, subgrids: int,
                  title: str = "", model_line: str = "", labels: bool = True) -> Image.Image:
    """Tile ``images`` by each cell's row/col/subgrid; sub-grids stack downwards."""
    cell_w = max((im.width for im in images.values()), default=64)
    cell_h = max((im.height for im in images.values()), default=64)
    scale = math.ceil(MIN_TILE / min(cell_w, cell_h))
    if scale > 1:
        images = {i: im.resize((im.width * scale, im.height * scale), Image.NEAREST) for i, im in images.items()}
        cell_w, cell_h = cell_w * scale, cell_h * scale
    font = ImageFont.load_default(size=13)
    by_pos = {(c["subgrid"], c["row"], c["col"]): c for c in cells}
    x_labels = {c["col"]: c.get("labels", {}).get("x", []) for c in cells}
    y_labels = {c["row"]: c.get("labels", {}).get("y", []) for c in cells}
    z_labels = {c["subgrid"]: c.get("labels", {}).get("z", []) for c in cells}
    head_lines = max((len(v) for v in x_labels.values()), default=0) if labels else 0
    left = max((_width(font, lb["text"]) for v in y_labels.values() for lb in v), default=0) + 2 * PAD if labels else 0
    top = (LINE * 2 + PAD if labels and (title or model_line) else 0)
    sub_head = LINE + PAD if labels and subgrids > 1 else 0
    block_h = sub_head + head_lines * LINE + (PAD if head_lines else 0) + rows * cell_h
    width = max([left + cols * cell_w, *(_width(font, t) + 2 * PAD for t in (title, model_line) if top)])
    sheet = Image.new("RGB", (width, top + subgrids * block_h), "white")
    draw = ImageDraw.Draw(sheet)
    if top:
        draw.text((PAD, PAD // 2), title, fill=ACTIVE, font=font)
        draw.text((PAD, PAD // 2 + LINE), model_line, fill=INACTIVE, font=font)
    for z in range(subgrids):
        y0 = top + z * block_h
        if sub_head:
            _labels(draw, font, z_labels.get(z, []), PAD, y0, vertical=False)
        grid_top = y0 + sub_head + head_lines * LINE + (PAD if head_lines else 0)
        for col in range(cols):
            if labels:
                _labels(draw, font, x_labels.get(col, []), left + col * cell_w + PAD, y0 + sub_head, vertical=True)
        for row in range(rows):
            if labels:
                _labels(draw, font, y_labels.get(row, []), PAD, grid_top + row * cell_h + cell_h // 2 - LINE // 2, vertical=True)
            for col in range(cols):
                cell = by_pos.get((z, row, col))
                box = (left + col * cell_w, grid_top + row * cell_h)
                image = images.get(cell["index"]) if cell else None
                if image is None:
                    draw.rectangle([box, (box[0] + cell_w - 1, box[1] + cell_h - 1)], fill=MISSING)
                else:
                    sheet.paste(image.convert("RGB"), box)
    return sheet


def _labels(draw: ImageDraw.ImageDraw, font, labels: list[dict], x: int, y: int, vertical: bool) -> None:
    for i, label in enumerate(labels):
        pos = (x, y + i * LINE) if vertical else (x + i * 120, y)
        colour = ACTIVE if label.get("active", True) else INACTIVE
        draw.text(pos, label["text"], fill=colour, font=font)
        if not label.get("active", True):  # struck through
            mid = pos[1] + LINE // 2
            draw.line([(pos[0], mid), (pos[0] + _width(font, label["text"]), mid)], fill=colour, width=1)


def _width(font, text: str) -> int:
    return int(font.getlength(text))
