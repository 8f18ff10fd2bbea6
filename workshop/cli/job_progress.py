"""Running a job from the command line: through the service (started detached when none runs) or in this process
(``--local``, ``service = false`` in config.toml, or ``PROMPTISM_SERVICE=off``) — one ``service.job_runner`` either
way — with a progress bar or JSON lines, Ctrl-C cancelling the job (its finished images kept), and its end worded for
the command line. The client side imports no torch."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from journal.text import one_line

from ..errors import RunError, from_wire
from ..service.api import JobInfo, JobOutcome, JobRequest
from ..service.errors import ServiceError, ServiceUnavailable
from ..service.job_runner import LocalJobs, ServiceJobs
from ..settings import service_enabled


def run(request: JobRequest, *, as_json: bool, local: bool, verbose: bool = False,
        before_write: Callable[[], None] = lambda: None) -> tuple[JobOutcome, bool]:
    """Run ``request`` to its end with progress; how it ended, and whether it was cancelled (Ctrl-C here, or a cancel
    from another client). A failed job raises RunError with its one line. ``verbose``: the phases until the first
    step, with their seconds, on stderr at the end (and as JSON events with ``as_json``)."""
    with Progress(as_json, verbose) as progress:
        if not service_enabled(local):
            jobs = LocalJobs(before_write)
            with graceful_interrupt(jobs.cancel) as interrupted:
                ended = jobs.run(request, progress.on_event)
            return ended, interrupted() or ended.state == "cancelled"
        from ..service.client import connect

        began, spawned = time.perf_counter(), []
        client = connect(autostart=True, announce=lambda line: (spawned.append(line), click.echo(line, err=True)))
        info = client.submit(request)
        progress.phase("start the service" if spawned else "connect to the service", time.perf_counter() - began)
        return follow(client, info, cancel_on_interrupt=True, progress=progress)


def follow(client, info: JobInfo, *, cancel_on_interrupt: bool, progress: Progress) -> tuple[JobOutcome, bool]:
    """Watch a service job to its end, its events to ``progress``. Ctrl-C cancels it (``cancel_on_interrupt``: this
    command started it) or stops watching (the job runs on)."""
    jobs = ServiceJobs(client, info)
    with graceful_interrupt(jobs.cancel, watching=not cancel_on_interrupt):
        try:
            ended = jobs.run(None, progress.on_event)
        except ServiceUnavailable:
            raise
        except Exception:  # this command fails (its output gone, a bug): nobody waits for the job it started any more
            if cancel_on_interrupt:
                _cancel_quietly(jobs)
            raise
    if ended.state in ("failed", "interrupted") and ended.error:  # the service's words, worded again as ours
        raise RunError(from_wire(ended.error))
    if ended.state == "failed":
        raise RunError("the job failed")
    if ended.state == "interrupted":
        raise RunError(f"the service stopped during the job; `promptism resume {ended.run}` finishes it" if ended.run
                       else "the service stopped before the job began; nothing of it ran: run the command again")
    return ended, ended.state == "cancelled"


def _cancel_quietly(jobs: ServiceJobs) -> None:
    """Cancel a job this command started, on its way out; a service that cannot be reached has nothing to cancel."""
    try:
        jobs.cancel()
    except ServiceError:
        pass


def since_process_start() -> float | None:
    """Seconds since this process started (from Linux's /proc), None where that is not known."""
    try:
        ticks = int(Path("/proc/self/stat").read_text(encoding="ascii").rpartition(")")[2].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):  # (no /proc, no CLOCK_BOOTTIME)
        return None


class Progress:
    """A progress bar on a terminal (stderr), JSON lines with --json, else (stderr a pipe or a file) a line when the
    run starts and one per finished batch, so a log shows it moving; with ``verbose``, the phases
    until the first step (``Phase`` events: the runner's, the service's, and this command's own), listed on stderr
    at the end and, with --json, printed as events too."""

    def __init__(self, as_json: bool, verbose: bool = False):
        self.as_json = as_json
        self.verbose = verbose
        self._bar = None
        self._task = None
        self._phases: list = []  # Phase events, in the order they ended
        self._phase_ended = time.perf_counter()  # when the latest phase ended here
        started = since_process_start() if verbose else None
        self._origin = self._phase_ended - (started or 0.0)  # when this process started, where that is known
        self._to_first_step: float | None = None
        self._run: tuple[int, int] | None = None  # without a bar: the run's images and batches, once it started
        self._made = 0  # … and its images made so far
        if started is not None:
            self.phase("start promptism (python, imports, checks)", started)

    def __enter__(self):
        if not self.as_json and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                 TextColumn("{task.fields[steps]}", markup=False), console=Console(stderr=True),
                                 transient=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        if self.verbose and self._phases:
            click.echo(self._phase_table(), err=True)

    def phase(self, name: str, seconds: float) -> None:
        """A phase this command timed itself."""
        from ..runner import events as ev

        self.on_event(ev.Phase(name=name, seconds=round(seconds, 3)))

    def on_event(self, event) -> None:
        from ..runner import events as ev

        if isinstance(event, ev.Phase):
            self._phases.append(event)
            self._phase_ended = time.perf_counter()
            if self.as_json and self.verbose:
                click.echo(json.dumps(event.to_json()))
            return
        if isinstance(event, ev.Step) and self._to_first_step is None:
            now = time.perf_counter()
            self.phase("first step (run folder, prompt, the step itself)", now - self._phase_ended)
            self._to_first_step = now - self._origin
        if self.as_json:
            if not isinstance(event, ev.Preview):
                click.echo(json.dumps(event.to_json()))
            return
        if isinstance(event, ev.PromptPastLimit):
            click.echo(f"note: {past_limit_line(event)}", err=True)
        if isinstance(event, ev.Note):
            click.echo(f"note: {event.text}", err=True)
        if isinstance(event, ev.BatchSplit):
            click.echo(f"out of GPU memory: retrying {event.size} images as batches of {event.new_size}", err=True)
        if isinstance(event, ev.BatchRetried):
            click.echo(f"a Ray worker died ({event.worker}): its {len(event.cells)} images go to another (retry "
                       f"{event.attempt})", err=True)
        if self._bar is None:
            self._line(event)
            return
        if isinstance(event, (ev.Loading, ev.RunStarted)):  # loading takes seconds the first time: say so
            what = f"loading {event.model}…" if isinstance(event, ev.Loading) else event.model
            description = one_line(f"{what} on {event.device}")
            if self._task is None:
                self._task = self._bar.add_task(description, total=None, steps="")  # no count until a step is done
            else:
                self._bar.update(self._task, description=description)
        elif isinstance(event, ev.Step) and self._task is not None:
            left = f" · {int(event.eta_s) // 60}:{int(event.eta_s) % 60:02d} left" if event.eta_s is not None else ""
            self._bar.update(self._task, completed=event.done, total=event.total,
                             steps=f"{event.done}/{event.total} steps · {event.it_per_s:.1f} it/s{left}")

    def _line(self, event) -> None:
        """Progress as lines on stderr: the run, then each batch as it finishes."""
        from ..runner import events as ev

        if isinstance(event, ev.RunStarted):
            self._run, self._made = (event.cells, event.batches), 0
            click.echo(one_line(f"run {event.run}: {event.cells} image(s) in {event.batches} batch(es), {event.model} "
                                f"on {event.device}"), err=True)
        elif isinstance(event, ev.BatchFinished) and self._run is not None:
            self._made += len(event.cells)
            click.echo(f"batch {event.batch + 1}/{self._run[1]} done: {self._made}/{self._run[0]} image(s) "
                       f"({event.seconds:.1f} s)", err=True)

    def _phase_table(self) -> str:
        """The phases as one block: each with its seconds, then the time to the first step."""
        width = max(len(p.name) for p in self._phases)
        lines = ["phases until the first step (seconds):",
                 *(f"  {p.name:<{width}}  {p.seconds:7.3f}" for p in self._phases)]
        total = (f"{self._to_first_step:7.3f}" if self._to_first_step is not None else "    (no step)")
        lines.append(f"  {'to the first step, in all':<{width}}  {total}")
        return "\n".join(lines)


class graceful_interrupt:
    """Ctrl-C cancels at the next step and keeps finished images (``cancel`` tells the service so); a second Ctrl-C
    stops at once. ``watching`` (a job another command started): Ctrl-C stops watching, the job runs on."""

    def __init__(self, cancel: Callable[[], None] | None = None, *, watching: bool = False):
        self.cancel, self.watching = cancel, watching

    def __enter__(self):
        self.flag = False
        self._old = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self.flag or self.watching:
                raise KeyboardInterrupt
            self.flag = True
            click.echo("\ncancelling after the current step (Ctrl-C again to stop at once)…", err=True)
            if self.cancel:
                self.cancel()

        signal.signal(signal.SIGINT, handler)
        return lambda: self.flag

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._old)


def past_limit_line(event) -> str:
    """A PromptPastLimit event in words: its cells numbered as `promptism grid` numbers them."""
    cells = ", ".join(map(str, event.cells[:8])) + (", …" if len(event.cells) > 8 else "")
    return (f"the prompt of cell(s) {cells} is up to {event.tokens} tokens, past the {event.limit} the model reads: it "
            "sees only the start (words past it have no effect; BREAK starts a new window)")
