"""Images in real terminals, checked on the bytes promptism writes: sixel colour registers, tmux passthrough, the
terminal probe, fitting images into their boxes, and `show --image` on a pseudo-terminal."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.helpers import declared_png, on_pty, pty_run, run_cli


@pytest.fixture
def no_terminal(monkeypatch):
    """The app made in-process asks no terminal (pytest may run in one): default cell size, nothing detected."""
    import workshop.tui.display as display

    monkeypatch.setattr(display, "ask", lambda query, timeout=1.0: "")
    monkeypatch.setattr(display, "cell_size_from_winsize", lambda: None)
    monkeypatch.delenv("TMUX", raising=False)


def circle(size=(32, 32), fill=(200, 30, 30), background=(240, 240, 240)) -> Image.Image:
    im = Image.new("RGB", size, background)
    ImageDraw.Draw(im).ellipse((size[0] // 8, size[1] // 8, size[0] * 7 // 8, size[1] * 7 // 8), fill=fill)
    return im


def test_show_image_draws_each_image_at_its_own_size_after_the_metadata(tmp_path, capsys):
    """Two 32×32 images in block cells are 16 lines each (2 pixels a line): not padded to the terminal's 40 lines."""
    sources = [tmp_path / "red.png", tmp_path / "blue.png"]
    circle(fill=(200, 30, 30)).save(sources[0])
    circle(fill=(30, 30, 200)).save(sources[1])
    journal = tmp_path / "j"
    assert run_cli(capsys, "import", *map(str, sources), "-t", "two", "-m", "shapes", "--journal", str(journal))[0] == 0

    out = on_pty(["show", "1", "--image", "--journal", str(journal)], rows=40).decode()
    lines = out.split("\n")
    metadata_end = next(k for k, line in enumerate(lines) if line.startswith("Prompt"))
    drawn = [k for k, line in enumerate(lines) if "\x1b[48;2;" in line]
    assert drawn and min(drawn) > metadata_end  # the images come after the metadata
    red = [k for k in drawn if "200;30;30" in lines[k]]
    blue = [k for k in drawn if "30;30;200" in lines[k]]
    assert len(drawn) == 32 and len(lines) - metadata_end < 32 + 6, len(lines)  # 16 + 16 lines, no padding
    assert max(red) < min(blue)  # one after the other


def _show_on(tmp_path, capsys, answers: str | None, pixels: tuple[int, int], *args: str) -> str:
    """``promptism show 1 --image ARGS`` of a 32×32 red circle on a 100×40 pseudo-terminal of ``pixels`` that answers
    the probe with ``answers``."""
    source = tmp_path / "red.png"
    circle(fill=(200, 30, 30)).save(source)
    journal = tmp_path / "j"
    assert run_cli(capsys, "import", str(source), "-t", "one", "-m", "shapes", "--journal", str(journal))[0] == 0
    promptism = str(Path(sys.executable).parent / "promptism")
    code, out = pty_run([promptism, "show", "1", "--image", *args, "--journal", str(journal)], rows=40, cols=100,
                        pixels=pixels, term="xterm-256color", answers=answers)
    assert code == 0, out[-300:]
    return out.decode(errors="replace")


def test_show_image_draws_sixel_where_the_terminal_does_with_the_aspect_kept(tmp_path, capsys):
    """It went through term-image's blocks only: xterm got no sixel. 10×20-pixel cells: 32 columns × 16 rows."""
    out = _show_on(tmp_path, capsys, XTERM_ANSWERS, (1000, 800))
    (data,) = re.findall(r"\x1bP[\d;]*q.*?\x1b\\", out, re.S)
    image = decode_sixel(data)
    assert image.size == (320, 320) and max(abs(a - b) for a, b in zip(image.getpixel((160, 160)), (200, 30, 30))) <= 2


def test_show_image_keeps_the_aspect_with_tall_cells(tmp_path, capsys):
    """Half-blocks assumed cells twice as high as wide: with 8×24-pixel cells a square was drawn 32 columns × 16 rows,
    256×384 px on the screen. Now 32 × 11 (256×264 px)."""
    out = _show_on(tmp_path, capsys, None, (800, 960), "--graphics", "halfcell")
    drawn = [line for line in out.split("\n") if "\x1b[48;2;" in line]
    assert len(drawn) == 11


def test_show_image_in_kitty_uses_its_graphics_with_the_aspect_kept(tmp_path, capsys):
    out = _show_on(tmp_path, capsys, KITTY_ANSWERS, (1000, 800))
    assert "\x1b_Ga=t," in out and "\x1b_Ga=p,U=1" in out  # the image sent once, placed virtually…
    rows = [line for line in out.split("\n") if "\U0010eeee" in line]
    assert len(rows) == 16 and all(line.count("\U0010eeee") == 32 for line in rows)  # …shown by 32 × 16 placeholders


def test_show_image_in_an_old_kitty_says_why_it_draws_blocks(tmp_path, capsys):
    out = _show_on(tmp_path, capsys, KITTY_ANSWERS.replace("0.35.2", "0.26.5"), (1000, 800), "--graphics", "kitty")
    assert "note: kitty(0.26.5)" in out and "\x1b_G" not in out.replace("\x1b_Gi=31,s=1", "")  # only the probe's query
    assert len([line for line in out.split("\n") if "\x1b[48;2;" in line and "\x1b[c" not in line]) == 16  # not the probe


# ------------------------------------------------------------------------------------------------ sixel, as xterm reads it

UNTOUCHED = (255, 0, 255)  # a pixel the stream never drew
DEFAULT = (0, 255, 0)  # the colour xterm draws with before any register is selected
_TOKEN = re.compile(r"#(\d+(?:;\d+)*)|!(\d+)([?-~])|([?-~])|(\$)|(-)")


def decode_sixel(data: str) -> Image.Image:
    """Decode a sixel string as xterm does: ``#n;2;r;g;b`` defines register n without selecting it, ``#n`` selects it,
    pixels drawn with nothing selected get xterm's default colour, and zero bits leave pixels as they were."""
    header = re.match(r'\x1bP[\d;]*q"1;1;(\d+);(\d+)', data)
    assert header and data.endswith("\x1b\\"), data[:40]
    width, height = int(header.group(1)), int(header.group(2))
    canvas = Image.new("RGB", (width, height), UNTOUCHED)
    registers: dict[int, tuple[int, int, int]] = {}
    current = None
    x = y = 0
    body = data[header.end():-2]
    position = 0
    while position < len(body):
        token = _TOKEN.match(body, position)
        assert token, f"unexpected {body[position:position + 10]!r}"
        position = token.end()
        colour, count, repeated, single, carriage_return, newline = token.groups()
        if colour:
            params = [int(p) for p in colour.split(";")]
            if len(params) == 1:
                current = params[0]
            else:
                assert params[1] == 2, "colours are given as RGB percentages"
                registers[params[0]] = tuple(round(v * 255 / 100) for v in params[2:5])
        elif carriage_return:
            x = 0
        elif newline:
            x, y = 0, y + 6
        else:
            char, times = (repeated, int(count)) if repeated else (single, 1)
            bits = ord(char) - 63
            for _ in range(times):
                for bit in range(6):
                    if bits >> bit & 1 and x < width and y + bit < height:
                        canvas.putpixel((x, y + bit), registers[current] if current is not None else DEFAULT)
                x += 1
    return canvas


def close(a: Image.Image, b: Image.Image, tolerance: int = 2) -> bool:
    from PIL import ImageChops

    return a.size == b.size and max(hi for _, hi in ImageChops.difference(a, b).getextrema()) <= tolerance


def test_the_decoder_draws_define_only_data_in_the_default_colour_as_xterm_does():
    """The fault of issue 13 item 22, modelled: data right after a bare definition is drawn in the default colour."""
    define_only = '\x1bP0;1;0q"1;1;2;6#0;2;100;0;0!2~\x1b\\'
    assert decode_sixel(define_only).getpixel((0, 0)) == DEFAULT
    define_then_select = '\x1bP0;1;0q"1;1;2;6#0;2;100;0;0#0!2~\x1b\\'
    assert decode_sixel(define_then_select).getpixel((0, 0)) == (255, 0, 0)


def test_sixel_defines_every_register_first_and_selects_it_before_its_pixels():
    from workshop.tui.sixel import image_to_sixel

    image = circle((48, 40), fill=(200, 30, 30), background=(240, 200, 40))
    ImageDraw.Draw(image).rectangle((0, 35, 47, 39), fill=(30, 160, 60))  # a third colour, first seen low down
    data = image_to_sixel(image)
    body = data[data.index('"'):]
    first_pixel = re.search(r"#\d+[?-~!]", body).start()
    assert not re.search(r"#\d+;2;", body[first_pixel:])  # every definition comes before the first pixel
    assert close(decode_sixel(data), image)  # and xterm's reading of it is the image, top band included


def test_sixel_covers_exactly_its_pixels():
    """Raster size is the image's; no graphics newline after the last band (it would reach into the next text row)."""
    from workshop.tui.sixel import image_to_sixel

    data = image_to_sixel(circle((30, 13)))
    assert '"1;1;30;13' in data and not data.endswith("-\x1b\\") and data.startswith("\x1bP0;1;0q")


# ------------------------------------------------------------------------------------------------ the Picture widget

CELL = (10, 20)  # a cell's pixels in these tests: the usual 1 wide to 2 high


def picture_app(display, image: Image.Image, css: str, size=(40, 12)):
    """A one-widget app: the picture under test, sized by ``css``, with ``size`` cells of screen."""
    from textual.app import App

    from workshop.tui.images import Picture

    class One(App):
        CSS = f"Picture {{ {css} }}"

        def compose(self):
            yield Picture(display, image, id="picture")

    return One()


def sixel_rows(lines) -> list[tuple[int, int, str, int, int]]:
    """Each sixel tile: the (row, column) it is drawn at, the sixel, and where its line leaves the cursor (row, column)."""
    found = []
    for strip in lines:
        controls = "".join(segment.text for segment in strip if segment.control)
        tiles = re.findall(r"\x1b\[(\d+);(\d+)H(\x1bP.*?\x1b\\)", controls, re.S)
        if tiles:
            end = re.search(r"\x1b\[(\d+);(\d+)H$", controls)
            assert end and controls.endswith("".join(f"\x1b[{r};{c}H{data}" for r, c, data in tiles) + end.group(0))
            found += [(int(r) - 1, int(c) - 1, data, int(end.group(1)) - 1, int(end.group(2)) - 1) for r, c, data in tiles]
    return found


def assemble(rows, size: tuple[int, int], cell=CELL) -> Image.Image:
    """The picture the terminal shows in a ``size``-pixel box at the screen's origin, from its sixel tiles (black where
    none is drawn)."""
    canvas = Image.new("RGB", size)
    for row, column, data, _, _ in rows:
        canvas.paste(decode_sixel(data), (column * cell[0], row * cell[1]))
    return canvas


def red_box(image: Image.Image) -> tuple[int, int, int, int]:
    mask = Image.eval(image.convert("RGB").split()[0], lambda v: 255 if v > 150 else 0)
    green = Image.eval(image.convert("RGB").split()[1], lambda v: 255 if v < 100 else 0)
    from PIL import ImageChops

    return ImageChops.multiply(mask, green).getbbox()


async def test_sixel_picture_keeps_the_aspect_draws_each_row_in_place_and_leaves_the_cursor_on_it():
    """Zoom in a 40×11 box: a 32×32 circle is drawn 220×220 px (11 rows of 20 px), centred, not stretched to the
    box; each row's sixel starts at the image's first cell (the letterbox around it is blank cells, not sixel) and
    leaves the cursor at the end of the same row — moving it to the row below made Textual write the rest of that row
    one row down, leaving strips of old images behind."""
    from textual.geometry import Region

    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("sixel", CellSize(*CELL)), circle(fill=(200, 30, 30), background=(240, 240, 240)),
                      "width: 40; height: 11;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        picture = app.query_one("#picture")
        rows = sixel_rows(picture.render_lines(Region(0, 0, 40, 11)))
        assert [(row, column) for row, column, *_ in rows] == [(y, 9) for y in range(11)]  # 90 px of letterbox
        assert all((end_row, end_column) == (row, 40) for row, _, _, end_row, end_column in rows)
        assert {decode_sixel(data).size for _, _, data, *_ in rows} == {(220, 20)}  # the image's cells, no more
        shown = assemble(rows, (400, 220))
        left, top, right, bottom = red_box(shown)
        assert abs((right - left) - (bottom - top)) <= 8  # round, not a wide ellipse
        assert abs((left + right) / 2 - 200) <= 8  # centred in the box


def raster_size(data: str) -> tuple[int, int]:
    """A sixel's declared size (its raster attributes), as the terminal reads it before any pixel."""
    header = re.match(r'\x1bP[\d;]*q"1;1;(\d+);(\d+)', data)
    assert header, data[:40]
    return int(header.group(1)), int(header.group(2))


@pytest.mark.parametrize("limit, tiles_per_row", [((1000, 1000), 2), ((2000, 2000), 1), ((300, 1000), 4)])
async def test_a_wide_sixel_is_cut_into_tiles_no_wider_than_the_terminal_draws(limit, tiles_per_row):
    """xterm drops a sixel over its maxGraphicSize (1000×1000 unless set) without a trace: a 150-column zoom drew
    nothing. A 2:1 image in 150×30 cells is 1200×600 px: each row is cut at the limit, and the tiles together cover
    exactly the image's 120 columns (15…135), side by side, the picture intact."""
    from textual.geometry import Region

    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("sixel", CellSize(*CELL), sixel_limit=limit), circle((64, 32)), "width: 150; height: 30;")
    async with app.run_test(size=(150, 31)) as pilot:
        await pilot.pause()
        tiles = sixel_rows(app.query_one("#picture").render_lines(Region(0, 0, 150, 30)))
    assert all(raster_size(data)[0] <= limit[0] and raster_size(data)[1] <= limit[1] for _, _, data, *_ in tiles)
    for row in range(30):
        mine = sorted((column, raster_size(data)[0]) for r, column, data, *_ in tiles if r == row)
        assert len(mine) == tiles_per_row and mine[0][0] == 15
        assert all(column + width // CELL[0] == after for (column, width), (after, _) in zip(mine, mine[1:]))
        assert mine[-1][0] + mine[-1][1] // CELL[0] == 135
    left, top, right, bottom = red_box(assemble(tiles, (1500, 600)))
    assert abs((left + right) / 2 - 750) <= 12 and abs((right - left) - 2 * (bottom - top)) <= 24  # centred, 2:1 kept


async def test_tmux_sixel_is_cut_at_the_limit_in_both_directions():
    from textual.geometry import Region

    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    display = Display("sixel", CellSize(*CELL), tmux_sixel=True, sixel_limit=(40, 40))  # 4 columns, 2 rows a tile
    app = picture_app(display, circle(), "width: 8; height: 4;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        tiles = sixel_rows(app.query_one("#picture").render_lines(Region(0, 0, 8, 4)))
    assert sorted((row, column, raster_size(data)) for row, column, data, *_ in tiles) == [
        (0, 0, (40, 40)), (0, 4, (40, 40)), (2, 0, (40, 40)), (2, 4, (40, 40))]


async def zoom_on_a_grid(pilot, app):
    """From a starting workshop: a one-seed leave-one-out grid run, its first cell zoomed; the zoom's picture."""
    from tests.test_tui import compose_and_run

    await compose_and_run(pilot, app, "a red circle", ["glowing"], seeds="1")
    await pilot.press("z")
    await pilot.pause()
    return app.screen.query_one("#zoom-image")


async def test_the_zoom_in_a_wide_xterm_sends_no_sixel_over_1000_pixels(tmp_path, no_terminal):
    """The workshop's own zoom at 200×50 cells (2000×1000 px of screen) on a terminal that does not say its limit."""
    from textual.geometry import Region

    from workshop.tui.app import create_app

    app = create_app(tmp_path / "journal", "tiny", "sixel")
    async with app.run_test(size=(200, 50)) as pilot:
        zoom = await zoom_on_a_grid(pilot, app)
        tiles = sixel_rows(zoom.render_lines(Region(0, 0, *zoom.size)))
    assert tiles and all(raster_size(data)[0] <= 1000 and raster_size(data)[1] <= 1000 for _, _, data, *_ in tiles)
    assert sum(raster_size(data)[0] for row, _, data, *_ in tiles if row == tiles[0][0]) > 400  # a big picture still


async def test_sixel_picture_never_draws_on_the_screens_last_row():
    """A sixel that reaches the last row makes xterm scroll the whole screen by a line (the zoom caption vanished)."""
    from textual.geometry import Region

    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("sixel", CellSize(*CELL)), circle(), "width: 24; height: 12;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        picture = app.query_one("#picture")
        rows = sixel_rows(picture.render_lines(Region(0, 0, 24, 12)))
        assert [row for row, *_ in rows] == list(range(11))  # row 11, the screen's last, stays text


async def test_sixel_picture_repaints_only_the_rows_asked_for():
    """Textual repaints part of a widget (a toast gone, a scroll): those rows carry their own slice of the image."""
    from textual.geometry import Region

    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("sixel", CellSize(*CELL)), circle(), "width: 24; height: 8; margin: 2 3;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        picture = app.query_one("#picture")
        rows = sixel_rows(picture.render_lines(Region(4, 3, 10, 2)))
        assert [(row, column) for row, column, *_ in rows] == [(5, 7), (6, 7)]  # margin 2 3 + crop 4, 3
        assert all(decode_sixel(data).size == (100, 20) for _, _, data, *_ in rows)


async def test_tile_width_follows_the_image_aspect():
    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("halfcell", CellSize(*CELL)), circle((64, 32)), "width: auto; height: 7;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        assert app.query_one("#picture").size == (28, 7)  # 7 rows × 20 px = 140 px high → 280 px wide = 28 cells


def painted(widget) -> tuple[int, int, int, int]:
    """The cells of a half-block picture that show the image, not the background around it: (left, top, right, bottom)."""
    from textual.geometry import Region

    background = widget.background_colors[1].rgb
    cells = []
    for y, strip in enumerate(widget.render_lines(Region(0, 0, *widget.size))):
        x = 0
        for segment in strip:
            for char in segment.text:
                colours = {c.get_truecolor() for c in (segment.style.color, segment.style.bgcolor) if c} if segment.style else set()
                if char == "▀" and colours - {background}:
                    cells.append((x, y))
                x += 1
    xs, ys = [x for x, _ in cells], [y for _, y in cells]
    return min(xs), min(ys), max(xs) + 1, max(ys) + 1


async def test_zoom_keeps_the_image_aspect(tmp_path, no_terminal):
    """Zoom on a 32×32 cell at 80×24: the image is as tall as the box allows and as wide as it is tall (cells are
    twice as high as wide), centred — not stretched over the whole screen."""
    from workshop.tui.app import create_app

    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        zoom = await zoom_on_a_grid(pilot, app)
        left, top, right, bottom = painted(zoom)
        width, height = right - left, bottom - top
        assert height >= zoom.size.height - 1 and abs(width - 2 * height) <= 2, (zoom.size, (left, top, right, bottom))
        assert abs((left + right) - zoom.size.width) <= 2  # centred


async def test_journal_thumbnail_fills_its_box(tmp_path, no_terminal):
    from journal import Journal
    from tests.helpers import new_experiment
    from tests.test_tui import wait_for
    from workshop.tui.app import create_app

    journal = Journal.init(tmp_path / "journal")
    journal.accept(new_experiment(tmp_path, "first"))  # a 64×64 image
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.screen.query(".thumbnail-image"))
        await pilot.pause()
        thumbnail = app.screen.query_one(".thumbnail-image")
        assert painted(thumbnail) == (0, 0, 20, 10)  # the whole 20×10 box: 200×200 px of a square image


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_the_experiment_screen_draws_an_imported_experiments_picture_inside_the_cursors_frame(tmp_path, no_terminal,
                                                                                                    size):
    """The cursor's border was put on the Picture itself, which draws no border: its 12-row box got 10 rows and the
    screen showed nothing — an imported experiment (one image, always under the cursor) never showed a picture."""
    from textual.geometry import Region

    from journal import Journal
    from journal.importing import experiment_from_images
    from tests.import_samples import a1111_png
    from tests.test_tui import open_experiment
    from workshop.tui.app import create_app

    journal = Journal.init(tmp_path / "journal")
    journal.accept(experiment_from_images([a1111_png(tmp_path / "a.png")], "imported one"))  # 64×64, A1111's infotext
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=size) as pilot:
        screen = await open_experiment(pilot, app)
        await pilot.pause()
        frame = screen.query_one(".detail-image")
        picture = frame.query_one(".detail-picture")
        assert frame.has_class("cursor") and frame.styles.border_top[0] == "round"
        lines = picture.render_lines(Region(0, 0, *picture.outer_size))
        assert len(lines) == picture.outer_size.height == frame.size.height  # every row of its box, inside the border
        left, top, right, bottom = painted(picture)
        assert (right - left, bottom - top) == (20, 10)  # the square image: 10 rows of 20 px, 200 px wide
        assert "pictures:" not in str(screen.query_one("#detail-info").render())  # one image: all of them shown


async def test_the_experiment_screen_says_when_it_shows_only_some_of_the_pictures(tmp_path, no_terminal):
    from journal import Journal
    from tests.helpers import new_experiment
    from tests.test_tui import open_experiment
    from workshop.tui.app import create_app

    Journal.init(tmp_path / "journal").accept(new_experiment(tmp_path, "many", n_images=6))
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_experiment(pilot, app)
        await pilot.pause()
        assert len(screen.query(".detail-image")) == 4
        assert "pictures: the first 4 of 6 (`promptism show 1 --image` draws them all)" in str(
            screen.query_one("#detail-info").render())


def test_an_image_over_the_pixel_limit_is_shown_as_a_placeholder_not_decoded(tmp_path):
    from textual.widgets import Static

    from workshop.tui.display import Display
    from workshop.tui.images import image_widget

    widget = image_widget(Display("halfcell"), declared_png(tmp_path / "bomb.png", 40000, 40000))
    assert isinstance(widget, Static) and "image-placeholder" in widget.classes


# ------------------------------------------------------------------------------------------------ tmux

TMUX_33 = "3.3a\t1\txterm\tXTerm(379)\t256,bpaste,ccolour,clipboard,cstyle,extkeys,focus,mouse,RGB,strikethrough,title\n"
TMUX_34_OFF = "3.5a\toff\txterm-256color\tXTerm(390)\t256,RGB,sixel,title\n"
TMUX_KITTY = "3.4\ton\txterm-kitty\tkitty(0.35.2)\t256,RGB,title\n"
TMUX_UNKNOWN = "3.3a\t1\txterm-256color\t\t256,RGB,title\n"  # an outer terminal that did not say its name


def test_tmux_answers_are_read():
    from workshop.tui.terminal import parse_tmux

    xterm = parse_tmux(TMUX_33)
    assert xterm.passthrough and xterm.outer_graphics() == "sixel" and "RGB" in xterm.features  # xterm says XTerm(379)
    assert parse_tmux(TMUX_UNKNOWN).outer_graphics() is None
    assert parse_tmux(TMUX_34_OFF).passthrough is False and parse_tmux(TMUX_34_OFF).outer_graphics() == "sixel"
    assert parse_tmux(TMUX_KITTY).outer_graphics() == "kitty"
    assert parse_tmux("no server running\n") is None


def test_passthrough_wraps_and_doubles_every_escape():
    from workshop.tui.terminal import passthrough

    sixel = '\x1bP0;1;0q"1;1;1;6#0;2;0;0;0#0~\x1b\\'
    wrapped = passthrough("\x1b[3;5H" + sixel)
    assert wrapped == '\x1bPtmux;\x1b\x1b[3;5H\x1b\x1bP0;1;0q"1;1;1;6#0;2;0;0;0#0~\x1b\x1b\\\x1b\\'
    assert wrapped.count("\x1b\\") == 2 and wrapped.endswith("\x1b\x1b\\\x1b\\")  # only the last ST ends tmux's string


def test_graphics_mode_inside_and_outside_tmux():
    from workshop.tui.display import choose
    from workshop.tui.terminal import Answers, parse_tmux

    xterm, sixel_tmux = Answers(sixel=True, truecolor=True), Answers(sixel=True)
    assert choose("auto", xterm, None).mode == "sixel" and choose("auto", Answers(kitty=True), None).mode == "kitty"
    assert choose("auto", Answers(), None).mode == "halfcell"
    assert choose("kitty", Answers(), None).mode == "kitty"  # asked for: the user knows the terminal
    # tmux 3.4+ built with sixel says so in its own DA1 answer, and lists sixel among the outer terminal's features:
    # it draws sixel itself, nothing is wrapped
    native = choose("auto", sixel_tmux, parse_tmux(TMUX_34_OFF))
    assert (native.mode, native.tmux_sixel, native.passthrough, native.notice) == ("sixel", True, None, None)
    assert native.through_tmux
    # passthrough on: what is asked for goes through it; xterm is known by its own answer to tmux ("XTerm(379)");
    # a terminal tmux knows only as TERM=xterm-256color (most set that) is not, and auto says how to ask for images
    forced = choose("sixel", Answers(), parse_tmux(TMUX_33))
    assert forced.mode == "sixel" and forced.passthrough is not None and forced.notice is None and forced.through_tmux
    assert choose("auto", Answers(), parse_tmux(TMUX_33)) == forced
    auto = choose("auto", Answers(), parse_tmux(TMUX_UNKNOWN))
    assert auto.mode == "halfcell" and "--graphics sixel" in auto.notice and not auto.through_tmux
    unknown_off = choose("auto", Answers(), parse_tmux(TMUX_UNKNOWN.replace("\t1\t", "\toff\t")))  # was silent
    assert unknown_off.mode == "halfcell" and "tmux set -g allow-passthrough on" in unknown_off.notice
    assert choose("auto", sixel_tmux, parse_tmux(TMUX_KITTY)).mode == "kitty"  # kitty has no sixel: passed through
    # passthrough off: half-blocks, and one line saying how to turn it on
    off = choose("auto", Answers(), parse_tmux(TMUX_34_OFF))  # a tmux without its own sixel, passthrough off
    assert off.mode == "halfcell" and "tmux set -g allow-passthrough on" in off.notice and "\n" not in off.notice
    assert "allow-passthrough" in choose("kitty", Answers(), parse_tmux(TMUX_34_OFF)).notice
    assert choose("halfcell", Answers(), parse_tmux(TMUX_34_OFF)).notice is None


def test_a_kitty_too_old_for_placeholders_gives_half_blocks_and_says_why():
    """kitty before 0.28 answers the graphics query but has no Unicode placeholders: forced kitty drew empty boxes."""
    from workshop.tui.display import choose
    from workshop.tui.terminal import parse_answers, parse_tmux

    old = parse_answers(KITTY_ANSWERS.replace("0.35.2", "0.26.5"))
    assert old.old_kitty == "kitty(0.26.5)" and parse_answers(KITTY_ANSWERS).old_kitty is None
    for requested in ("kitty", "auto"):
        shown = choose(requested, old, None)
        assert shown.mode == "halfcell" and "kitty(0.26.5)" in shown.notice and "0.28" in shown.notice
    behind_tmux = choose("auto", parse_answers(""), parse_tmux(TMUX_KITTY.replace("0.35.2", "0.21.2")))
    assert behind_tmux.mode == "halfcell" and "kitty(0.21.2)" in behind_tmux.notice
    assert choose("sixel", old, None).mode == "sixel" and choose("halfcell", old, None).notice is None


async def test_sixel_through_tmux_is_wrapped_and_placed_by_absolute_position():
    """tmux does not move the terminal's cursor before a passthrough: the position (pane offset + cell) goes inside."""
    from textual.geometry import Region

    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("sixel", CellSize(*CELL), passthrough=lambda: (50, 7)), circle(), "width: 8; height: 4; margin: 1 2;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        lines = app.query_one("#picture").render_lines(Region(0, 0, 8, 4))
        drawn = ["".join(s.text for s in line if s.control) for line in lines]
        assert len(drawn) == 4
        for row, text in enumerate(drawn):
            wrapped, _, after = text.rpartition("\x1b\\")
            assert wrapped.startswith(f"\x1bPtmux;\x1b\x1b[{7 + 1 + row + 1};{50 + 2 + 1}H\x1b\x1bP")
            assert "\x1b" not in wrapped[len("\x1bPtmux;"):].replace("\x1b\x1b", "")  # every inner ESC doubled
            assert after == f"\x1b[{1 + row + 1};{2 + 8 + 1}H"  # then tmux's own cursor: the end of the row, in the pane
            unwrapped = wrapped[len("\x1bPtmux;"):].replace("\x1b\x1b", "\x1b")
            assert decode_sixel(unwrapped[unwrapped.index("\x1bP"):]).size == (80, 20)


async def test_kitty_picture_sends_the_image_once_and_names_it_in_placeholder_cells():
    from textual.geometry import Region

    from workshop.tui import kitty
    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("kitty", CellSize(*CELL), passthrough=lambda: (0, 0)), circle(), "width: 6; height: 3;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        picture = app.query_one("#picture")
        picture.image = circle(fill=(30, 30, 200))  # a new image: sent with the next lines drawn
        first = picture.render_lines(Region(0, 0, 6, 3))
        sent = "".join(s.text for s in first[0] if s.control)
        assert sent.startswith("\x1bPtmux;\x1b\x1b_Ga=t,f=100,i=") and "\x1b\x1b_Ga=p,U=1," in sent and ",c=6,r=3," in sent
        text = [line.text for line in first]
        assert text[1] == kitty.placeholders(1, 0, 6) and text[1].count(kitty.PLACEHOLDER) == 6
        colour = next(s.style.color for s in first[2] if not s.control)
        image_id = int(re.search(r"i=(\d+)", sent).group(1))
        assert colour.get_truecolor() == kitty.id_color(image_id)
        again = picture.render_lines(Region(0, 0, 6, 3))
        assert not any(s.control for line in again for s in line)  # not sent again while it is unchanged


# ------------------------------------------------------------------------------------------------ asking the terminal

XTERM_ANSWERS = "\x1bP1$r0;48:2::1:2:3m\x1b\\\x1b[?63;1;2;4;6;9;15;16;22;28c"  # xterm 379 as a VT340, recorded
KITTY_ANSWERS = "\x1b_Gi=31;OK\x1b\\\x1bP1$r48:2:1:2:3m\x1b\\\x1b[6;20;10t\x1bP>|kitty(0.35.2)\x1b\\\x1b[?62;c"
TMUX_ANSWER = "\x1b[?1;2c"
PALETTE_ANSWERS = "\x1bP1$r0;48;5;16m\x1b\\\x1b[?62;22c"  # a 256-colour terminal maps 1,2,3 to a palette entry


def test_terminal_answers_are_read():
    from workshop.tui.terminal import Answers, CellSize, parse_answers

    xterm = parse_answers(XTERM_ANSWERS)
    assert (xterm.sixel, xterm.kitty, xterm.truecolor, xterm.cell) == (True, False, True, None)
    kitty = parse_answers(KITTY_ANSWERS)
    assert (kitty.sixel, kitty.kitty, kitty.truecolor, kitty.cell) == (False, True, True, CellSize(10, 20))
    assert parse_answers(TMUX_ANSWER) == parse_answers(PALETTE_ANSWERS) == Answers(answered=True)  # nothing but DA1
    assert parse_answers("") == Answers()
    assert (xterm.sixel_limit, kitty.sixel_limit) == (None, None)  # not answered: 1000×1000 is assumed (SIXEL_LIMIT)
    assert parse_answers("\x1b[?2;0;1920;1080S" + XTERM_ANSWERS).sixel_limit == (1920, 1080)  # XTSMGRAPHICS
    assert parse_answers("\x1b[?2;3;0;0S" + XTERM_ANSWERS).sixel_limit is None  # an error answer
    old_kitty = KITTY_ANSWERS.replace("0.35.2", "0.26.5")  # answers the graphics query, but has no placeholders yet
    assert parse_answers(old_kitty).kitty is False and parse_answers(old_kitty).truecolor


def _child(code: str, answers: str | None, rows=24, cols=80, xpixel=0, ypixel=0) -> str:
    """Run ``code`` on a pseudo-terminal whose "terminal" (this test) answers the probe with ``answers``."""
    return pty_run([sys.executable, "-c", code], rows, cols, (xpixel, ypixel), answers=answers)[1].decode(errors="replace")


def test_probe_round_trip_on_a_terminal():
    """The probe is written to the terminal, the answers are read up to DA1's, and the cell size comes from the
    kernel's window size when the terminal fills in pixels."""
    code = ("from workshop.tui.terminal import ask, cell_size_from_winsize, parse_answers, probe_query\n"
            "answers = parse_answers(ask(probe_query(False), timeout=5))\n"
            "print('RESULT', answers.sixel, answers.truecolor, tuple(cell_size_from_winsize()))")
    out = _child(code, XTERM_ANSWERS, rows=40, cols=100, xpixel=604, ypixel=524)
    assert "\x1b_Gi=31,s=1" in out and "\x1bP$qm" in out and "\x1b[?2;1;0S" in out  # kitty, DECRQSS, XTSMGRAPHICS
    assert "RESULT True True (6, 13)" in out


def test_probe_gives_up_on_a_silent_terminal():
    code = ("from workshop.tui.terminal import ask, probe_query\n"
            "print('RESULT', repr(ask(probe_query(True), timeout=0.3)))")
    out = _child(code, None)  # (a probe that waited for ever would never print: the child's own deadline ends it)
    assert "RESULT ''" in out and "\x1b_G" not in out  # and inside tmux no APC query (tmux makes it a title)


def test_truecolor_is_found_without_colorterm():
    from workshop.tui.terminal import Answers, parse_tmux, supports_truecolor

    over_ssh = {"TERM": "xterm-256color"}
    assert not supports_truecolor(over_ssh, Answers(), None)
    assert supports_truecolor(over_ssh, Answers(truecolor=True), None)  # the terminal said so (DECRQSS)
    assert supports_truecolor({"TERM": "xterm-kitty"}, Answers(), None)
    assert supports_truecolor({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, Answers(), None)
    assert supports_truecolor({"COLORTERM": "truecolor"}, Answers(), None)
    in_tmux = {"TERM": "tmux-256color", "TMUX": "/tmp/tmux-0/default,1,0"}
    assert supports_truecolor(in_tmux, Answers(), parse_tmux(TMUX_33))  # tmux knows the outer terminal has RGB
    assert not supports_truecolor(in_tmux, Answers(), parse_tmux("3.3a\t1\txterm\tXTerm(379)\t256,title\n"))


async def test_colours_are_24_bit_when_the_terminal_says_so_or_when_asked(tmp_path, monkeypatch, no_terminal):
    """Over ssh $COLORTERM is not forwarded and Textual fell back to 256 colours, posterising the half-block previews:
    the terminal's answer to the DECRQSS query (or --truecolor) now gives Textual 24-bit colour; --no-truecolor wins."""
    import workshop.tui.display as display
    from workshop.tui.app import create_app

    monkeypatch.setenv("TERM", "xterm-256color")
    for answers, flag, system in (("", None, "256"), (XTERM_ANSWERS, None, "truecolor"), ("", True, "truecolor"),
                                  (XTERM_ANSWERS, False, "256")):
        monkeypatch.setenv("COLORTERM", "truecolor" if flag is False else "")
        monkeypatch.setattr(display, "ask", lambda query, timeout=1.0, answers=answers: answers)
        app = create_app(tmp_path / "journal", "tiny", "halfcell", truecolor=flag)
        assert app.console.color_system == system, (answers[:5], flag)


@pytest.mark.parametrize("term, answers, system", [
    ("xterm", "", "256"), ("mlterm", PALETTE_ANSWERS, "256"), ("vt100", PALETTE_ANSWERS, "256"),  # answered DA1
    ("linux", "\x1b[?6c", "standard"), ("vt100", "", "standard"), ("xterm-16color", "", "standard")])
async def test_without_24_bit_colour_the_workshop_has_256_where_the_terminal_does(tmp_path, monkeypatch, no_terminal,
                                                                                   term, answers, system):
    """--no-truecolor with TERM=xterm (xterm's own default), and mlterm answering with a palette entry, gave Textual 16
    colours; every terminal emulator that answers DA1 has 256 (not the Linux console)."""
    import workshop.tui.display as display
    import workshop.tui.images as images
    from workshop.tui.app import create_app

    monkeypatch.setenv("TERM", term)
    monkeypatch.delenv("TEXTUAL_COLOR_SYSTEM", raising=False)
    monkeypatch.setattr(images.textual_constants, "COLOR_SYSTEM", "auto")  # (put back after the test)
    monkeypatch.setattr(display, "ask", lambda query, timeout=1.0: answers)
    assert create_app(tmp_path / "journal", "tiny", "halfcell", truecolor=False).console.color_system == system
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")  # the user's own choice stays theirs
    monkeypatch.setattr(images.textual_constants, "COLOR_SYSTEM", "standard")
    assert create_app(tmp_path / "journal", "tiny", "halfcell", truecolor=False).console.color_system == "standard"


async def test_no_synchronized_updates_when_images_go_through_tmux(tmp_path, no_terminal):
    """tmux 3.4+ writes a synchronized update's text after the images drawn during it, erasing every image."""
    from textual.messages import TerminalSupportsSynchronizedOutput

    from workshop.tui.app import create_app
    from workshop.tui.display import Display

    for display, synchronized in ((Display("sixel", passthrough=lambda: (0, 0)), False),
                                  (Display("sixel", tmux_sixel=True), False), (Display("sixel"), True)):
        app = create_app(tmp_path / "journal", "tiny", "halfcell")
        app.graphics = display
        async with app.run_test(size=(40, 12)) as pilot:
            app.post_message(TerminalSupportsSynchronizedOutput())
            await pilot.pause()
            assert app._sync_available is synchronized, display


@pytest.mark.parametrize("mode", ["sixel", "kitty"])
async def test_images_passed_through_tmux_are_drawn_again_when_the_window_comes_back(tmp_path, no_terminal, mode):
    """tmux redraws a pane's text when its window is shown again, not the images passed through it: the focus-in
    tmux reports then (focus-events on) makes every picture draw itself again — kitty's image sent anew (sixel rows
    Textual repaints on focus by itself)."""
    from textual import events

    from tests.test_tui import compose_and_run
    from workshop.tui.app import create_app
    from workshop.tui.images import Picture

    app = create_app(tmp_path / "journal", "tiny", mode)
    app.graphics = replace(app.graphics, passthrough=lambda: (0, 0))
    async with app.run_test(size=(80, 24)) as pilot:
        await compose_and_run(pilot, app, "a red circle", ["glowing"], seeds="1")
        await pilot.pause()
        written = []
        for picture in app.screen.query(Picture):  # what each picture hands the screen from now on
            picture.render_lines = lambda crop, draw=picture.render_lines: written.append(draw(crop)) or written[-1]
        await pilot.pause()
        assert not written  # nothing changed: nothing drawn again
        app.post_message(events.AppBlur())
        app.post_message(events.AppFocus())
        await pilot.pause()
        await pilot.pause()
        sent = "".join(segment.text for lines in written for line in lines for segment in line if segment.control)
        assert sent.count("\x1bPtmux;") >= 2  # the images through the passthrough again
        assert "\x1b\x1bP0;1;0q" in sent if mode == "sixel" else "\x1b\x1b_G" in sent


async def test_tmux_sixel_is_one_image_and_its_rows_write_no_text():
    """tmux's own sixel keeps at most 20 images and deletes one when text is written over it: one sixel for the whole
    picture, drawn on its last row, and the rows above only move the cursor past the image."""
    from textual.geometry import Region

    from workshop.tui.display import Display
    from workshop.tui.terminal import CellSize

    app = picture_app(Display("sixel", CellSize(*CELL), tmux_sixel=True), circle(), "width: 8; height: 4; margin: 1 2;")
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        lines = app.query_one("#picture").render_lines(Region(0, 0, 8, 4))
        assert all(segment.control and segment.text == f"\x1b[{1 + row + 1};{2 + 8 + 1}H"
                   for row, line in enumerate(lines[:3]) for segment in line)  # no cells written, cursor to row's end
        (row, column, data, end_row, end_column), = sixel_rows(lines)
        assert (row, column, end_row, end_column) == (1, 2, 4, 10) and decode_sixel(data).size == (80, 80)
