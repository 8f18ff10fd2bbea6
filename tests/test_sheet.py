"""Contact sheets, checked on the pixels of real sheets: every label is drawn, for the right cell, column or row, and
no label runs into another one or into a neighbouring column."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from journal import Journal
from tests.helpers import run_cli
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner.runs import list_runs
from workshop.runner.sheet import INDENT, LINE, MIN_TILE, PAD, _width, contact_sheet, draw_line, layout_sheet


@pytest.fixture(autouse=True)
def tiny_by_default():
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")


def ink(image: Image.Image) -> np.ndarray:
    """Where anything but white is drawn."""
    return (np.asarray(image.convert("RGB")) < 250).any(axis=2)


def rendered(text: str, active: bool = True) -> np.ndarray:
    """The ink of one label line drawn alone, as the sheet draws it."""
    canvas = Image.new("RGB", (_width(text) + 4, LINE), "white")
    draw_line(ImageDraw.Draw(canvas), 0, 0, text, (0, 0, 0) if active else (150, 150, 150), struck=not active)
    return ink(canvas)


def find(sheet_ink: np.ndarray, pattern: np.ndarray) -> list[tuple[int, int]]:
    """Every (x, y) where ``pattern``'s ink appears exactly (ink where it has ink, none where it has none)."""
    h, w = pattern.shape
    windows = np.lib.stride_tricks.sliding_window_view(sheet_ink, (h, w))
    ys, xs = np.nonzero((windows == pattern).all(axis=(2, 3)))
    return list(zip(xs.tolist(), ys.tolist()))


def run_sheet(tmp_path: Path, capsys, *args: str):
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, *args, "--journal", str(j))
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    return run, Image.open(run.folder / "sheet.png")


def layout_of(run, sheet_tile: int = MIN_TILE):
    m = run.record.dump()
    title = f"{m['spec']['mode']} · {len(run.done)} of {len(m['cells'])} images"
    return layout_sheet(m["cells"], m["grid"]["rows"], m["grid"]["cols"], m["grid"]["subgrids"], (sheet_tile, sheet_tile),
                        title, f"Generated with {m['model']['id']}")


def assert_labels_apart_and_inside(sheet: Image.Image, layout) -> None:
    """No two label boxes overlap, none covers a tile, and outside the tiles nothing is drawn but inside a box."""
    boxes = [t.box for t in layout.texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
        for tile in layout.tiles:
            t = (tile.x, tile.y, tile.x + layout.tile_width, tile.y + layout.tile_height)
            assert a[2] <= t[0] or t[2] <= a[0] or a[3] <= t[1] or t[3] <= a[1], (a, t)
    stray = ink(sheet)
    for x0, y0, x1, y1 in [*boxes, *((t.x, t.y, t.x + layout.tile_width, t.y + layout.tile_height) for t in layout.tiles)]:
        stray[y0:y1, x0:x1] = False
    assert not stray.any(), f"ink outside every label box and tile at {np.argwhere(stray)[:3].tolist()}"
    assert sheet.size == (layout.width, layout.height)


def test_a_2x2_seed_sheet_labels_every_cell_with_its_own_seed(tmp_path, capsys):
    run, sheet = run_sheet(tmp_path, capsys, "generate", "a lighthouse at dusk", "--seeds", "1-4", "--steps", "1")
    cells = run.record.dump()["cells"]
    assert run.record.grid.dump() == {"rows": 2, "cols": 2, "subgrids": 1}
    layout = layout_of(run)
    assert_labels_apart_and_inside(sheet, layout)
    sheet_ink = ink(sheet)
    tiles = {t.index: t for t in layout.tiles}
    for cell in cells:  # "Seed: N" is drawn once, right under the tile of the cell made with seed N
        hits = find(sheet_ink, rendered(f"Seed: {cell['seed']}"))
        assert len(hits) == 1, (cell["seed"], hits)
        (x, y), tile = hits[0], tiles[cell["index"]]
        assert tile.x <= x < tile.x + MIN_TILE and tile.y + MIN_TILE <= y < tile.y + MIN_TILE + LINE + PAD, (x, y, tile)


def test_long_keywords_wrap_inside_their_column(tmp_path, capsys):
    keywords = ["trending on artstation", "highly detailed", "glowing"]
    run, sheet = run_sheet(tmp_path, capsys, "grid", "-p", "a red circle", *(a for k in keywords for a in ("-k", k)),
                           "--mode", "leave-one-out", "--steps", "1", "--clip", "none")
    sheet_ink = ink(sheet)
    # the tiles (noise), found from the pixels: where a band of rows and then a column are mostly drawn on
    grid_top = next(y for y in range(sheet.height) if (sheet_ink[y:y + LINE].mean(axis=1) > 0.6).all())
    left = next(x for x in range(sheet.width) if sheet_ink[grid_top:grid_top + MIN_TILE, x].mean() > 0.6)
    for col in range(1, 4 + 1):  # between two columns' headers (and after the last) there is a clear gutter
        boundary = left + col * MIN_TILE
        assert not sheet_ink[2 * LINE + PAD:grid_top, boundary - PAD // 2: boundary + PAD // 2].any(), f"a header crosses column {col}"
    layout = layout_of(run)
    assert_labels_apart_and_inside(sheet, layout)
    headers = [t for t in layout.texts if t.kind == "x"]
    assert sorted((t.key, t.text) for t in headers) == sorted((c, k) for c in range(4) for k in keywords)
    for t in headers:  # each keyword line is drawn where the layout says, struck through where it is left out
        x0 = t.x
        for i, line in enumerate(t.lines):
            x = x0 + (INDENT if i else 0)
            pattern = rendered(line, t.active)
            if t.active:
                assert (sheet_ink[t.y + i * LINE: t.y + i * LINE + LINE, x: x + pattern.shape[1]] == pattern).all(), line
            assert left + t.key * MIN_TILE <= x and x + pattern.shape[1] - 4 <= left + (t.key + 1) * MIN_TILE - PAD, line
    assert any(len(t.lines) > 1 for t in headers if t.text == "trending on artstation")


def test_dynamic_and_sub_grid_headers_do_not_overprint():
    tiles = lambda g: {c.index: Image.new("RGB", (32, 32), (40, 90, 200)) for c in g.cells}  # noqa: E731
    for values in (
        {"prompt": "portrait, in the style of {Basquiat and friends|Signorelli the elder|Klimt in his gold period}, "
                   "{oil painting|watercolour sketch on rough paper}", "mode": "dynamic"},
        {"prompt": "a red circle", "keywords": ["trending on artstation", "glowing"], "mode": "matrix",
         "axes": {"z": "sr=red,deep ultramarine blue with a hint of green,green"}, "seeds": [1]},
        {"prompt": "a red circle", "keywords": ["trending on artstation", "glowing"], "mode": "add-one",
         "axes": {"y": "sr=red,a very long replacement that needs more than one line of the row header"}},
    ):
        grid = build_grid(spec_from(values))
        cells = [c.to_json() for c in grid.cells]
        sheet = contact_sheet(cells, tiles(grid), grid.rows, grid.cols, grid.subgrids, "t", "Generated with shapes")
        layout = layout_sheet(cells, grid.rows, grid.cols, grid.subgrids, (MIN_TILE, MIN_TILE), "t", "Generated with shapes")
        assert_labels_apart_and_inside(sheet, layout)
        drawn = {(t.kind, t.key, t.text) for t in layout.texts}
        for c in cells:  # every axis label of every cell is drawn for its column, row or sub-grid
            for axis, key in (("x", c["col"]), ("y", c["row"]), ("z", c["subgrid"])):
                for label in c["labels"].get(axis, []):
                    assert (axis, key, label["text"]) in drawn, (axis, key, label)
