"""``run_job``: the one function that turns a JobRequest into runner calls — used by the service's worker and by
``--local`` alike, so a job runs the same way in either. The runner (torch) is imported when a job runs.

The service runs its jobs through an ``Executor``: ``LocalExecutor`` makes every batch on this process's device;
``ray_executor.RayExecutor`` deals them to Ray actors, one per GPU (a multi-GPU machine or a cluster). Either way the
job is checked and its run folder written here, by ``run_job``; its model is loaded where its batches are made (with
Ray: in the actors, never in the service)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from journal import Journal
from journal.journal import is_journal
from journal.text import quoted

from ..runner import events as ev
from ..errors import PromptismError, RunCancelled, option
from ..runner.options import RunOptions, recorded_run_options, resolve
from ..runner.timing import phase, reporting
from .api import JobOutcome, JobRequest

if TYPE_CHECKING:
    from ..runner.batches import Dispatch


class Executor(Protocol):
    """How the service's worker thread runs jobs."""

    def warm_up(self) -> str:
        """Get ready (import torch, pick the device, connect); where jobs will run, in words (``serve status``)."""

    def run(self, request: JobRequest, *, on_event: Callable[[ev.Event], None],
            cancel: Callable[[], bool]) -> JobOutcome:
        """Run one job to its end (see ``run_job``)."""

    def close(self) -> None:
        """Let go of what it holds (workers, a cluster it started)."""


class LocalExecutor:
    """Every batch on this process's device (the service's own warm models)."""

    def warm_up(self) -> str:
        return warm_runner()

    def run(self, request: JobRequest, *, on_event, cancel) -> JobOutcome:
        return run_job(request, on_event=on_event, cancel=cancel)

    def close(self) -> None:
        pass


def warm_runner() -> str:
    """Import the runner (torch, diffusers) now, so the first job does not wait for it; the device it picks."""
    from ..runner.devices import device_name, pick_device
    from ..runner.models import quiet_libraries

    import_module("..runner.execution", __package__)  # torch, imported here once
    quiet_libraries()  # (imports diffusers and transformers)
    return device_name(pick_device("auto"))


def run_job(request: JobRequest, *, on_event: Callable[[ev.Event], None] = lambda e: None,
            cancel: Callable[[], bool] = lambda: False, before_write: Callable[[], None] = lambda: None,
            dispatch: Dispatch | None = None) -> JobOutcome:
    """Run ``request`` to its end. A grid is checked and its model loaded before its journal or run folder is
    created (``before_write`` runs just then: the CLI's ``--out`` folder); bad input raises (RunError, SpecError,
    JournalError) with nothing written. A cancelled job returns its run as ``cancelled``. Its phases until the first
    step (imports, loading the model) are among its events. Its batches are made here, or by ``dispatch``'s workers."""
    with reporting(on_event):
        with phase("import torch and the runner"):  # (done already in a warm service)
            import_module("..runner.execution", __package__)
        return _job(request, on_event, cancel, before_write, dispatch)


def _job(request: JobRequest, on_event, cancel, before_write, dispatch) -> JobOutcome:
    from ..settings import load_settings

    journal_dir = Path(request.journal)
    if request.kind == "grid":
        options = resolve(request.spec, request.options, load_settings())
    else:
        options = recorded_run_options(request.options)
    if request.kind == "grid":
        return _grid(request, journal_dir, options, on_event, cancel, before_write, dispatch)
    journal = Journal.open(journal_dir)
    if request.kind == "rerun":
        from ..runner.execution import rerun

        try:
            run, identical = rerun(journal, request.number, options, on_event=on_event, cancel=cancel, dispatch=dispatch)
        except RunCancelled as exc:
            return JobOutcome(run=exc.run_id, state="cancelled")
        return JobOutcome(run=run.id, state=run.state, verified=identical)
    from ..runner.runs import load_run
    from ..runner.execution import resume

    run = resume(journal, load_run(journal, request.run), options, on_event=on_event, cancel=cancel, dispatch=dispatch)
    return JobOutcome(run=run.id, state=run.state)


def _grid(request: JobRequest, journal_dir: Path, options: RunOptions, on_event, cancel, before_write,
          dispatch) -> JobOutcome:
    from ..compose.grid import build_grid
    from ..compose.spec import spec_from
    from ..runner.execution import prepare, start

    grid = build_grid(spec_from(request.spec))
    journal = existing_journal(journal_dir)
    prepared = prepare(grid, options, journal, on_event=on_event, dispatch=dispatch)
    before_write()
    journal = journal or Journal.open(journal_dir, create=True)
    run = start(prepared, journal, on_event=on_event, cancel=cancel, dispatch=dispatch)
    return JobOutcome(run=run.id, state=run.state)


def existing_journal(path: Path) -> Journal | None:
    """The journal at ``path``; None where a grid is to create one (no folder there, or an empty one), which it does
    only once the run's checks have passed. A folder that is neither is refused now."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    return Journal.open(path)


def request_problem(request: JobRequest) -> PromptismError | None:
    """Why the service cannot run ``request`` — checked when it is submitted, before it is queued — or None: its
    journal (``code`` "no_journal" where there is none); a grid's spec, options, models' names and init image
    (``runner.checks``: torch-free, quick); a rerun's experiment; a resume's run. What only a loaded model can say
    (steps past its scheduler's, a prompt it cannot read) is said when the job runs."""
    from journal import ExperimentNotFound, JournalError, NotAJournal

    try:
        return _problem(request)
    except PromptismError as exc:
        return exc
    except NotAJournal as exc:
        return PromptismError(exc.message, code="no_journal", field="journal")
    except ExperimentNotFound as exc:  # (a rerun's: an init image's is the checks')
        return PromptismError(exc.message, field="number")
    except JournalError as exc:  # the journal could not be read: the machine's
        return PromptismError(exc.message, code="machine")


def _problem(request: JobRequest) -> PromptismError | None:
    path = Path(request.journal)
    if not path.is_absolute():
        return PromptismError(f"the journal must be an absolute path, not {quoted(request.journal)}", field="journal")
    given = request.options.init_image
    if given is not None and not given.startswith("#") and not Path(given).is_absolute():
        return PromptismError(f"{option('init-image')} must be an absolute path or #N[:K], not {quoted(given)}",
                              field="options.init_image")
    stray = {"grid": ("number", "run"), "rerun": ("spec", "run"), "resume": ("spec", "number")}[request.kind]
    if field := next((name for name in stray if getattr(request, name) is not None), None):
        return PromptismError(f"a {request.kind} job takes no {field}: leave it out", field=field)
    if request.kind == "grid":
        if path.exists() and not path.is_dir():
            return PromptismError(f"{path} is not a folder, so it cannot be a journal", field="journal")
        if path.is_dir() and any(path.iterdir()) and not is_journal(path):
            return PromptismError(f"{path} is not a promptism journal (and not empty); pass "
                                  f"{option('journal', 'DIR')} or run "
                                  "`promptism init`", field="journal")
        if not is_journal(path) and not request.create:
            return PromptismError(f"no promptism journal at {path}; run `promptism init` there (or ask for it with "
                                  "\"create\": true)", code="no_journal", field="journal")
        if request.spec is None:
            return PromptismError("a grid job needs its spec", field="spec")
        from ..compose.grid import build_grid
        from ..compose.spec import spec_from
        from ..runner.checks import check_inputs
        from ..settings import load_settings

        grid = build_grid(spec_from(request.spec))
        check_inputs(grid, resolve(request.spec, request.options, load_settings()), existing_journal(path))
        return None
    if not is_journal(path):
        return PromptismError(f"no promptism journal at {path}; pass {option('journal', 'DIR')}", code="no_journal",
                              field="journal")
    if request.kind == "rerun":
        if request.number is None:
            return PromptismError("a rerun job needs the experiment's number", field="number")
        Journal.open(path).get(request.number)
    if request.kind == "resume":
        if not request.run:
            return PromptismError("a resume job needs the run's id", field="run")
        from ..runner.runs import load_run

        load_run(Journal.open(path), request.run)
    return None
