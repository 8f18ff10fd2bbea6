"""The Textual workshop driven by Pilot on the tiny model: the whole loop, responsiveness, hostile titles, snapshots."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from textual import events
from textual.widgets import DataTable, Input, Label, Select, Static
from textual.widgets._footer import FooterKey

from journal import Journal
from tests.helpers import EXE, new_experiment, service_pid
from workshop.contract import GivenOptions, KeywordTable, Spec
from workshop.tui.app import create_app
from workshop.tui.screens.composer import ComposerScreen
from workshop.tui.screens.grid import GridScreen, ZoomScreen
from workshop.tui.screens.journal import DetailScreen, JournalScreen
from workshop.tui.screens.modals import AskText, Confirm

HOSTILE = ["[bold red]x[/]", "[link=http://e.vil]click[/link]", "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 [b]vision[/b] 🔅"]


async def wait_for(pilot, condition, timeout: float = 300.0) -> None:
    """Poll for ``condition`` (an event, never a measure of speed): the deadline only ends a test that would hang."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.05)


async def compose_and_run(pilot, app, prompt: str, keywords: list[str], seeds: str = "1-2") -> GridScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
    await pilot.click("#prompt")
    await pilot.press(*prompt)
    seeds_input = app.screen.query_one("#seeds", Input)
    seeds_input.value = seeds
    await pilot.press("ctrl+n")
    for keyword in keywords:
        await pilot.press(*keyword, "enter")
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
    screen = app.screen
    await wait_for(pilot, lambda: screen.run is not None and not screen.running)
    return screen


async def start_slow_grid(pilot, app, seeds: str = "1-16") -> None:
    """Fill the composer with a grid slow enough on the CPU (40 steps a cell) to act on while it runs (ctrl+r starts it)."""
    await wait_for(pilot, lambda: "ready" in app.model_status)
    app.screen.query_one("#prompt", Input).value = "a slow grid"
    app.screen.query_one("#steps", Input).value = "40"
    app.screen.query_one("#seeds", Input).value = seeds
    app.screen.query_one("#mode").value = "plain"


async def run_slow_grid_on_the_service(pilot, app, seeds: str) -> GridScreen:
    """From a starting workshop: a slow grid (``start_slow_grid``) run through the service (the module's warm one);
    its grid screen, once shown."""
    await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
    await start_slow_grid(pilot, app, seeds=seeds)
    assert "service" in app.model_status
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
    return app.screen


async def test_full_loop_compose_ablate_accept_browse_reveal(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        grid = await compose_and_run(pilot, app, "a red circle on a blue background", ["glowing", "pixel art"])
        assert grid.run.state == "finished" and len(grid.run.done) == 6  # 3 variants × 2 seeds
        await pilot.press("right", "space", "a")  # pick cell 1, accept
        await wait_for(pilot, lambda: app.screen.query("#answer"))
        await pilot.press(*"𝔊𝔩𝔬𝔴 𝔰𝔱𝔲𝔡𝔶", "enter")
        await wait_for(pilot, lambda: len(app.journal) == 1)
        exp = app.journal.get(1)
        assert exp.title == "𝔊𝔩𝔬𝔴 𝔰𝔱𝔲𝔡𝔶" and len(exp.images) == 1 and exp.images[0].prompt.endswith("pixel art")
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        table = app.screen.query_one("#experiments", DataTable)
        assert table.row_count == 1 and table.get_row_at(0)[1].plain == "𝔊𝔩𝔬𝔴 𝔰𝔱𝔲𝔡𝔶"
        await pilot.press("slash", *"nothing like it")
        await wait_for(pilot, lambda: table.row_count == 0)
        search = app.screen.query_one("#search", Input)
        search.value = "GLOW"  # case and letter style are ignored
        await wait_for(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        prompt = app.screen.query_one("#detail-prompt", Static)
        assert "hidden" in str(prompt.render()) and "red circle" not in str(prompt.render())
        await pilot.press("r")
        assert "prompt: a red circle on a blue background, glowing, pixel art" in str(app.screen.query_one("#detail-prompt", Static).render())


async def test_ui_stays_responsive_while_a_grid_runs(tmp_path):
    """Generation never blocks the UI thread: a timer keeps ticking while the grid's steps come in, and F1 is handled
    while the grid is still running. Counted in events, not timed (tests/bench/tui_responsiveness.py measures the
    tick rate and F1's latency)."""
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    seen: list[int] = []  # at each tick of a UI timer during the run: the steps done so far

    def tick() -> None:
        screen = app.screen
        if isinstance(screen, GridScreen) and screen.running:
            seen.append(screen.query_one("#progress").progress)

    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        await start_slow_grid(pilot, app)
        app.set_interval(0.05, tick)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        # the timer ticked between steps, again and again: the UI thread ran while the generation went on
        await wait_for(pilot, lambda: len({p for p in seen if p > 0}) >= 4 or not grid.running)
        assert grid.running and len({p for p in seen if p > 0}) >= 4, seen
        # F1 straight from the "terminal" (Pilot.press would also wait for the progress bar's animations to end),
        # three times: each time the help screen is up while the grid still runs
        for _ in range(3):
            app._driver.send_message(events.Key("f1", None))
            await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen" or not grid.running)
            assert type(app.screen).__name__ == "HelpScreen" and grid.running, "F1 waited for the run to end"
            app._driver.send_message(events.Key("escape", None))
            await wait_for(pilot, lambda: app.screen is grid)
        assert grid.running
        await pilot.press("escape")  # cancel; finished batches stay
        await wait_for(pilot, lambda: not grid.running)
        assert grid.run.state == "cancelled"


async def test_hostile_titles_are_shown_literally(tmp_path):
    journal = Journal.init(tmp_path / "journal")
    for title in HOSTILE:
        journal.accept(new_experiment(tmp_path, title, prompt="p"))
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(120, 32)) as pilot:  # wide enough for whole titles
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        table = app.screen.query_one("#experiments", DataTable)
        await wait_for(pilot, lambda: table.row_count == len(HOSTILE))
        shown = [table.get_row_at(r)[1] for r in range(table.row_count)]
        assert [t.plain for t in shown] == list(reversed(HOSTILE)) and all(not t.spans for t in shown)
        svg = app.export_screenshot()
        assert "[bold&#160;red]x[/]" in svg or "[bold red]x[/]" in svg
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert HOSTILE[2] in app.screen.query_one("#detail-title", Static).render().plain


def _fixed(monkeypatch):
    import journal.journal as jj
    import workshop.runner.runs as runs

    monkeypatch.setattr(jj, "_now", lambda: "2026-11-25T12:00:00Z")
    monkeypatch.setattr(runs, "new_run_id", lambda: "20261125-120000-test")


@pytest.fixture
def snapshot_journal(tmp_path, monkeypatch):
    _fixed(monkeypatch)
    journal = Journal.init(tmp_path / "journal")
    journal.accept(new_experiment(tmp_path, "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 𝔳𝔦𝔰𝔦𝔬𝔫 🔅", prompt="secret words"))
    journal.accept(new_experiment(tmp_path, "Basquiat Ouroboros", n_images=2, prompt="more secret words"))
    return tmp_path / "journal"


def test_snapshot_composer(snap_compare, snapshot_journal):
    async def fill(pilot):
        await wait_for(pilot, lambda: "ready" in pilot.app.model_status)
        screen = pilot.app.screen
        screen.query_one("#prompt", Input).value = "a red circle on a blue background"
        for keyword in ["glowing", "pixel art", "striped"]:
            screen.add_keyword(keyword)
        await pilot.pause()
        screen.query_one("#keywords").focus()  # not a text input: its blinking cursor would make the snapshot flaky
        await pilot.pause()

    assert snap_compare(create_app(snapshot_journal, "tiny", "halfcell"), terminal_size=(80, 24), run_before=fill)


def test_snapshot_journal(snap_compare, snapshot_journal):
    async def open_journal(pilot):
        await wait_for(pilot, lambda: "ready" in pilot.app.model_status)
        await pilot.press("f3")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#experiments", DataTable).row_count == 2)
        await pilot.pause()

    assert snap_compare(create_app(snapshot_journal, "tiny", "halfcell"), terminal_size=(80, 24), run_before=open_journal)


def test_snapshot_grid(snap_compare, snapshot_journal):
    async def run_grid(pilot):
        await compose_and_run(pilot, pilot.app, "a red circle", ["glowing"], seeds="1")
        pilot.app.clear_notifications()  # toasts time out: keep them out of the picture
        await pilot.pause()

    assert snap_compare(create_app(snapshot_journal, "tiny", "halfcell"), terminal_size=(100, 32), run_before=run_grid)


def test_snapshot_help(snap_compare, snapshot_journal):
    async def open_help(pilot):
        await wait_for(pilot, lambda: "ready" in pilot.app.model_status)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(create_app(snapshot_journal, "tiny", "halfcell"), terminal_size=(80, 24), run_before=open_help)


def test_first_screen_appears_before_torch_is_imported(tmp_path):
    """The composer is up before torch or diffusers load (they load in a worker, off the start path)."""
    import subprocess
    import sys

    code = f"""
import asyncio, sys
from pathlib import Path
from workshop.tui.app import PromptismApp, create_app
from workshop.tui.screens.composer import ComposerScreen
PromptismApp.preload_model = lambda self: None  # only the start path is measured here
async def main():
    app = create_app(Path({str(tmp_path / 'journal')!r}), "tiny", "halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ComposerScreen)
        print(sorted(m for m in ("torch", "diffusers", "transformers", "open_clip") if m in sys.modules))
asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


async def test_journal_filter_and_thumbnail(tmp_path):
    journal = Journal.init(tmp_path / "journal")
    for title in ("first", "second"):
        journal.accept(new_experiment(tmp_path, title))
    journal.publish([1], tmp_path / "site")
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        table = app.screen.query_one("#experiments", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        app.screen.query_one("#status-filter").value = "published"
        await wait_for(pilot, lambda: table.row_count == 1)
        assert table.get_row_at(0)[1].plain == "first"
        await wait_for(pilot, lambda: app.screen.query(".thumbnail-image"))


def errors_shown(app) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


async def test_a_failed_run_is_reported_once_and_leaves_the_model_ready(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: "ready" in app.model_status)
        composer = app.screen
        composer.query_one("#prompt", Input).value = "a red circle"
        composer.query_one("#mode").value = "plain"
        composer.query_one("#init", Input).value = str(tmp_path / "no-such-image.png")  # fails when the run starts
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await wait_for(pilot, lambda: not grid.running)
        await pilot.pause(0.2)
        assert len(errors_shown(app)) == 1, errors_shown(app)
        assert "no-such-image.png" in errors_shown(app)[0] and errors_shown(app)[0].startswith("init image: ")
        assert "failed" in str(grid.query_one("#run-status", Static).render())
        assert "ready" in app.model_status
        assert "ready" in str(composer.query_one("#model-status", Static).render())


@pytest.mark.parametrize("size", [(100, 32), (60, 24)])  # the question wraps inside the dialog, narrow terminals too
async def test_discard_asks_before_deleting_a_run(tmp_path, size):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=size) as pilot:
        grid = await compose_and_run(pilot, app, "a red circle", ["glowing"], seeds="1")
        folder = grid.run.folder
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert "none accepted" in str(app.screen.query(Label).first().render())
        shown = app.export_screenshot().replace("&#160;", " ")
        assert all(word in shown for word in app.screen.question.split())  # the whole question, wrapped, not cut off
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is grid)
        assert folder.is_dir()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        assert not folder.exists()


async def test_quitting_during_a_run_asks_first(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await start_slow_grid(pilot, app)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is grid)
        assert app.is_running and grid.running and not app.cancel_requested
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running)
        assert app.cancel_requested


async def test_composer_summary_follows_removed_keywords_and_names_keys_not_flags(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        screen = app.screen
        preview = screen.query_one("#preview", Static)
        screen.query_one("#prompt", Input).value = "a red circle"
        screen.query_one("#seeds", Input).value = "1-2"
        screen.add_keyword("glowing")
        screen.add_keyword("pixel art")
        await wait_for(pilot, lambda: "3 variants × 2 seeds" in str(preview.render()))
        screen.query_one("#z-values", Input).focus()  # the last field on the left
        await pilot.press("tab")  # into the keyword list: its first keyword is highlighted, ready for x
        keywords = screen.query_one("#keywords")
        assert app.focused is keywords and keywords.index == 0
        await pilot.press("x")
        await wait_for(pilot, lambda: "2 variants × 2 seeds = 4 cells" in str(preview.render()))
        await pilot.press("x")
        await wait_for(pilot, lambda: "needs keywords" in str(preview.render()))
        shown = str(preview.render())
        assert "needs keywords" in shown and "ctrl+n" in shown and "--" not in shown and "variants" not in shown
        screen.query_one("#mode").value = "plain"
        screen.query_one("#seeds", Input).value = "1-100"
        await wait_for(pilot, lambda: "over the cap" in str(preview.render()))
        shown = str(preview.render())  # a flag the workshop has no field for is marked as the command line's
        assert "over the cap" in shown and "--max-cells (on the command line)" in shown
        screen.query_one("#prompt", Input).value = ""
        await pilot.press("ctrl+r")
        assert errors_shown(app)[-1] == "the prompt is empty: write what to draw, or add a keyword"  # no flag named


async def test_a_run_cancelled_before_any_image_shows_no_progress_and_cannot_be_accepted(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await start_slow_grid(pilot, app, "1-8")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await wait_for(pilot, lambda: grid.query_one("#progress").progress > 0)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not grid.running)
        assert grid.run.state == "cancelled" and grid.run.done == []
        assert grid.query_one("#progress").percentage == 0
        await pilot.press("a")
        await pilot.pause(0.2)
        assert app.screen is grid  # refused at once: no title asked for
        assert any("no finished images" in n.message for n in app._notifications)


async def test_zoom_shows_the_cell_and_the_arrows_move_to_its_neighbours(tmp_path):
    app = create_app(tmp_path / "journal", "shapes", "halfcell")  # shapes is scored (by shapes-clip)
    async with app.run_test(size=(100, 32)) as pilot:
        grid = await compose_and_run(pilot, app, "a red circle", ["glowing"], seeds="1-2")  # 2 variants × 2 seeds
        assert grid.shape[:2] == (2, 2)
        await pilot.press("z")
        await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen))

        def caption() -> str:
            return app.screen.query_one("#zoom-caption", Static).render().plain

        cell = grid.cell(grid.current().index)
        assert f"cell #{cell.index} · seed {cell.seed} · score {cell.score:.3f}" in caption()
        assert "keywords: glowing" in caption()
        await pilot.press("right")
        assert grid.cursor == 1 and f"cell #{grid.current().index} " in caption() and "keywords: none" in caption()
        await pilot.press("down")
        assert grid.cursor == 3 and f"cell #{grid.current().index} " in caption()
        await pilot.press("right")  # the edge: nothing moves
        assert grid.cursor == 3
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is grid)
        assert "cursor" in grid.current().classes


def assert_footer_fits(app) -> None:
    keys = list(app.screen.query(FooterKey))
    assert keys, "no footer"
    width = app.size.width
    assert all(0 < k.region.width and k.region.right <= width for k in keys), \
        [(k.description, k.region) for k in keys if k.region.right > width]


async def test_every_screen_fits_80_by_24(tmp_path):
    journal = Journal.init(tmp_path / "journal")
    journal.accept(new_experiment(tmp_path, "A much longer title for a study of green squares at dusk, in oils", prompt="p"))
    journal.accept(new_experiment(tmp_path, "Circle study", prompt="q"))
    journal.publish([2], tmp_path / "site")
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        assert_footer_fits(app)
        assert {"Quit", "Journal", "Help", "Run grid"} <= {k.description for k in app.screen.query(FooterKey)}
        heading = app.screen.query_one("#right .heading", Label)
        assert heading.region.width >= len("Keywords")
        await pilot.press("f1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.press("escape")
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        table = app.screen.query_one("#experiments", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert_footer_fits(app)
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width
        labels = [c.label.plain for c in table.columns.values()]
        rows = [dict(zip(labels, table.get_row_at(r))) for r in range(2)]
        assert [r["status"].plain for r in rows] == ["published", "unreleased"]
        assert rows[0]["title"].plain == "Circle study" and rows[1]["title"].plain.endswith("…")
        table.focus()
        await pilot.press("enter")  # #2, published: unpublish is offered
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        assert_footer_fits(app)
        assert "Unpublish" in {k.description for k in app.screen.query(FooterKey)}
        await pilot.press("escape", "down", "enter")  # #1, unreleased: nothing to unpublish
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.number == 1)
        await pilot.pause()
        assert "Unpublish" not in {k.description for k in app.screen.query(FooterKey)}
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        grid = await compose_and_run(pilot, app, "a red circle", ["glowing", "pixel art"])
        await pilot.pause()
        assert_footer_fits(app)
        status = grid.query_one("#run-status", Static)
        assert status.region.height >= 2 and status.render().plain.endswith(")")  # the model's description, whole


async def test_the_journal_list_is_read_off_the_ui_thread_once_typing_pauses(tmp_path, monkeypatch):
    import threading

    import workshop.runner.runs as runs

    journal = Journal.init(tmp_path / "journal")
    for title in ("first", "second"):
        journal.accept(new_experiment(tmp_path, title))
    searches, listings = [], []
    real_search, real_list_runs = Journal.search, runs.list_runs

    def search(self, *args, **kw):
        searches.append(threading.current_thread())
        return real_search(self, *args, **kw)

    def list_runs(journal):
        listings.append(threading.current_thread())
        return real_list_runs(journal)

    monkeypatch.setattr(Journal, "search", search)
    monkeypatch.setattr(runs, "list_runs", list_runs)
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        table = app.screen.query_one("#experiments", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        before = (len(searches), len(listings))
        search_input = app.screen.query_one("#search", Input)
        for end in range(1, 7):  # "second" typed quickly: six changes, one search once typing pauses
            search_input.value = "second"[:end]
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.pause(0.5)
        assert len(searches) - before[0] == 1 and len(listings) == before[1]  # the run manifests are not re-read
        ui_thread = threading.current_thread()  # the test runs on the app's event loop
        assert searches and listings and ui_thread not in searches + listings


def grid_experiment(journal_dir, title: str = "Two cells") -> Journal:
    """A journal whose #1 was accepted from a leave-one-out grid: two images with different prompts."""
    from workshop.compose.grid import build_grid
    from workshop.compose.spec import spec_from
    from workshop.runner.runs import accept_run
    from workshop.runner.execution import RunOptions, execute

    journal = Journal.init(journal_dir)
    grid = build_grid(spec_from({"prompt": "a red circle", "keywords": ["glowing"], "mode": "leave-one-out", "seeds": "1"}))
    accept_run(journal, execute(grid, RunOptions(model="tiny"), journal), title)
    return journal


async def open_experiment(pilot, app, number: int = 1) -> DetailScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
    await pilot.press("f3")
    await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
    table = app.screen.query_one("#experiments", DataTable)
    await wait_for(pilot, lambda: table.row_count > 0)
    table.move_cursor(row=table.get_row_index(str(number)))
    table.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
    return app.screen


async def test_accept_works_off_the_ui_thread_and_a_revealing_title_is_refused_in_the_dialog(tmp_path, monkeypatch):
    import threading

    accepts = []
    real_accept = Journal.accept

    def accept(self, *args, **kw):
        accepts.append(threading.current_thread())
        return real_accept(self, *args, **kw)

    monkeypatch.setattr(Journal, "accept", accept)
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    said, notify = [], app.notify
    app.notify = lambda message, *args, **kw: said.append(str(message)) or notify(message, *args, **kw)  # (toasts expire)
    async with app.run_test(size=(100, 32)) as pilot:
        grid = await compose_and_run(pilot, app, "a red circle", ["glowing"], seeds="1")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText))
        dialog = app.screen
        await pilot.press(*"Glowing study", "enter")  # a keyword
        error = dialog.query_one("#ask-error", Static)
        await wait_for(pilot, lambda: error.render().plain)
        assert app.screen is dialog and len(app.journal) == 0
        assert "contains its private prompt" in error.render().plain and "--" not in error.render().plain
        dialog.query_one("#answer", Input).value = ""
        await pilot.press(*"Study one", "enter")
        await wait_for(pilot, lambda: app.screen is grid)
        assert len(app.journal) == 1 and app.journal.get(1).title == "Study one"
        assert accepts and threading.current_thread() not in accepts  # both tries ran in the dialog's worker
        await wait_for(pilot, lambda: any(message.startswith("#1 Study one") for message in said))


async def test_accepting_a_run_again_asks_first(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        grid = await compose_and_run(pilot, app, "a red circle", ["glowing"], seeds="1")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText))
        await pilot.press(*"Study one", "enter")
        await wait_for(pilot, lambda: app.screen is grid and len(app.journal) == 1)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert "already accepted as #1" in app.screen.query(Label).first().render().plain
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is grid)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText))
        await pilot.press(*"Study two", "enter")
        await wait_for(pilot, lambda: app.screen is grid and len(app.journal) == 2)


async def test_a_revealing_retitle_is_refused_in_the_dialog(tmp_path):
    journal = Journal.init(tmp_path / "journal")
    journal.accept(new_experiment(tmp_path, "Harbour", prompt="zanzibar quux at night"))
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        detail = await open_experiment(pilot, app)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText))
        dialog = app.screen
        dialog.query_one("#answer", Input).value = "Zanzibar quux at night"
        await pilot.press("enter")
        error = dialog.query_one("#ask-error", Static)
        await wait_for(pilot, lambda: error.render().plain)
        assert app.screen is dialog and "contains its private prompt" in error.render().plain
        assert app.journal.get(1).title == "Harbour"
        dialog.query_one("#answer", Input).value = "Harbour at night"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is detail)
        assert app.journal.get(1).title == "Harbour at night"
        await wait_for(pilot, lambda: "Harbour at night" in detail.query_one("#detail-title", Static).render().plain)


async def test_reveal_shows_each_images_own_prompt(tmp_path):
    grid_experiment(tmp_path / "journal")
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 40)) as pilot:
        detail = await open_experiment(pilot, app)
        await pilot.press("r")
        shown = detail.query_one("#detail-prompt", Static).render().plain
        assert "image 1 prompt: a red circle, glowing" in shown
        assert "image 2 prompt: a red circle\n" in shown + "\n"


async def test_rerun_shows_its_progress_on_a_grid_and_its_verdict(tmp_path):
    grid_experiment(tmp_path / "journal")
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: "ready" in app.model_status)
        await open_experiment(pilot, app)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        assert grid.rerun_of.number == 1 and len(grid.tiles) == 2  # the experiment's two images
        assert "rerunning #1" in grid.query_one("#run-status", Static).render().plain or not grid.running
        await wait_for(pilot, lambda: "step" in grid.query_one("#run-status", Static).render().plain or not grid.running)
        assert "rerunning #1" in grid.query_one("#run-status", Static).render().plain or not grid.running  # all along
        await wait_for(pilot, lambda: not grid.running)
        await pilot.pause()
        status = grid.query_one("#run-status", Static).render().plain
        assert status.startswith("rerun of #1: pixel-identical to the journal"), status
        assert grid.run.record.rerun_of == 1 and grid.query_one("#progress").percentage == 1
        assert all(tile.source is not None for tile in grid.tiles)
        assert errors_shown(app) == []


async def test_a_failed_rerun_is_reported_once_on_its_grid(tmp_path):
    journal = Journal.init(tmp_path / "journal")
    journal.accept(new_experiment(tmp_path, "Imported", prompt="p"))  # not made by the runner: cannot be rerun
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: "ready" in app.model_status)
        await open_experiment(pilot, app)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await wait_for(pilot, lambda: not grid.running)
        await pilot.pause(0.2)
        assert "failed: #1 was not made by promptism's runner" in grid.query_one("#run-status", Static).render().plain
        assert len(errors_shown(app)) == 1 and "ready" in app.model_status


async def test_a_number_field_that_is_not_a_number_is_named(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        app.screen.query_one("#prompt", Input).value = "a red circle"
        app.screen.query_one("#mode").value = "plain"
        app.screen.query_one("#steps", Input).value = "many"
        await pilot.press("ctrl+r")
        assert errors_shown(app) == ["steps 'many' is not a whole number; leave it blank for the model's default"]
        assert isinstance(app.screen, ComposerScreen)


async def test_strength_without_an_init_image_and_too_many_steps_are_refused_in_our_words(tmp_path):
    """The composer refuses a strength with no init image at once; steps over the scheduler's limit fail the run
    before its folder exists, with promptism's line (not diffusers' message)."""
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: "ready" in app.model_status)
        composer = app.screen
        composer.query_one("#prompt", Input).value = "a red circle"
        composer.query_one("#mode").value = "plain"
        composer.query_one("#strength", Input).value = "0.5"
        await pilot.press("ctrl+r")
        assert errors_shown(app) == ["strength goes with init image: give an init image, or leave out the strength"]
        assert isinstance(app.screen, ComposerScreen)
        app.clear_notifications()
        composer.query_one("#strength", Input).value = ""
        composer.query_one("#steps", Input).value = "1001"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await wait_for(pilot, lambda: not grid.running)
        await pilot.pause(0.2)
        assert errors_shown(app) == ["steps must be at most 1000 for tiny (its scheduler has 1000 timesteps), not 1001"]
        runs = tmp_path / "journal" / ".promptism" / "runs"
        assert not runs.exists() or not any(runs.iterdir())  # refused before the run's folder was made


async def test_the_composer_restores_a_jobs_composition(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        await composer.restore(Spec(prompt="a red circle", negative="blurry", mode="add-one", seeds=[3, 4, 7],
                                    keywords=["glowing", KeywordTable(text="pixel art", on=False)], axes={"x": "steps=2,4"}),
                               GivenOptions(model="shapes", steps=6, guidance=2.5, size=(48, 40)))
        await pilot.pause()
        assert composer.values() == {"prompt": "a red circle", "negative": "blurry", "mode": "add-one", "seeds": "3,4,7",
                                     "keywords": [{"text": "glowing", "on": True}, {"text": "pixel art", "on": False}],
                                     "axes": {"x": "steps=2,4"}}
        field = lambda i: composer.query_one(f"#{i}", Input).value  # noqa: E731
        assert (field("steps"), field("guidance"), field("size"), field("init")) == ("6", "2.5", "48x40", "")
        assert composer.query_one("#model").value == "shapes"
        assert (composer.query_one("#x-type").value, field("x-values")) == ("steps", "2,4")  # the axis editor shows it
        await composer.restore(Spec(prompt="p", axes={"y": "nosuchkind=1,2"}, per_cell_seeds=True), GivenOptions())
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert any("nosuchkind" in m for m in said) and any("per_cell_seeds" in m for m in said)  # not silently dropped


async def test_a_restarted_workshop_reattaches_to_the_services_job_and_restores_its_composition(warm_service, tmp_path):
    """A grid that outlived its workshop (a lost SSH session): the next workshop shows its progress and composition,
    and it ends finished in the service, not in the workshop."""
    from workshop.service.api import JobRequest
    from workshop.service.client import connect

    jdir = tmp_path / "journal"
    Journal.init(jdir)
    spec = {"prompt": "a slow grid", "keywords": ["glowing"], "mode": "leave-one-out", "seeds": "1-3"}
    job = connect(autostart=True).submit(JobRequest(kind="grid", journal=str(jdir), spec=spec,
                                                    options={"model": "tiny", "steps": 12, "max_batch": 1}))
    app = create_app(jdir, "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        assert app.composer().values() == {"prompt": "a slow grid", "negative": "", "mode": "leave-one-out",
                                           "seeds": "1-3", "keywords": [{"text": "glowing", "on": True}]}
        assert app.composer().query_one("#steps", Input).value == "12"
        await wait_for(pilot, lambda: grid.run is not None and not grid.running)
        assert grid.run.state == "finished" and len(grid.run.done) == 6
        assert grid.run.id == connect(autostart=False).job(job.id).run


async def test_esc_cancels_the_services_job_and_u_finishes_it_to_the_same_bytes(service, tmp_path):
    from workshop.runner.runs import list_runs

    config = Path(os.environ["PROMPTISM_CONFIG"])  # a fresh service, started with this setting (the batch size is
    config.write_text(config.read_text() + "max_batch = 1\n")  # the service's): a cancel keeps some images, not all
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        grid = await run_slow_grid_on_the_service(pilot, app, seeds="1-4")
        service.append(service_pid())
        status = grid.query_one("#run-status", Static)
        await wait_for(pilot, lambda: "batch 2" in str(status.render()))
        await pilot.press("escape")
        await wait_for(pilot, lambda: grid.run is not None and not grid.running)
        assert grid.run.state == "cancelled" and 0 < len(grid.run.done) < 4
        await pilot.press("u")
        await wait_for(pilot, lambda: grid.running)
        await wait_for(pilot, lambda: not grid.running)
        assert grid.run.state == "finished" and len(grid.run.done) == 4
        resumed = [grid.run.image(c).read_bytes() for c in grid.run.done]
    made = subprocess.run([EXE, "generate", "a slow grid", "--seeds", "1-4", "--steps", "40", "--model", "tiny",
                           "--local", "--journal", str(tmp_path / "other")], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    fresh = list_runs(Journal.open(tmp_path / "other"))[0]
    assert [fresh.image(c).read_bytes() for c in fresh.done] == resumed  # as if it had never been stopped


async def test_a_service_killed_under_a_grid_is_said_with_how_to_finish_its_run(service, tmp_path):
    """kill -9 of the service mid-grid: the grid said only that the service was lost, its ETA counted on, and the
    composer named the dead process. Now the grid names its run and `u`, and the composer says the next run starts
    a service again."""
    import signal

    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        grid = await run_slow_grid_on_the_service(pilot, app, seeds="1-6")
        status = grid.query_one("#run-status", Static)
        await wait_for(pilot, lambda: "step" in str(status.render()))
        pid = service_pid()
        service.append(pid)
        os.kill(pid, signal.SIGKILL)
        await wait_for(pilot, lambda: not grid.running)
        shown = str(status.render())
        assert "the service stopped during run " in shown and "u on its grid" in shown and "promptism resume" in shown
        await wait_for(pilot, lambda: "next run starts it again" in app.model_status)  # (its message, under load, may
        assert "pid" not in app.model_status  # come after the grid's end)
        assert grid.query_one("#progress").show_eta is False  # the status line's ETA is the one shown
        assert grid.run is not None and grid.run.state == "interrupted"  # its run, read from its folder: u finishes it
        await pilot.press("u")
        await wait_for(pilot, lambda: grid.running)
        await wait_for(pilot, lambda: not grid.running)
        assert grid.run.state == "finished" and len(grid.run.done) == 6
        service.append(service_pid())  # (the service `u` started)


async def test_quitting_leaves_the_services_job_running_and_says_so(warm_service, tmp_path):
    from workshop.service.client import connect

    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        status = (await run_slow_grid_on_the_service(pilot, app, seeds="1-6")).query_one("#run-status", Static)
        await wait_for(pilot, lambda: "step" in str(status.render()))
        job = app.job
        await pilot.press("ctrl+q")  # no question: nothing is lost
    assert app.left_running is not None and app.left_running.id == job.id
    client = connect(autostart=False)
    assert client.job(job.id).state == "running"  # the workshop ended without waiting for the job
    client.cancel(job.id)


async def test_a_long_prompt_is_counted_off_the_ui_thread_once_typing_pauses_and_flagged_past_the_limit(tmp_path,
                                                                                                       monkeypatch):
    """A 2,000-word paste typed key by key froze the workshop for 25 minutes: every key rebuilt the grid and counted
    its tokens on the UI thread. Now a burst of keys is one rebuild, counted in a worker; and a prompt past the
    model's window is flagged (it was `2002/77` in plain colour)."""
    import threading

    import workshop.compose.grid as grid_module
    import workshop.tui.screens.composer as composer_module

    built, counted_in = [], set()
    real_build, real_bpe = composer_module.build_grid, grid_module.clip_bpe
    monkeypatch.setattr(composer_module, "build_grid", lambda spec: built.append(spec.prompt.render()) or real_build(spec))

    def bpe():
        counted_in.add(threading.current_thread() is threading.main_thread())
        return real_bpe()

    monkeypatch.setattr(grid_module, "clip_bpe", bpe)
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        preview = composer.query_one("#preview", Static)
        composer.query_one("#mode").value = "plain"
        prompt = composer.query_one("#prompt", Input)
        prompt.value = " ".join(["a red circle on a blue background"] * 280)  # 2,000 words
        prompt.focus()
        await wait_for(pilot, lambda: "tokens: up to" in preview.render().plain)
        built.clear()
        await pilot.press(*(" glowing stripes" * 4))  # 64 keys, as a paste without brackets sends them
        await wait_for(pilot, lambda: built and built[-1].endswith("stripes glowing stripes")
                       and "tokens: up to" in preview.render().plain)  # the last keys' grid, counted
        assert len(built) <= 16, len(built)  # a rebuild per pause in the keys, not per key (64 before)
        assert counted_in == {False}  # never on the UI thread
        shown = preview.render()  # tiny reads a long prompt as A1111 does: all its 75-token windows (issue 26)
        assert "up to 1970 in 27 windows of 75 — every one read" in shown.plain and "past the limit" not in shown.plain, shown.plain
        assert not any("red" in str(span.style) for span in shown.spans)
        composer.query_one("#model", Select).value = "shapes"  # a model that reads one window: the rest is lost
        await wait_for(pilot, lambda: "past the limit" in preview.render().plain)
        shown = preview.render()
        assert "/77" in shown.plain and any("red" in str(span.style) for span in shown.spans)


async def test_the_axis_editor_builds_axes_live_in_range_syntax_and_says_errors_in_one_line(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        preview = composer.query_one("#preview", Static)
        composer.query_one("#prompt", Input).value = "a red circle"
        composer.query_one("#mode").value = "plain"
        composer.query_one("#seeds", Input).value = "1-2"
        composer.query_one("#x-type").value = "steps"
        await pilot.click("#x-values")
        await pilot.press(*"2-6 (+2)")
        await wait_for(pilot, lambda: "3 steps × 2 seeds = 6 cells" in preview.render().plain)  # as it is typed
        composer.query_one("#y-type").value = "guidance"
        composer.query_one("#y-values", Input).value = "3,x"
        await wait_for(pilot, lambda: "guidance" in preview.render().plain)
        shown = preview.render().plain
        assert "guidance" in shown and "x" in shown and "\n" not in shown and "cells" not in shown  # one line
        composer.query_one("#y-values", Input).value = "3,7.5"
        await wait_for(pilot, lambda: "= 12 cells" in preview.render().plain)
        assert composer.values()["axes"] == {"x": "steps=2-6 (+2)", "y": "guidance=3,7.5"}
        composer.query_one("#y-type").clear()
        composer.query_one("#x-type").clear()
        composer.query_one("#mode").value = "sr"  # no flag to type: the x axis becomes a Prompt S/R axis, focused
        await pilot.pause()
        assert composer.query_one("#x-type").value == "sr" and app.focused is composer.query_one("#x-values")
        assert "--" not in preview.render().plain
        await pilot.press(*"red,blue,green")
        await wait_for(pilot, lambda: "3 replacements × 2 seeds = 6 cells" in preview.render().plain)


async def test_an_axis_type_changed_leaves_no_values_of_the_old_type_but_a_restored_axis_keeps_its_own(tmp_path):
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        values = composer.query_one("#x-values", Input)
        composer.query_one("#x-type").value = "steps"
        await pilot.pause()
        await pilot.click("#x-values")
        await pilot.press(*"2-6")
        composer.query_one("#x-type").value = "sampler"  # a steps range is no list of samplers
        await wait_for(pilot, lambda: values.value == "")
        await pilot.press(*"Euler a")
        await pilot.pause()
        assert values.value == "Euler a"
        await composer.restore(Spec(prompt="p", axes={"x": "guidance=3,7"}), GivenOptions())  # type and values at once
        await pilot.pause()
        await pilot.pause()
        assert (composer.query_one("#x-type").value, values.value) == ("guidance", "3,7")


async def test_plus_and_minus_weigh_the_focused_keyword_and_the_grid_carries_the_weight(tmp_path):
    from workshop.compose.grid import build_grid
    from workshop.compose.spec import spec_from

    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        composer.query_one("#prompt", Input).value = "a red circle"
        composer.add_keyword("glowing")
        composer.add_keyword("pixel art:0.5")  # typed with a weight, as -k takes it
        await pilot.pause()
        assert composer.values()["keywords"][1] == {"text": "pixel art", "on": True, "weight": 0.5}
        composer.query_one("#keywords").focus()
        await pilot.press("plus", "plus", "plus", "minus")
        assert composer.values()["keywords"] == [{"text": "glowing", "on": True, "weight": 1.2},
                                                 {"text": "pixel art", "on": True, "weight": 0.5}]
        assert "×1.2" in composer.query_one("#keywords").query(Label).first().render().plain
        assert build_grid(spec_from(composer.values())).cells[0].prompt == "a red circle, (glowing:1.2), (pixel art:0.5)"
        await pilot.press("down", *["minus"] * 6)  # not below 0
        assert composer.values()["keywords"][1]["weight"] == 0


async def test_the_composition_is_kept_per_journal_privately_and_comes_back_on_start(tmp_path):
    from dataclasses import replace

    jdir = tmp_path / "journal"
    app = create_app(jdir, "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        composer.query_one("#prompt", Input).value = "a private prompt"
        composer.query_one("#negative", Input).value = "blurry"
        composer.add_keyword("glowing")
        composer.add_keyword("pixel art")
        await pilot.pause()
        composer.query_one("#keywords").focus()
        await pilot.press("plus", "down", "space")
        composer.query_one("#mode").value = "add-one"
        composer.query_one("#seeds", Input).value = "3-5"
        composer.query_one("#y-type").value = "steps"
        composer.query_one("#y-values", Input).value = "2,4"
        composer.query_one("#guidance", Input).value = "2.5"
        composer.query_one("#sampler").value = "Euler a"
        await pilot.pause()
        saved = composer.composition()
        await pilot.press("ctrl+q")
    path = jdir / ".promptism" / "composer.json"
    assert path.stat().st_mode & 0o777 == 0o600
    ignored = subprocess.run(["git", "-C", str(jdir), "check-ignore", "-q", str(path)])
    assert ignored.returncode == 0  # never committed
    app = create_app(jdir, "shapes", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen)
                       and app.screen.query_one("#prompt", Input).value)
        await pilot.pause()
        composer = app.screen
        assert composer.composition() == replace(saved, model="shapes")  # on the model the workshop starts with
        assert saved.keywords[0].weight == 1.1 and not saved.keywords[1].on and saved.axes == {"y": "steps=2,4"}
        assert saved.sampler == "Euler a" and saved.prompt == "a private prompt"
    path.write_text('{"prompt": 3, "keywords": "', encoding="utf-8")  # damaged
    app = create_app(jdir, "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        await pilot.pause()
        assert app.screen.query_one("#prompt", Input).value == ""
        assert any("could not be read" in n.message and n.severity == "warning" for n in app._notifications)


async def test_l_loads_an_experiments_and_a_runs_settings_into_the_composer(tmp_path):
    from workshop.compose.grid import build_grid
    from workshop.compose.spec import spec_from
    from workshop.runner.execution import RunOptions, execute

    journal = grid_experiment(tmp_path / "journal")  # "a red circle" + glowing, leave-one-out, seed 1
    spec = {"prompt": "a blue square", "keywords": [{"text": "striped", "weight": 1.3}, "dotted"], "mode": "add-one",
            "seeds": "4-6", "axes": {"y": "steps=2,3"}}
    execute(build_grid(spec_from(spec)), RunOptions(model="tiny", guidance=2.0), journal)  # a run not accepted
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        table = app.screen.query_one("#experiments", DataTable)
        runs = app.screen.query_one("#runs", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1 and runs.row_count == 1)
        await pilot.press("l")
        await wait_for(pilot, lambda: app.screen is composer)
        assert composer.values() == {"prompt": "a red circle", "negative": "", "mode": "leave-one-out", "seeds": "1",
                                     "keywords": [{"text": "glowing", "on": True}]}
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        runs = app.screen.query_one("#runs", DataTable)
        await wait_for(pilot, lambda: runs.row_count == 1)
        runs.focus()
        await pilot.press("l")
        await wait_for(pilot, lambda: app.screen is composer)
        assert composer.values() == {**spec, "negative": "", "seeds": "4-6",
                                     "keywords": [{"text": "striped", "on": True, "weight": 1.3},
                                                  {"text": "dotted", "on": True}]}
        assert composer.query_one("#guidance", Input).value == "2" and composer.query_one("#model").value == "tiny"


async def test_i_on_an_experiments_highlighted_image_makes_it_the_init_image(tmp_path):
    journal = Journal.init(tmp_path / "journal")
    journal.accept(new_experiment(tmp_path, "Two images", n_images=2, prompt="p"))
    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        detail = await open_experiment(pilot, app)
        await pilot.press("right", "right")  # the second image is the last: it stays highlighted
        assert detail.image == 1
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
        assert app.screen.query_one("#init", Input).value == "#1:2"


async def test_c_on_two_cells_compares_them_side_by_side_with_what_differs(tmp_path):
    from workshop.tui.screens.grid import CompareScreen

    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        grid = await compose_and_run(pilot, app, "a red circle", ["glowing"], seeds="1-2")  # 2 variants × 2 seeds
        await pilot.press("c")
        assert "compared" in grid.current().classes
        await pilot.press("down", "right", "c")  # cell 3: no keyword, seed 2
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        differs = app.screen.query_one("#compare-differences", Static).render().plain
        assert "only #0: glowing" in differs and "seed 1 vs 2" in differs
        assert len(app.screen.query(".compare-image")) == 2
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is grid)
        assert not any("compared" in t.classes for t in grid.tiles)


BASQUIAT = "in the style of Basquiat"
DONE_WHEN_AXES = {"x": f"weight:{BASQUIAT}=0,0.5,1,1.5", "y": "sampler=Euler a,DPM++ 2M Karras"}


async def compose_weight_sweep(pilot, app, weights: str = "0,0.5,1,1.5", sampler_axis: bool = True) -> ComposerScreen:
    """Issue 16's grid, built in the composer as a person would: the prompt and keyword typed, mode plain, a weight
    axis on the keyword across, a sampler axis down, seeds 1-2 (2 steps a cell: quick on the CPU)."""
    await wait_for(pilot, lambda: isinstance(app.screen, ComposerScreen))
    composer = app.screen
    await pilot.click("#prompt")
    await pilot.press(*"portrait of a gnome", "ctrl+n", *BASQUIAT, "enter")
    composer.query_one("#mode").value = "plain"
    composer.query_one("#x-type").value = "weight"
    await pilot.pause()
    assert composer.query_one("#x-keyword").display  # a weight axis asks which keyword
    composer.query_one("#x-keyword").value = BASQUIAT
    composer.query_one("#x-values", Input).value = weights
    if sampler_axis:
        composer.query_one("#y-type").value = "sampler"
        composer.query_one("#y-values", Input).value = "Euler a,DPM++ 2M Karras"
    composer.query_one("#seeds", Input).value = "1-2"
    composer.query_one("#steps", Input).value = "2"
    await pilot.pause()
    return composer


async def test_issue_16s_grid_is_built_and_run_in_the_composer_and_its_cells_compared(tmp_path):
    from workshop.compose.grid import build_grid
    from workshop.compose.spec import spec_from
    from workshop.tui.screens.grid import CompareScreen

    app = create_app(tmp_path / "journal", "tiny", "halfcell")
    async with app.run_test(size=(100, 32)) as pilot:
        composer = await compose_weight_sweep(pilot, app)
        await wait_for(pilot, lambda: "= 16 cells" in composer.query_one("#preview", Static).render().plain)
        assert composer.values()["axes"] == DONE_WHEN_AXES
        cli = build_grid(spec_from({"prompt": "portrait of a gnome", "keywords": [BASQUIAT], "axes": DONE_WHEN_AXES,
                                    "seeds": "1-2"}))  # what `promptism grid -p … -k … --x … --y … --seeds 1-2` builds
        tui = build_grid(spec_from(composer.values()))
        assert [(c.prompt, c.seed, c.params) for c in tui.cells] == [(c.prompt, c.seed, c.params) for c in cli.cells]
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await wait_for(pilot, lambda: grid.run is not None and not grid.running)
        assert grid.run.state == "finished" and len(grid.run.done) == 16
        assert [c.sampler for c in grid.run.record.cells[:8:4]] == ["Euler a", "DPM++ 2M Karras"]
        await pilot.press("c", "down", "right", "right", "right", "c")  # weight 0 with Euler a; 1.5 with DPM++ 2M Karras
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        differs = app.screen.query_one("#compare-differences", Static).render().plain
        assert f"weight of {BASQUIAT}: 0 vs 1.5" in differs and "sampler Euler a vs DPM++ 2M Karras" in differs
        assert "seed" not in differs


async def test_a_scored_weight_sweep_shows_its_curve_in_the_grid(tmp_path):
    app = create_app(tmp_path / "journal", "shapes", "halfcell")  # shapes is scored (by shapes-clip)
    async with app.run_test(size=(100, 40)) as pilot:
        await compose_weight_sweep(pilot, app, weights="0,1", sampler_axis=False)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await wait_for(pilot, lambda: grid.run is not None and not grid.running)
        curves = grid.run.record.weight_curves
        assert [p.weight for p in curves[BASQUIAT]] == [0, 1]
        await wait_for(pilot, lambda: grid.query("#weight-plot"))
        assert "weight" in app.export_screenshot()


def test_snapshot_composer_with_the_axis_editor(snap_compare, snapshot_journal):
    async def fill(pilot):
        await wait_for(pilot, lambda: "ready" in pilot.app.model_status)
        composer = await compose_weight_sweep(pilot, pilot.app)
        composer.query_one("#keywords").focus()  # not a text input: its blinking cursor would make the snapshot flaky
        await pilot.pause()
        await pilot.press("plus", "plus")
        await wait_for(pilot, lambda: composer.composition().keywords[0].weight == 1.2)
        await pilot.pause()

    assert snap_compare(create_app(snapshot_journal, "tiny", "halfcell"), terminal_size=(100, 32), run_before=fill)


def test_snapshot_compare(snap_compare, snapshot_journal):
    async def compare(pilot):
        await compose_and_run(pilot, pilot.app, "a red circle", ["glowing"], seeds="1-2")
        await pilot.press("c", "down", "right", "c")
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(create_app(snapshot_journal, "tiny", "halfcell"), terminal_size=(100, 32), run_before=compare)


def test_the_workshop_without_a_terminal_says_so_and_exits():
    """`promptism tui </dev/null | cat` drew into the pipe and waited for keys forever."""
    import subprocess

    from tests.helpers import EXE

    done = subprocess.run([EXE, "tui"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "the workshop needs a terminal" in done.stderr
