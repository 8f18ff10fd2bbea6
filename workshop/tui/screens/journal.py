"""The journal: the numbered history with search, runs that were never accepted, and an experiment's detail view
(images, parameters, compute, lineage; the prompt hidden until revealed) with retitle, publish and unpublish — and,
from an experiment or a run, its settings loaded into the composer, or one of its images as the init image."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from journal import Experiment, InvalidInput
from journal.grid_record import per_image_names, varying
from journal.model import STATUSES

from journal.text import visible
from ..composition import from_experiment, from_run
from ..images import image_widget
from ..messages import JournalListed
from ..wording import say
from . import footer
from .modals import AskText


SHOWN_IMAGES = 4  # an experiment's images shown in its detail view


def literal(text: str) -> Text:
    return Text(visible(text))


def revealed(exp: Experiment) -> list[str]:
    """The private prompt, asked for: the experiment's, and each image's own where they differ (a grid's cells)."""
    lines = [f"prompt: {exp.prompt}", f"negative: {exp.negative_prompt}", f"keywords: {', '.join(exp.keywords)}"]
    if any(i.prompt and i.prompt != exp.prompt for i in exp.images):
        lines += [f"image {k} prompt: {i.prompt or exp.prompt}" for k, i in enumerate(exp.images, 1)]
    return lines


def _fit(cell: str | Text, width: int) -> Text:
    """A table cell cut to ``width`` with an ellipsis."""
    text = cell if isinstance(cell, Text) else Text(cell)
    text.truncate(width, overflow="ellipsis")
    return text


class JournalScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("enter", "open", "Open", show=False),
        Binding("l", "load_settings", "Load settings",
                tooltip="Fill the composer with the highlighted experiment's (or run's) prompt, keywords, axes and settings"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="journal-bar"):
            yield Input(placeholder="search titles and models (/)", compact=True, id="search")
            yield Select([(s, s) for s in STATUSES], prompt="any status", compact=True, id="status-filter")
        with Horizontal(id="journal-body"):
            yield DataTable(id="experiments", cursor_type="row")
            yield Vertical(id="thumbnail")
        yield Label("Runs not accepted yet (Enter opens one)")
        yield DataTable(id="runs", cursor_type="row")
        yield footer()

    SEARCH_PAUSE = 0.25  # seconds of quiet typing before the list is searched again

    def __init__(self):
        super().__init__()
        self.experiments: list[Experiment] = []
        self._search_timer = None

    def on_mount(self) -> None:
        self.query_one("#runs", DataTable).add_columns("run", "state", "images", "model")
        self.reload(runs=True)
        self.query_one("#experiments", DataTable).focus()

    def reload(self, runs: bool = False) -> None:
        """Search the journal (and list the runs not accepted yet) in a worker; ``on_journal_listed`` shows them."""
        status = self.query_one("#status-filter", Select).value
        self.list_journal(self.query_one("#search", Input).value.strip() or None, status if isinstance(status, str) else None, runs)

    @work(thread=True, exclusive=True, group="journal-list", exit_on_error=False)
    def list_journal(self, query: str | None, status: str | None, runs: bool) -> None:
        """Off the UI thread: the index search, and (``runs``) every run manifest. Widgets are not touched here."""
        from ...runner.runs import list_runs

        journal = self.app.journal
        found = journal.search(query, status=status, limit=500)
        pending = [r for r in list_runs(journal) if not r.accepted and r.record.cells] if runs else None
        self.post_message(JournalListed(found, pending))

    def on_journal_listed(self, message: JournalListed) -> None:
        self.experiments = message.experiments
        self.fill()
        if message.runs is not None:
            table = self.query_one("#runs", DataTable)
            table.clear()
            for run in message.runs:
                table.add_row(run.id, run.state, f"{len(run.done)}/{len(run.record.cells)}",
                              literal(run.record.model.id), key=run.id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(visible(say(event.worker.error)), severity="error", markup=False, timeout=10)

    def fill(self) -> None:
        """The experiments, in columns that fit the table's width: titles and model names are shortened (…), and
        the date is left out where the title would get too little room."""
        table = self.query_one("#experiments", DataTable)
        width = (table.size.width or self.app.size.width - 21) - 2  # less the scrollbar
        numbers = max([len(str(e.number)) for e in self.experiments] + [1])
        model = min(12, max([len("model")] + [len(visible(e.credit)) for e in self.experiments]))
        columns = {"#": numbers, "title": 0, "model": model, "date": 10, "status": max(map(len, STATUSES)), "images": 6}
        if width - sum(columns.values()) - 2 * len(columns) < 20:
            del columns["date"]
        columns["title"] = max(8, width - sum(columns.values()) - 2 * len(columns))
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        table.clear(columns=True)
        for name, size in columns.items():
            table.add_column(name, width=size, key=name)
        cells = {"#": lambda e: str(e.number), "title": lambda e: literal(e.title), "model": lambda e: literal(e.credit),
                 "date": lambda e: e.created[:10], "status": lambda e: e.status, "images": lambda e: str(len(e.images))}
        for exp in self.experiments:
            table.add_row(*(_fit(cells[name](exp), size) for name, size in columns.items()), key=str(exp.number))
        if key is not None and key in {str(e.number) for e in self.experiments}:
            table.move_cursor(row=table.get_row_index(key))

    def on_resize(self, event) -> None:
        self.fill()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Search again once typing pauses (not on every key)."""
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(self.SEARCH_PAUSE, self.reload)

    def on_select_changed(self, event: Select.Changed) -> None:
        self.reload()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted experiment's first image, as a thumbnail beside the list."""
        if event.data_table.id != "experiments" or event.row_key is None:
            return
        exp = self.app.journal.get(int(event.row_key.value))
        box = self.query_one("#thumbnail", Vertical)
        box.remove_children()
        box.mount(image_widget(self.app.graphics, self.app.journal.image_path(exp, exp.images[0]), classes="thumbnail-image"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#experiments", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "experiments":
            self.app.push_screen(DetailScreen(int(event.row_key.value)))
        else:
            from ...runner.runs import load_run
            from .grid import GridScreen

            self.app.push_screen(GridScreen(run=load_run(self.app.journal, event.row_key.value)))

    def on_screen_resume(self) -> None:
        self.reload(runs=True)

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_open(self) -> None:
        table = self.query_one("#experiments", DataTable)
        if table.row_count:
            self.app.push_screen(DetailScreen(int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)))

    async def action_load_settings(self) -> None:
        from ...runner.runs import load_run

        runs, experiments = self.query_one("#runs", DataTable), self.query_one("#experiments", DataTable)
        table = runs if self.focused is runs else experiments
        if not table.row_count:
            self.notify("nothing highlighted to load the settings of")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        try:
            composition = from_run(load_run(self.app.journal, key)) if table is runs else \
                from_experiment(self.app.journal.get(int(key)))
        except Exception as exc:  # noqa: BLE001 - a run folder gone since it was listed: said, not fatal
            self.notify(visible(say(exc)), severity="error", markup=False)
            return
        await load_into_composer(self.app, composition)

    def action_back(self) -> None:
        self.app.pop_screen()


async def load_into_composer(app, composition) -> None:
    """Fill the composer with ``composition`` (a run's or an experiment's settings) and show it."""
    composer = app.composer()
    if composer is not None:
        await composer.fill(composition)
        app.action_composer()


class DetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reveal", "Reveal", tooltip="Reveal the prompt (and hide it again)"),
        Binding("t", "retitle", "Retitle"),
        Binding("p", "publish", "Publish"),
        Binding("u", "unpublish", "Unpublish"),
        Binding("e", "rerun", "Rerun"),
        Binding("v", "vary", "Vary"),
        Binding("l", "load_settings", "Load", show=False,  # F1 lists it: the footer has no room at 80 columns
                tooltip="Fill the composer with this experiment's prompt, keywords, axes and settings"),
        Binding("i", "use_as_init", "Init", tooltip="Use the highlighted image as the init image (#N:K)"),
        Binding("left", "image(-1)", "◀ image", show=False),
        Binding("right", "image(1)", "image ▶", show=False),
    ]

    def __init__(self, number: int):
        super().__init__()
        self.number = number
        self.revealed = False
        self.published = False
        self.image = 0  # the highlighted image (i uses it), 0-based

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Unpublish only what is published."""
        return action != "unpublish" or self.published

    @property
    def experiment(self) -> Experiment:
        return self.app.journal.get(self.number)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(id="detail-title")
            yield Horizontal(id="detail-images")
            yield Static(id="detail-info")
            yield Static(id="detail-prompt")
        yield footer()

    def on_mount(self) -> None:
        exp = self.experiment
        images = self.query_one("#detail-images", Horizontal)
        for record in exp.images[:SHOWN_IMAGES]:  # the frame holds the cursor's border: a Picture has none of its own
            picture = image_widget(self.app.graphics, self.app.journal.image_path(exp, record), classes="detail-picture")
            images.mount(Container(picture, classes="detail-image"))
        self.show()
        self.action_image(0)

    def action_image(self, delta: int) -> None:
        """Highlight the neighbouring image (of those shown)."""
        shown = list(self.query_one("#detail-images", Horizontal).children)
        self.image = max(0, min(len(shown) - 1, self.image + delta))
        for k, widget in enumerate(shown):
            widget.set_class(k == self.image, "cursor")

    def show(self) -> None:
        exp = self.experiment
        self.published = exp.status == "published"
        self.refresh_bindings()
        self.query_one("#detail-title", Static).update(Text(f"#{exp.number} ", style="bold") + literal(exp.title))
        m = exp.model
        settings = exp.image_settings()
        apart = varying(settings)
        lines = [f"Generated with {exp.credit}" + "".join(f" · {x}" for x in (m.pipeline, m.scheduler, m.revision) if x),
                 f"status {exp.status}" + (f" since {exp.published[:10]}" if exp.published else "") + f" · created {exp.created[:10]}",
                 "parameters: " + " ".join(f"{k}={v}" for k, v in exp.params.items() if k not in apart)
                 + (f" (per image: {', '.join(per_image_names(apart))})" if apart else "")]
        if exp.compute:
            c = exp.compute
            lines.append("compute: " + " · ".join(x for x in (c.device, c.seconds is not None and f"{c.seconds:.1f} s",
                                                              c.energy_wh is not None and f"{c.energy_wh:.3f} Wh") if x))
        lineage = [f"variation of #{exp.parent}"] if exp.parent else []
        children = [e.number for e in self.app.journal.search(limit=None) if e.parent == exp.number]
        lineage += [f"varied as {', '.join(f'#{n}' for n in children)}"] if children else []
        if lineage:
            lines.append("lineage: " + "; ".join(lineage))
        if len(exp.images) > SHOWN_IMAGES:
            lines.append(f"pictures: the first {SHOWN_IMAGES} of {len(exp.images)} "
                         f"(`promptism show {exp.number} --image` draws them all)")
        lines += [f"image {k + 1}: seed {i.seed}" + (f" · {own.line(apart)}" if apart else "")
                  + (f" · score {i.score:.3f}" if i.score is not None else "") for k, (i, own) in enumerate(zip(exp.images, settings))]
        self.query_one("#detail-info", Static).update(literal("\n".join(lines)))
        prompt = self.query_one("#detail-prompt", Static)
        if self.revealed:
            prompt.update(literal("\n".join(revealed(exp))))
        else:
            prompt.update(Text("prompt hidden — press r to reveal it", style="dim italic"))

    def action_reveal(self) -> None:
        self.revealed = not self.revealed
        self.show()

    def action_retitle(self) -> None:
        def done(exp: Experiment | None) -> None:
            if exp is not None:
                self.show()

        self.app.push_screen(AskText("New title:", value=self.experiment.title,
                                     submit=partial(self.app.journal.retitle, self.number)), done)

    def action_publish(self) -> None:
        def done(folder: Path | None) -> None:
            if folder is not None:
                self.notify(f"gallery written to {visible(str(folder))}", markup=False)
                self.show()

        self.app.push_screen(AskText("Publish to gallery folder:", value=str(Path.home() / "promptism-gallery"),
                                     submit=self._publish), done)

    def _publish(self, folder: str) -> Path:
        """In the dialog's worker: write the gallery (it re-encodes every published image) and commit."""
        if not folder.strip():
            raise InvalidInput("give the folder to write the gallery to")
        out = Path(folder).expanduser()
        self.app.journal.publish([self.number], out)
        return out

    def action_unpublish(self) -> None:
        self.run_worker(partial(self.app.journal.unpublish, [self.number]), thread=True, exit_on_error=False, group="write")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "write":
            return
        if event.state == WorkerState.SUCCESS:
            self.show()
        elif event.state == WorkerState.ERROR:
            self.notify(visible(say(event.worker.error)), severity="error", markup=False)

    def action_rerun(self) -> None:
        self.app.rerun(self.number)

    async def action_vary(self) -> None:
        """Back to the composer with this experiment's settings and the next seed."""
        exp = self.experiment
        seeds = [i.seed for i in exp.images if i.seed is not None]
        await load_into_composer(self.app, replace(from_experiment(exp), seeds=str(max(seeds) + 1) if seeds else "0"))

    async def action_load_settings(self) -> None:
        await load_into_composer(self.app, from_experiment(self.experiment))

    def action_use_as_init(self) -> None:
        """The highlighted image becomes the composer's init image: #N:K, image K of this experiment."""
        composer = self.app.composer()
        if composer is not None:
            composer.query_one("#init", Input).value = f"#{self.number}:{self.image + 1}"
            self.app.action_composer()

    def action_back(self) -> None:
        self.app.pop_screen()
