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
from .messages import ModelReady, RunDone, RunEvent, WorkFailed

if TYPE_CHECKING:
    from .images import Display


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else exc.__class__.__name__


class PromptismApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "promptism"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "composer", "Composer"),
        Binding("f3", "journal", "Journal"),
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
            self.notify(f"journal unavailable: {one_line(exc)}", severity="error", timeout=10, markup=False)
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
            from ..runner.models import load_pipeline, resolve

            source = resolve(self.model)
            load_pipeline(source, pick_device())
            self.post_message(ModelReady(self.model, source.description))
        except Exception as exc:  # noqa: BLE001 - any load failure becomes a notification
            self.post_message(WorkFailed(f"model {self.model} did not load: {one_line(exc)}"))

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
            screen.post_message(RunDone(run))
        except Exception as exc:  # noqa: BLE001 - shown, never crashes the app; finished batches are on disk
            screen.post_message(WorkFailed(one_line(exc)))

    def busy(self) -> bool:
        """One run at a time: a second would share the loaded pipeline (and its scheduler state) with the first."""
        if any(w.group == "run" and w.is_running for w in self.workers):
            self.notify("a run is in progress: wait for it, or cancel it with Esc on its grid", severity="warning")
            return True
        return False

    def rerun(self, number: int) -> None:
        if not self.busy():
            self.notify(f"rerunning #{number}…")
            self.rerun_experiment(number)

    @work(thread=True, exclusive=True, group="run")
    def rerun_experiment(self, number: int) -> None:
        """Regenerate #number in the background and say whether it came out byte-identical."""
        try:
            from ..runner.session import RunOptions, rerun

            run, identical = rerun(self.journal, number, RunOptions(), cancel=lambda: self.cancel_requested)
            verdict = "byte-identical to the journal" if identical else "DIFFERENT from the journal"
            self.call_from_thread(self.notify, f"rerun of #{number} (run {run.id}): {verdict}",
                                  severity="information" if identical else "warning", timeout=10)
        except Exception as exc:  # noqa: BLE001
            self.post_message(WorkFailed(f"rerun of #{number} failed: {one_line(exc)}"))

    # ---------------------------------------------------------------- messages and actions

    def on_model_ready(self, message: ModelReady) -> None:
        self.model_status = f"{message.model}: ready — {message.description}"
        self.refresh_model_status()

    def on_work_failed(self, message: WorkFailed) -> None:
        self.model_status = f"{self.model}: not loaded"
        self.refresh_model_status()
        self.notify(message.error, severity="error", timeout=10, markup=False)

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
