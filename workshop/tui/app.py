"""The Textual app and its factory (``create_app``), shared by the ``promptism`` command and the tests."""

from __future__ import annotations

import os
import threading
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
from .messages import JobsFound, ModelFailed, ModelReady, RunDone, RunEvent, RunFailed, ServiceLost
from .wording import say

if TYPE_CHECKING:
    from .display import Display


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

    def __init__(self, journal_dir: Path, model: str, graphics: Display, settings: Settings, remote: bool = False):
        """``remote``: jobs run in the service (started when none runs), which they outlive; else in this process."""
        super().__init__()
        self.remote_enabled = remote
        self._remote = None
        self.jobs = None  # the job runner of the current grid's job (service.job_runner)
        self._loading = threading.Lock()  # held while the model preloads
        self.left_running = None  # the service job that was running when the workshop quit (it runs on)
        self.journal_dir = journal_dir
        self.model = model
        self.graphics = graphics
        self.settings = settings
        self.journal: Journal | None = None
        self.model_status = f"{model}: loading…"

    async def on_mount(self) -> None:
        from .screens.composer import ComposerScreen

        try:
            self.journal = Journal.open(self.journal_dir, create=True)
        except JournalError as exc:
            self.notify(f"journal unavailable: {say(exc)}", severity="error", timeout=10, markup=False)
        await self.push_screen(ComposerScreen())  # mounted before a job that outlived a workshop is restored into it
        if self.graphics.notice:
            self.notify(self.graphics.notice, severity="warning", timeout=20, markup=False)
        if self.remote_enabled:
            self.attach()
        else:
            self.preload_model()

    def on_terminal_supports_synchronized_output(self, message: TerminalSupportsSynchronizedOutput) -> None:
        """No synchronized updates when images go through tmux: tmux writes such an update's text after the images
        drawn in it, erasing them (tmux 3.4+)."""
        if self.graphics.through_tmux:
            message.prevent_default()  # Textual's own handler, which turns them on, is not called

    def on_app_focus(self) -> None:
        """Back to our tmux window or pane (tmux reports it with `focus-events on`): tmux redrew the text, and the
        images passed through it are gone — draw them again."""
        from .images import Picture

        if self.graphics.through_tmux:
            for picture in self.screen.query(Picture):
                picture.redraw()

    # ---------------------------------------------------------------- background work

    @work(thread=True, exclusive=True, group="model")
    def preload_model(self) -> None:
        """Import torch/diffusers and load the model off the UI thread; the composer shows the status. A run started
        meanwhile waits for it (``_loading``): two threads importing diffusers at once can fail its lazy imports."""
        try:
            with self._loading:
                source = self._preload()
            self.post_message(ModelReady(self.model, source.description))
        except Exception as exc:  # noqa: BLE001 - any load failure becomes a notification
            self.post_message(ModelFailed(f"model {self.model} did not load: {say(exc)}"))

    def _preload(self):
        """The model the composer's runs get, loaded into the warm pool; its source."""
        from ..runner.devices import pick_device
        from ..runner.backends import load, resolve
        from ..runner.speedups import Speedups

        source = resolve(self.model)
        load(source, pick_device(), speedups=Speedups.chosen(self.settings))
        return source

    def start_run(self, grid, spec, given) -> None:
        """Show the grid screen and run ``grid`` (built from ``spec``) as a job, with the run options ``given``."""
        from ..service.api import JobRequest
        from .screens.grid import GridScreen

        if self.journal is None:
            self.notify("no journal to write runs to: fix the journal first", severity="error")
            return
        if self.busy():
            return
        screen = GridScreen(grid=grid)
        self.push_screen(screen)
        self.run_job(JobRequest(kind="grid", journal=str(self.journal_dir), spec=spec, options=given), screen)

    def rerun(self, number: int) -> None:
        """Regenerate #number on a grid screen that shows its progress as a run's, then whether it came out
        byte-identical."""
        from ..service.api import JobRequest
        from .screens.grid import GridScreen

        if self.busy():
            return
        screen = GridScreen(rerun_of=self.journal.get(number))
        self.push_screen(screen)
        self.run_job(JobRequest(kind="rerun", journal=str(self.journal_dir), number=number), screen)

    def resume(self, run, screen) -> None:
        """Finish ``run`` (interrupted or cancelled) on its own grid screen: only its missing cells, to the bytes an
        uninterrupted run would have made."""
        from ..contract import GivenOptions
        from ..service.api import JobRequest

        if self.busy():
            return
        screen.resuming()
        self.run_job(JobRequest(kind="resume", journal=str(self.journal_dir), run=run.id,
                                options=GivenOptions(preview_every=1)), screen)

    def run_job(self, request, screen, job=None) -> None:
        """Run ``request`` — through the service (``job``: one already there, to re-attach to) or in this process —
        posting its progress to ``screen`` and how it ended, once."""
        from ..service.job_runner import LocalJobs, ServiceJobs

        if self.remote_enabled:
            self.jobs = ServiceJobs(None, job)  # its client: the service's, once a worker has it
            self._remote_job(request, screen, self.jobs)
        else:
            self.jobs = LocalJobs()
            self._local_job(request, screen, self.jobs)

    @property
    def job(self):
        """The service job on the current grid while it runs (None: none, not submitted yet, or ended)."""
        from ..service.job_runner import ServiceJobs

        return self.jobs.job if isinstance(self.jobs, ServiceJobs) and not self.jobs.ended else None

    @property
    def cancel_requested(self) -> bool:
        """Whether the current grid's job was asked to stop."""
        return self.jobs is not None and self.jobs.cancel_asked

    @work(thread=True, exclusive=True, group="run")
    def _local_job(self, request, screen, jobs) -> None:
        worker = get_current_worker()
        try:
            with self._loading:  # the model's preload, if it is still going, ends first
                import torch

            if not torch.cuda.is_available():  # leave a core to the UI thread: generation must never freeze it
                torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
            outcome = jobs.run(request, lambda e: screen.post_message(RunEvent(e)), stop=lambda: worker.is_cancelled)
            self.to_screen(screen, self._outcome(request.kind, outcome))
        except Exception as exc:  # noqa: BLE001 - shown, never crashes the app; finished batches are on disk
            self.to_screen(screen, RunFailed(say(exc)))

    @work(thread=True, exclusive=True, group="run")
    def _remote_job(self, request, screen, jobs) -> None:
        """The job in the service: it outlives the workshop (quit, a lost SSH session), which re-attaches next time."""
        from ..runner import events as ev
        from ..service.errors import ServiceUnavailable

        started = []  # the run the job made, once it said so

        def relay(event) -> None:
            if isinstance(event, ev.RunStarted):
                started.append(event.run)
            screen.post_message(RunEvent(event))

        try:
            jobs.client = self.remote().client
            outcome = jobs.run(request, relay, stop=lambda: self.left_running)
            if outcome is not None:
                self.to_screen(screen, self._outcome(jobs.job.kind, outcome))
        except ServiceUnavailable as exc:  # the service died under the job: its run waits for `u`
            self.post_message(ServiceLost())
            self.to_screen(screen, RunFailed(stopped_during(started[-1]), started[-1]) if started else
                           RunFailed(f"the service stopped before the job made a run ({say(exc)}): run it again"))
        except Exception as exc:  # noqa: BLE001 - a lost service is one line; the job (if any) runs on in it
            self.to_screen(screen, RunFailed(say(exc)))

    def _outcome(self, kind: str, outcome):
        """The one message that says how a ``kind`` job ended, in the workshop's words."""
        from ..runner.runs import load_run

        if outcome.state == "failed":
            return RunFailed(say(outcome.error) if outcome.error else "the run failed")
        if outcome.run is None:
            return RunFailed(f"the {'rerun' if kind == 'rerun' else 'run'} was {outcome.state} before it made an image")
        run = load_run(self.journal, outcome.run)
        if outcome.state == "interrupted":
            return RunFailed(stopped_during(run.id), run.id)
        return RunDone(run, verified=outcome.verified if kind == "rerun" else None)

    def remote(self):
        """The service for this journal, started detached when none runs — also again after it exited idle while
        the workshop stayed open."""
        from .remote import Remote

        if self._remote is None or not self._remote.client.ping():
            self._remote = Remote.start(str(self.journal_dir))
        return self._remote

    def cancel_run(self) -> None:
        """Cancel the job on the current grid (between steps; its finished images stay)."""
        if self.jobs is not None:
            self._cancel(self.jobs)

    @work(thread=True, group="cancel")
    def _cancel(self, jobs) -> None:
        """(A thread: cancelling a service's job is a request to it.)"""
        try:
            jobs.cancel()
        except Exception as exc:  # noqa: BLE001 - the service went away: its job went with it
            self.notify(f"could not cancel: {say(exc)}", severity="error", markup=False)

    @work(thread=True, exclusive=True, group="attach")
    def attach(self) -> None:
        """Start (or find) the service, say so in the composer, and re-attach to this journal's job that outlived an
        earlier workshop: its progress on a grid screen, its composition in the composer."""
        try:
            remote = self.remote()
            status = remote.client.status()
            self.post_message(ModelReady(self.model, f"runs in the service (pid {status.pid}"
                                         + (f", {status.device})" if status.device else ")")))
            if jobs := remote.unfinished():
                self.post_message(JobsFound(jobs))
        except Exception as exc:  # noqa: BLE001 - no service: runs fail with the same line; the composer works
            self.post_message(ModelFailed(f"the service is not available: {say(exc)}"))

    async def on_jobs_found(self, message: JobsFound) -> None:
        """Show the job that outlived an earlier workshop (the running one, else the next queued)."""
        from ..compose.grid import build_grid
        from ..compose.spec import spec_from
        from ..runner.runs import load_run
        from .screens.grid import GridScreen

        job, more = message.jobs[0], len(message.jobs) - 1
        if self.running():
            return
        try:
            if job.kind == "grid":
                await self.composer().restore(job.spec, job.options)
                screen = GridScreen(grid=build_grid(spec_from(job.spec)))
            elif job.kind == "rerun":
                screen = GridScreen(rerun_of=self.journal.get(job.number))
            else:
                screen = GridScreen(run=load_run(self.journal, job.run))
        except Exception as exc:  # noqa: BLE001 - a job whose journal changed since: said, not fatal
            self.notify(f"job {job.id} cannot be shown: {say(exc)}", severity="warning", markup=False)
            return
        await self.push_screen(screen)
        if job.kind == "resume":
            screen.resuming()
        self.run_job(None, screen, job=job)
        self.notify(f"re-attached to job {job.id} ({job.state})" + (f"; {more} more queued" if more else ""),
                    markup=False, timeout=8)

    def to_screen(self, screen, message) -> None:
        """Post a run's outcome to its grid screen, or to the app when that screen has been closed (never lost)."""
        if not screen.post_message(message):
            self.post_message(message)

    def running(self) -> bool:
        return any(w.group == "run" and w.is_running for w in self.workers)

    async def action_quit(self) -> None:
        """Quit; while a run works in this process, ask first (ctrl+q again, or y, quits; finished images stay in the
        run folder). A job in the service runs on: the next workshop re-attaches to it."""
        from .screens.modals import Confirm

        if (composer := self.composer()) is not None:
            composer.save()  # the last keys typed, not yet saved (saving waits for a pause in the typing)
        if self.remote_enabled and self.job is not None:  # stop following (the stream is closed), not the job
            self.left_running = self.job
            self._remote.client.close()
        if not self.running() or self.remote_enabled or isinstance(self.screen, Confirm) and self.screen.yes == QUIT:
            if not self.remote_enabled and self.jobs is not None:
                self.jobs.cancel()  # (a job in this process: finished images stay in its run folder)
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.jobs.cancel()
                self.exit()

        self.push_screen(Confirm("A run is in progress. Quit and cancel it? The images finished so far stay in its run "
                                 "folder (F3 lists it next time).", QUIT), answer)

    def busy(self) -> bool:
        """One run at a time: a second would share the loaded pipeline (and its scheduler state) with the first."""
        if self.running():
            self.notify("a run is in progress: wait for it, or cancel it with Esc on its grid", severity="warning")
            return True
        return False

    # ---------------------------------------------------------------- messages and actions

    def on_model_ready(self, message: ModelReady) -> None:
        self.model_status = f"{message.model}: ready — {message.description}"
        self.refresh_model_status()

    def on_model_failed(self, message: ModelFailed) -> None:
        self.model_status = f"{self.model}: not loaded"
        self.refresh_model_status()
        self.notify(message.error, severity="error", timeout=10, markup=False)

    def on_service_lost(self, message: ServiceLost) -> None:
        """The service went away: the composer no longer names its process; the next run starts a new one."""
        self.model_status = f"{self.model}: the service stopped — the next run starts it again"
        self.refresh_model_status()

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
               truecolor: bool | None = None, local: bool = False) -> PromptismApp:
    """The one way to make the app: the CLI and the tests both call this. Runs go through the service unless
    ``local`` (or the settings or $PROMPTISM_SERVICE say otherwise)."""
    from ..settings import service_enabled

    from .images import prepare

    display = prepare(graphics, truecolor)  # asks the terminal: only possible before the app reads its input
    settings = load_settings()
    return PromptismApp((journal_dir or default_journal_dir()).absolute(), model or settings.model, display, settings,
                        remote=service_enabled(local, settings))


def stopped_during(run: str) -> str:
    """What the workshop says when the service stopped during ``run``: how to finish it."""
    return f"the service stopped during run {run}: u on its grid (or `promptism resume {run}`) finishes it"
