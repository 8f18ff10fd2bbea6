"""The Textual app and its factory (``create_app``), shared by the ``promptism`` command and the tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.messages import TerminalSupportsSynchronizedOutput
from textual.worker import get_current_worker

from journal import Journal, JournalError

from ..paths import journal_dir as default_journal_dir
from ..settings import Settings, load_settings
from .messages import ModelFailed, ModelReady, RunDone, RunEvent, RunFailed
from .wording import say

if TYPE_CHECKING:
    from .images import Display


QUIT = "quit and cancel the run"


class PromptismApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "promptism"
    # Work on every screen; the composer shows quit and journal in its footer (other footers have no room at 80 columns)
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "composer", "Composer", show=False),
        Binding("f3", "journal", "Journal", show=False),
    ]

    def __init__(self, journal_dir: Path, model: str, graphics: Display, settings: Settings):
        super().__init__()
        self.journal_dir = journal_dir
        self.model = model
        self.graphics = graphics
        self.settings = settings
        self.journal: Journal | None = None
        self.model_status = f"{model}: loading…"
        self.cancel_requested = False

    def on_mount(self) -> None:
        from .screens.composer import ComposerScreen

        try:
            self.journal = Journal.open(self.journal_dir, create=True)
        except JournalError as exc:
            self.notify(f"journal unavailable: {say(exc)}", severity="error", timeout=10, markup=False)
        self.push_screen(ComposerScreen())
        if self.graphics.notice:
            self.notify(self.graphics.notice, severity="warning", timeout=20, markup=False)
        self.preload_model()

    def on_terminal_supports_synchronized_output(self, message: TerminalSupportsSynchronizedOutput) -> None:
        """No synchronized updates when images go through tmux: tmux writes such an update's text after the images
        drawn in it, erasing them (tmux 3.4+)."""
        if self.graphics.through_tmux:
            message.prevent_default()  # Textual's own handler, which turns them on, is not called

    # ---------------------------------------------------------------- background work

    @work(thread=True, exclusive=True, group="model")
    def preload_model(self) -> None:
        """Import torch/diffusers and load the model off the UI thread; the composer shows the status."""
        try:
            from ..runner.devices import pick_device
            from ..runner.backends import load, resolve

            source = resolve(self.model)
            load(source, pick_device())
            self.post_message(ModelReady(self.model, source.description))
        except Exception as exc:  # noqa: BLE001 - any load failure becomes a notification
            self.post_message(ModelFailed(f"model {self.model} did not load: {say(exc)}"))

    def start_run(self, grid, options) -> None:
        """Show the grid screen and run ``grid`` in a thread worker that posts progress to it."""
        from .screens.grid import GridScreen

        if self.journal is None:
            self.notify("no journal to write runs to: fix the journal first", severity="error")
            return
        if self.busy():
            return
        screen = GridScreen(grid=grid)
        self.push_screen(screen)
        self.cancel_requested = False
        self._run(grid, options, screen)

    @work(thread=True, exclusive=True, group="run")
    def _run(self, grid, options, screen) -> None:
        worker = get_current_worker()
        try:
            import torch

            from ..runner.session import execute

            if not torch.cuda.is_available():  # leave a core to the UI thread: generation must never freeze it
                torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))

            run = execute(grid, options, self.journal, on_event=lambda e: screen.post_message(RunEvent(e)),
                          cancel=lambda: worker.is_cancelled or self.cancel_requested)
            self.to_screen(screen, RunDone(run))
        except Exception as exc:  # noqa: BLE001 - shown, never crashes the app; finished batches are on disk
            self.to_screen(screen, RunFailed(say(exc)))

    def to_screen(self, screen, message) -> None:
        """Post a run's outcome to its grid screen, or to the app when that screen has been closed (never lost)."""
        if not screen.post_message(message):
            self.post_message(message)

    def running(self) -> bool:
        return any(w.group == "run" and w.is_running for w in self.workers)

    async def action_quit(self) -> None:
        """Quit; while a run works, ask first (ctrl+q again, or y, quits; finished images stay in the run folder)."""
        from .screens.modals import Confirm

        if not self.running() or isinstance(self.screen, Confirm) and self.screen.yes == QUIT:
            self.cancel_requested = True
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.cancel_requested = True
                self.exit()

        self.push_screen(Confirm("A run is in progress. Quit and cancel it? The images finished so far stay in its run "
                                 "folder (F3 lists it next time).", QUIT), answer)

    def busy(self) -> bool:
        """One run at a time: a second would share the loaded pipeline (and its scheduler state) with the first."""
        if self.running():
            self.notify("a run is in progress: wait for it, or cancel it with Esc on its grid", severity="warning")
            return True
        return False

    def rerun(self, number: int) -> None:
        """Regenerate #number on a grid screen that shows its progress as a run's, then whether it came out
        byte-identical."""
        from .screens.grid import GridScreen

        if self.busy():
            return
        screen = GridScreen(rerun_of=self.journal.get(number))
        self.push_screen(screen)
        self.cancel_requested = False
        self.rerun_experiment(number, screen)

    @work(thread=True, exclusive=True, group="run")
    def rerun_experiment(self, number: int, screen) -> None:
        worker = get_current_worker()
        try:
            from ..runner.session import RunOptions, rerun

            run, identical = rerun(self.journal, number, RunOptions(), on_event=lambda e: screen.post_message(RunEvent(e)),
                                   cancel=lambda: worker.is_cancelled or self.cancel_requested)
            self.to_screen(screen, RunDone(run, verified=identical))
        except Exception as exc:  # noqa: BLE001 - shown, never crashes the app
            self.to_screen(screen, RunFailed(say(exc)))

    # ---------------------------------------------------------------- messages and actions

    def on_model_ready(self, message: ModelReady) -> None:
        self.model_status = f"{message.model}: ready — {message.description}"
        self.refresh_model_status()

    def on_model_failed(self, message: ModelFailed) -> None:
        self.model_status = f"{self.model}: not loaded"
        self.refresh_model_status()
        self.notify(message.error, severity="error", timeout=10, markup=False)

    def on_run_failed(self, message: RunFailed) -> None:
        """A run whose grid screen was closed (or a rerun) failed."""
        self.notify(message.error, severity="error", timeout=10, markup=False)

    def on_run_done(self, message: RunDone) -> None:
        """A run whose grid screen was closed ended: say how, and where to find it."""
        from .screens.grid import verdict

        run = message.run
        if message.verified is not None:
            self.notify(f"rerun (run {run.id}): {verdict(message.verified)}", markup=False, timeout=10,
                        severity="information" if message.verified else "warning")
        else:
            self.notify(f"run {run.id} {run.state}: {len(run.done)} images — F3 lists it under the runs not accepted yet",
                        markup=False, timeout=10)

    def refresh_model_status(self) -> None:
        for screen in self.screen_stack:
            if hasattr(screen, "show_model_status"):
                screen.show_model_status(self.model_status)

    def composer(self):
        """The composer screen (always at the bottom of the stack once the app has started)."""
        from .screens.composer import ComposerScreen

        return next((s for s in self.screen_stack if isinstance(s, ComposerScreen)), None)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_composer(self) -> None:
        from .screens.composer import ComposerScreen

        while len(self.screen_stack) > 2 and not isinstance(self.screen, ComposerScreen):
            self.pop_screen()

    def action_journal(self) -> None:
        from .screens.journal import JournalScreen

        if self.journal is None:
            self.notify("the journal could not be opened", severity="error")
        elif not isinstance(self.screen, JournalScreen):
            self.push_screen(JournalScreen())


def create_app(journal_dir: Path | None = None, model: str | None = None, graphics: str = "auto",
               truecolor: bool | None = None) -> PromptismApp:
    """The one way to make the app: the CLI and the tests both call this."""
    from .images import prepare

    display = prepare(graphics, truecolor)  # asks the terminal: only possible before the app reads its input
    settings = load_settings()
    return PromptismApp(journal_dir or default_journal_dir(), model or settings.model, display, settings)
