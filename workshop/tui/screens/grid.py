"""The grid screen: the cells tiled as images with their contact-sheet labels, live progress and previews while the
run works, then scores, keyword effects and a weight sweep's curve, picking, zoom, comparing two cells side by side,
accept, discard and vary."""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid as GridLayout, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import MountError, Widget
from textual.widgets import Header, ProgressBar, Static

from journal import Experiment, InvalidInput, JournalError
from journal.images import open_frames

from ...runner import events as ev
from ...runner.records import CellRecord
from journal.text import visible
from ..composition import keyword_weight
from ..images import image_widget
from ..messages import RunDone, RunEvent, RunFailed
from . import footer
from .modals import AskText, Confirm

PREVIEW_INTERVAL = 1.0  # seconds between preview redraws (drawing images is the UI's costliest work)


def label_text(labels: dict) -> Text:
    """A cell's header: keywords black when active, dim and struck through when not; axis values as they are."""
    text = Text()
    for axis in ("x", "y", "z"):
        for label in labels.get(axis, ()):
            active = label.active if hasattr(label, "active") else label.get("active", True)
            value = label.text if hasattr(label, "text") else label["text"]
            if text:
                text.append(" ")
            text.append(visible(value), style="" if active else "dim strike")
    return text


def zoom_caption(cell: CellRecord, made: bool) -> Text:
    """The zoomed cell: number, seed, score and keywords (the user's own words, shown in their own workshop)."""
    text = Text(f"cell #{cell.index} · seed {cell.seed}", style="bold")
    if cell.score is not None:
        text.append(f" · score {cell.score:.3f}", style="bold")
    if not made:
        text.append(" · no image yet")
    text.append("   arrows: neighbouring cells · Esc closes", style="dim")
    keywords = cell.keywords
    text.append("\nkeywords: " + (", ".join(visible(k) for k in keywords) if keywords else "none"))
    return text


SETTINGS = ("seed", "model", "sampler", "steps", "guidance", "width", "height", "strength")  # a cell's own, compared


def differences(a: CellRecord, b: CellRecord) -> list[str]:
    """What sets two cells apart: keywords only one has, keyword weights, the negative prompt, settings."""
    said = []
    for cell, other in ((a, b), (b, a)):
        if only := [k for k in cell.keywords if k not in other.keywords]:
            said.append(f"only #{cell.index}: " + ", ".join(visible(k) for k in only))
    for k in (k for k in a.keywords if k in b.keywords):
        if (wa := keyword_weight(a.prompt, k)) != (wb := keyword_weight(b.prompt, k)):
            said.append(f"weight of {visible(k)}: {wa:g} vs {wb:g}")
    ja, jb = a.dump(), b.dump()
    said += [f"{name} {ja.get(name, '—')} vs {jb.get(name, '—')}" for name in SETTINGS if ja.get(name) != jb.get(name)]
    if a.negative != b.negative:
        said.append("negative prompts differ")
    if not said and a.prompt != b.prompt:
        said.append("the prompts differ (see the labels)")
    return said or ["nothing: the same prompt and settings"]


class CompareScreen(Screen[None]):
    """Two cells side by side, as large as the terminal allows, with what sets them apart; Esc goes back."""

    BINDINGS = [Binding("escape,q,c", "dismiss", "Close")]

    def __init__(self, cells: list[tuple[CellRecord, object]]):
        """``cells``: two cells, each with its image (a path or a preview; None where none is made yet)."""
        super().__init__()
        self.cells = cells

    def compose(self) -> ComposeResult:
        a, b = (cell for cell, _ in self.cells)
        with Vertical(id="compare"):
            with Horizontal(id="compare-panes"):
                for cell, source in self.cells:
                    with Vertical(classes="compare-pane"):
                        caption = Text(f"#{cell.index} · seed {cell.seed}", style="bold")
                        if cell.score is not None:
                            caption.append(f" · score {cell.score:.3f}", style="bold")
                        caption.append("\n").append_text(label_text(cell.labels))
                        yield Static(caption, classes="compare-caption")
                        yield image_widget(self.app.graphics, source, classes="compare-image")
            yield Static(Text.assemble(("differs: ", "bold"), " · ".join(differences(a, b)), ("   Esc closes", "dim")),
                         id="compare-differences")


def weight_plot(curves: dict) -> Widget:
    """A weight sweep's dose-response curves: each keyword's measured effect (CLIP similarity to the keyword, gained
    over its lowest weight) at each weight of the axis."""
    from textual_plotext import PlotextPlot

    plot = PlotextPlot(id="weight-plot")
    plt = plot.plt
    weights = sorted({p.weight for points in curves.values() for p in points})
    for keyword, points in curves.items():
        plt.plot([p.weight for p in points], [p.effect for p in points], label=visible(keyword), marker="braille")
    plt.xticks(weights, [f"{w:g}" for w in weights])
    plt.title("keyword effect by weight (CLIP similarity gained over the lowest weight)")
    plt.xlabel("weight")
    return plot


def verdict(identical: bool) -> str:
    """A rerun's outcome, in words."""
    return "pixel-identical to the journal" if identical else "DIFFERENT from the journal"


class CellTile(Vertical):
    """One cell: its labels, its image (a preview while running), its score; marked when picked."""

    def __init__(self, index: int, labels: dict):
        super().__init__(classes="tile")
        self.index = index
        self.labels = labels
        self.picked = False
        self.source = None

    def compose(self) -> ComposeResult:
        yield Static(label_text(self.labels), classes="tile-label")
        yield image_widget(self.app.graphics, None, classes="tile-image")
        yield Static(f"#{self.index}", classes="tile-score", markup=False)

    def show(self, source) -> None:
        """Show a PIL preview or the finished PNG: updated in place once an image widget is there."""
        self.source = source
        if not self.is_mounted:  # a run's late event for a screen that is closing (or not drawn yet)
            return
        old = self.query(".tile-image").first()
        if hasattr(old, "image") and not isinstance(source, Path):
            old.image = source
            return
        new = image_widget(self.app.graphics, source, classes="tile-image")
        try:
            self.mount(new, before=old)
        except MountError:  # the screen is being taken down as the event comes (the workshop quits): nothing to show
            return
        old.remove()

    def set_score(self, score: float | None) -> None:
        mark = "✓ " if self.picked else ""
        self.query_one(".tile-score", Static).update(f"{mark}#{self.index}" + (f"  {score:.3f}" if score is not None else ""))


class ZoomScreen(Screen[None]):
    """The grid's current cell, as large as the terminal allows (a full screen: nothing is redrawn beneath it), with
    its number, seed, score and keywords; the arrows move to the neighbouring cells. A CLIP-guided image with an
    animation plays it frame by frame, looping; p pauses, and , / . step while paused."""

    BINDINGS = [Binding("escape,enter,z,q", "dismiss", "Close"), Binding("p", "play", "Play / pause"),
                Binding("comma", "step(-1)", "◀ frame"), Binding("full_stop", "step(1)", "frame ▶"),
                Binding("left,h", "move(0,-1)", "←", show=False), Binding("right,l", "move(0,1)", "→", show=False),
                Binding("up,k", "move(-1,0)", "↑", show=False), Binding("down,j", "move(1,0)", "↓", show=False)]
    FRAME_SECONDS = 0.25  # drawing is the UI's costliest work: a calm 4 frames a second

    def __init__(self, grid: "GridScreen"):
        super().__init__()
        self.grid = grid
        self.timer = None
        self.playing = False
        self._load()

    def _load(self) -> None:
        """Take the grid's current cell."""
        tile = self.grid.current()
        cell = self.grid.cell(tile.index)
        self.source = tile.source
        self.caption = zoom_caption(cell, tile.source is not None)
        animation = self.grid.run.folder / cell.animation if self.grid.run is not None and cell.animation else None
        self.frames = _frames(animation) if animation else []
        self.frame = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="zoom"):
            yield Static(self.caption, id="zoom-caption")
            yield image_widget(self.app.graphics, self.frames[0] if self.frames else self.source, id="zoom-image")
            yield Static(id="zoom-frame", markup=False)

    def on_mount(self) -> None:
        self._start_frames()

    def _start_frames(self) -> None:
        if len(self.frames) > 1:
            self.timer = self.set_interval(self.FRAME_SECONDS, lambda: self.action_step(1, playing=True))
            self.playing = True
            self._show()

    async def action_move(self, drow: int, dcol: int) -> None:
        """The neighbouring cell (the grid's cursor moves with it)."""
        if not self.grid.action_move(drow, dcol):
            return
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        self.playing = False
        self._load()
        await self.recompose()
        self._start_frames()

    def action_play(self) -> None:
        if self.timer is not None:
            self.playing = not self.playing
            self.timer.resume() if self.playing else self.timer.pause()

    def action_step(self, delta: int, playing: bool = False) -> None:
        if not self.frames:
            return
        if not playing and self.playing:
            self.action_play()
        self.frame = (self.frame + delta) % len(self.frames)
        self._show()

    def _show(self) -> None:
        widget = self.query_one("#zoom-image")
        if hasattr(widget, "image"):
            widget.image = self.frames[self.frame]
        self.query_one("#zoom-frame", Static).update(f"frame {self.frame + 1}/{len(self.frames)} of the optimisation · "
                                                     "p play/pause · , . step")


def _frames(animation: Path) -> list:
    """The animation's frames; none (the still image is shown) when the file is gone or unreadable."""
    try:
        return open_frames(animation)
    except InvalidInput:
        return []


class GridScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel_or_back", "Back", tooltip="Cancel the run while it works; back when it is done"),
        Binding("left,h", "move(0,-1)", "←", show=False),
        Binding("right,l", "move(0,1)", "→", show=False),
        Binding("up,k", "move(-1,0)", "↑", show=False),
        Binding("down,j", "move(1,0)", "↓", show=False),
        Binding("space", "pick", "Pick"),
        Binding("enter,z", "zoom", "Zoom"),
        Binding("a", "accept", "Accept"),
        Binding("d", "discard", "Discard"),
        Binding("v", "vary", "New seeds"),
        Binding("i", "use_as_init", "Init", tooltip="Use the cell's image as the init image"),
        Binding("c", "compare", "Compare", show=False,  # F1 lists it: the footer has no room at 80 columns
                tooltip="Mark the cell to compare; the second one marked shows both side by side with what differs"),
        Binding("u", "resume", "Resume", show=False,
                tooltip="Finish an interrupted or cancelled run: its missing cells, as if it had never stopped"),
    ]

    def __init__(self, grid=None, run=None, rerun_of: Experiment | None = None):
        """A grid about to run (``grid``), a run on disk (``run``), or the rerun of an experiment (``rerun_of``:
        its picked cells, until the rerun's own run is done)."""
        super().__init__()
        self.grid = grid
        self.run = run
        self.rerun_of = rerun_of
        self.running = run is None
        self.cursor = 0
        self.compared: list[int] = []  # the cells marked to compare (c), by index
        self._last_preview = 0.0
        if grid is not None:
            self.cells = [CellRecord(**c.to_json()) for c in grid.cells]
            self.shape = (grid.rows, grid.cols, grid.subgrids)
        elif rerun_of is not None:
            cells = rerun_of.grid.picked_cells() if rerun_of.grid is not None else []
            cols = max(1, math.ceil(math.sqrt(len(cells))))
            self.cells = [c.model_copy(update={"row": k // cols, "col": k % cols, "subgrid": 0}) for k, c in enumerate(cells)]
            self.shape = (math.ceil(len(cells) / cols), cols, 1)
        else:
            self._take_cells(run)

    def _take_cells(self, run) -> None:
        self.cells = run.record.cells
        g = run.record.grid
        self.shape = (g.rows, g.cols, g.subgrids)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-status", markup=False)
        yield ProgressBar(id="progress", show_eta=False)  # the status line has the run's own ETA: one, not two
        with VerticalScroll(id="tiles-scroll", can_focus=False):  # the arrows move the cursor; it scrolls to it
            yield self._tile_grid()
        yield Static(id="effects", markup=False)
        yield footer()

    def _tile_grid(self) -> GridLayout:
        grid = GridLayout(*(CellTile(cell.index, cell.labels)
                            for cell in sorted(self.cells, key=lambda c: (c.subgrid, c.row, c.col))), id="tiles")
        grid.styles.grid_size_columns = self.shape[1]
        return grid

    def on_mount(self) -> None:
        if self.run is not None:
            self.show_run(self.run)
        elif self.rerun_of is not None:
            self.query_one("#run-status", Static).update(
                f"rerunning #{self.rerun_of.number} with its recorded model, seeds and settings · Esc cancels")
        else:
            self.query_one("#run-status", Static).update("starting…")
        self.highlight()

    def _rerunning(self) -> str:
        """What the status line starts with while a rerun runs: it says so until its verdict."""
        return f"rerunning #{self.rerun_of.number} · " if self.rerun_of is not None else ""

    @property
    def tiles(self) -> list[CellTile]:
        return sorted(self.query(CellTile), key=lambda t: self._position(t.index))

    def _position(self, index: int) -> tuple:
        cell = self.cell(index)
        return (cell.subgrid, cell.row, cell.col)

    # ---------------------------------------------------------------- messages from the run worker

    def on_run_event(self, message: RunEvent) -> None:
        event = message.event
        status = self.query_one("#run-status", Static)
        bar = self.query_one("#progress", ProgressBar)
        if isinstance(event, ev.RunStarted):
            status.update(f"{self._rerunning()}run {event.run} · {event.cells} images · {event.model} on {event.device} · Esc cancels")
        elif isinstance(event, ev.Step):
            bar.update(total=event.total, progress=event.done)
            eta = f" · ETA {event.eta_s:.0f} s" if event.eta_s else ""
            status.update(f"{self._rerunning()}batch {event.batch + 1}: step {event.step}/{event.steps} · "
                          f"{event.it_per_s:.1f} it/s{eta} · Esc cancels")
        elif isinstance(event, ev.Preview) and time.monotonic() - self._last_preview > PREVIEW_INTERVAL:
            self._last_preview = time.monotonic()  # previews arrive faster than they are worth drawing: thin them
            for index, image in zip(event.cells, event.images):
                if (tile := self._tile(index)) is not None:  # a rerun shows only the picked cells of its batches
                    tile.show(image)
        elif isinstance(event, ev.BatchSplit):
            self.notify(f"out of GPU memory: batches of {event.new_size} from now on", severity="warning")
        elif isinstance(event, ev.Note):
            self.notify(event.text, severity="warning", timeout=10)
        elif isinstance(event, ev.PromptPastLimit):
            self.notify(f"{len(event.cells)} of the prompts are longer than the model reads (up to {event.tokens} of "
                        f"{event.limit} tokens): it sees only their start", severity="warning", timeout=10)

    async def on_run_done(self, message: RunDone) -> None:
        self.running = False
        self.run = message.run
        if self.rerun_of is not None:  # the rerun's own run: its cells (the picked ones and their batch mates)
            self._take_cells(message.run)
            self.cursor = 0
            await self.query_one("#tiles").remove()
            await self.query_one("#tiles-scroll").mount(self._tile_grid())
            self.highlight()
        if message.verified is not None:
            said = f"rerun of #{self.rerun_of.number}: {verdict(message.verified)}"
            self.show_run(message.run, said)
            self.notify(said, severity="information" if message.verified else "warning", timeout=10)
        else:
            self.show_run(message.run)
            self.notify(f"{message.run.state}: {len(message.run.done)} images — a accepts, space picks, c on two "
                        "compares them, d discards")

    def on_run_failed(self, message: RunFailed) -> None:
        """The run's end in one line — and the run it left, if any: its images shown, for `u` to finish."""
        self.running = False
        if message.run is not None and (run := self._read_run(message.run)) is not None:
            self.run = run
            self.show_run(run, f"failed: {message.error}")
        else:
            self.query_one("#run-status", Static).update(f"failed: {message.error}")
        self.notify(message.error, severity="error", timeout=10, markup=False)

    def on_screen_resume(self) -> None:
        """Back on this grid: its run as it is now (it may have been resumed from elsewhere meanwhile)."""
        if self.run is not None and not self.running and (run := self._read_run(self.run.id)) is not None:
            if (run.state, len(run.done)) != (self.run.state, len(self.run.done)):
                self.run = run
                self.show_run(run)

    def _read_run(self, run_id: str):
        """The run as its folder holds it now (None if it is gone, or unreadable)."""
        from ...errors import RunError
        from ...runner.runs import load_run

        try:
            return load_run(self.app.journal, run_id)
        except (RunError, JournalError, OSError, ValueError):  # (a record that does not parse is a ValueError)
            return None

    def show_run(self, run, said: str = "") -> None:
        """The run's images, scores and keyword effects; its state (after ``said``) in the status line."""
        r = run.record
        self.cells = r.cells
        self.query_one("#run-status", Static).update(
            (f"{said} · " if said else "")
            + f"run {run.id} · {run.state} · {len(run.done)}/{len(self.cells)} images by {r.model.id} ({r.model.description})")
        self.query_one("#progress", ProgressBar).update(total=len(self.cells), progress=len(run.done))
        for cell in r.cells:
            if (tile := self._tile(cell.index)) is None:
                continue
            if cell.file:
                tile.show(run.image(cell))
            tile.set_score(cell.score)
        effects = r.effects or {}
        self.query_one("#effects", Static).update(
            ("keyword effects (CLIP, with − without): " + ", ".join(f"{visible(k)} {e.effect:+.3f}" for k, e in effects.items()))
            if effects else "")
        if r.weight_curves and not self.query("#weight-plot"):
            self.mount(weight_plot(r.weight_curves), after=self.query_one("#effects"))

    def _tile(self, index: int) -> CellTile | None:
        return next((t for t in self.query(CellTile) if t.index == index), None)

    # ---------------------------------------------------------------- navigation and actions

    def highlight(self) -> None:
        for k, tile in enumerate(self.tiles):
            tile.set_class(k == self.cursor, "cursor")

    def action_move(self, drow: int, dcol: int) -> bool:
        """Move the cursor to a neighbouring cell; False at the grid's edge."""
        cols = self.shape[1]
        target = self.cursor + drow * cols + dcol
        if not (0 <= target < len(self.tiles) and (dcol == 0 or target // cols == self.cursor // cols)):
            return False
        self.cursor = target
        self.highlight()
        self.tiles[self.cursor].scroll_visible()
        return True

    def current(self) -> CellTile:
        return self.tiles[self.cursor]

    def cell(self, index: int) -> CellRecord:
        return next(c for c in self.cells if c.index == index)

    def action_pick(self) -> None:
        tile = self.current()
        tile.picked = not tile.picked
        tile.set_class(tile.picked, "picked")
        tile.set_score(self.cell(tile.index).score)

    def action_compare(self) -> None:
        """Mark the current cell (again: unmark it); once two are marked, show them side by side."""
        tile = self.current()
        if tile.index in self.compared:
            self.compared.remove(tile.index)
        else:
            self.compared.append(tile.index)
        if len(self.compared) < 2:
            for t in self.tiles:
                t.set_class(t.index in self.compared, "compared")
            if self.compared:
                self.notify(f"#{self.compared[0]} marked: c on another cell compares the two", timeout=4)
            return
        pair, self.compared = self.compared, []
        for t in self.tiles:
            t.remove_class("compared")
        self.app.push_screen(CompareScreen([(self.cell(i), self._tile(i).source) for i in pair]))

    def action_zoom(self) -> None:
        if self.current().source is not None:
            self.app.push_screen(ZoomScreen(self))

    def action_cancel_or_back(self) -> None:
        if self.running:
            self.app.cancel_run()
            self.query_one("#run-status", Static).update("cancelling after the current step…")
        else:
            self.app.pop_screen()

    def _finished_run(self):
        if self.running or self.run is None:
            self.notify("wait for the run to finish (or Esc to cancel it)")
            return None
        return self.run

    def action_accept(self) -> None:
        if (run := self._finished_run()) is None:
            return
        if not run.done:
            self.notify(f"run {run.id} has no finished images to accept", severity="warning")
            return
        picked = [t.index for t in self.tiles if t.picked] or None

        def ask_title(yes: bool | None = True) -> None:
            if yes:
                self.app.push_screen(AskText("Title for the new experiment (any Unicode; it is published):",
                                             submit=partial(self._accept, run, picked, bool(done))), accepted)

        def accepted(exp) -> None:
            if exp is not None:
                self.notify(f"#{exp.number} {visible(exp.title)} — in the journal (F3)", markup=False, timeout=8)

        if done := list(run.accepted):
            self.app.push_screen(Confirm(f"Run {run.id} was already accepted as {', '.join(f'#{n}' for n in done)}. "
                                         "Accept it again, as another experiment?", "accept again"), ask_title)
        else:
            ask_title()

    def _accept(self, run, picked: list[int] | None, again: bool, title: str):
        """In the title dialog's worker, off the UI thread: re-encode the images and commit (touches no widget)."""
        from ...runner.runs import accept_run

        return accept_run(self.app.journal, run, title, picked, again=again)

    def action_discard(self) -> None:
        """Delete the run's folder, after asking: images not accepted are gone for good."""
        if (run := self._finished_run()) is None:
            return
        from ...runner.runs import discard_run

        def discard(yes: bool | None) -> None:
            if yes:
                discard_run(run)
                self.notify(f"discarded run {run.id}")
                self.app.pop_screen()

        accepted = run.accepted
        kept = f"accepted as {', '.join(f'#{n}' for n in accepted)}; the journal keeps those" if accepted else "none accepted"
        self.app.push_screen(Confirm(f"Discard run {run.id}? Its {len(run.done)} images are deleted ({kept}).",
                                     "discard the run"), discard)

    def resuming(self) -> None:
        """The run on this screen is being finished (its missing cells): progress comes as for a new run."""
        self.running = True
        self.query_one("#run-status", Static).update(f"resuming run {self.run.id} · Esc cancels")

    def action_resume(self) -> None:
        if (run := self._finished_run()) is None:
            return
        if len(run.done) == len(self.cells) or run.state not in ("interrupted", "cancelled"):
            self.notify(f"run {run.id} is {run.state} with every image made: nothing to resume", markup=False)
            return
        self.app.resume(run, self)

    def action_vary(self) -> None:
        """Back to the composer with the next seeds (as many as this grid used)."""
        composer = self.app.composer()
        if composer is None:
            return
        seeds = sorted({c.seed for c in self.cells})
        start = max(seeds) + 1
        composer.query_one("#seeds").value = f"{start}-{start + len(seeds) - 1}" if len(seeds) > 1 else str(start)
        self.app.pop_screen()

    def action_use_as_init(self) -> None:
        composer = self.app.composer()
        tile = self.current()
        if composer is None or not isinstance(tile.source, Path):
            self.notify("that cell has no finished image yet")
            return
        composer.query_one("#init").value = str(tile.source)
        self.app.pop_screen()
