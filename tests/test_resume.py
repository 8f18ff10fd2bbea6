"""Resuming a run: a grid killed after a batch, or cancelled, and then resumed, has the very bytes of a run never
interrupted; scores, keyword effects, contact sheet and compute cover all its images; what cannot be resumed is
refused in one line."""

import json
import os
import signal
import subprocess

import pytest

from journal import Journal
from tests.helpers import EXE, run_cli
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner import events as ev
from workshop.runner.runs import MANIFEST, list_runs
from workshop.runner.execution import RunOptions, execute, resume

GRID = ["grid", "-p", "two small red stars on a blue background", "-k", "glowing", "-k", "pixel art", "--mode",
        "leave-one-out", "--seeds", "1-3", "--max-batch", "2", "--model", "shapes"]


def pngs(run) -> dict[str, bytes]:
    return {c.file: run.image(c).read_bytes() for c in run.done}


@pytest.mark.parametrize("failpoint", ["batch-written", "batch-held@2"])
def test_a_grid_killed_after_its_first_batch_resumes_to_the_bytes_of_an_uninterrupted_run(tmp_path, capsys, failpoint):
    """Killed once its first batch is written, or while the background writer holds the second one encoded but not
    written: the run folder has the first batch alone, consistently, and resumes to the bytes of a whole run."""
    j = tmp_path / "j"
    killed = subprocess.run([EXE, *GRID, "--journal", str(j)], capture_output=True, text=True,
                            env={**os.environ, "PROMPTISM_FAILPOINT": failpoint})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = list_runs(Journal.open(j))[0]
    assert run.state == "interrupted" and len(run.record.cells) == 9
    assert [c.index for c in run.done] == [0, 1] and run.record.layout == [[0, 1]]
    assert sorted(p.name for p in run.folder.iterdir()) == sorted([MANIFEST, *(c.file for c in run.done)])  # nothing else
    spent = run.record.compute.seconds  # saved with the batch it kept: the killed part's cost is not lost
    assert spent is not None and spent > 0

    code, out, err = run_cli(capsys, "resume", run.id[-4:], "--journal", str(j))
    assert code == 0, err
    assert f"run {run.id} · finished · 9/9 images" in out and "contact sheet" in out

    whole = subprocess.run([EXE, *GRID, "--journal", str(tmp_path / "whole")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    reference = list_runs(Journal.open(tmp_path / "whole"))[0]
    resumed = list_runs(Journal.open(j))[0]
    assert len(pngs(reference)) == 9 and pngs(resumed) == pngs(reference)  # every PNG, byte for byte
    r = resumed.record
    assert resumed.state == "finished" and r.layout == r.planned_layout == reference.record.layout
    assert all(c.score is not None for c in r.cells) and set(r.effects) == {"glowing", "pixel art"}  # over all 9
    assert r.compute.seconds > spent and r.compute.threads == reference.record.compute.threads  # both stretches
    assert (resumed.folder / "sheet.png").exists() and (resumed.folder / "sheet-unlabelled.png").exists()
    code, _, err = run_cli(capsys, "resume", run.id, "--journal", str(j))  # finished now: nothing more to do
    assert code == 1 and err.count("\n") == 1 and "finished" in err, err


def grid():
    return build_grid(spec_from({"prompt": "a red circle on a blue background", "keywords": ["glowing"],
                                 "mode": "leave-one-out", "seeds": "1-3"}))


def test_a_cancelled_run_resumes_to_the_same_bytes_and_adds_up_its_compute(tmp_path):
    journal = Journal.init(tmp_path / "j")
    finished = []

    def count(event):
        if isinstance(event, ev.BatchFinished):
            finished.append(event)

    options = RunOptions(model="shapes", max_batch=2)
    run = execute(grid(), options, journal, on_event=count, cancel=lambda: len(finished) >= 1)
    assert run.state == "cancelled" and [c.index for c in run.done] == [0, 1]
    before = run.record.compute.seconds
    events = []
    resume(journal, run, options, on_event=events.append)
    assert run.state == "finished" and len(run.done) == 6
    assert [e.cells for e in events if isinstance(e, ev.BatchStarted)] == [[2, 3], [4, 5]]  # only what was missing
    assert run.record.compute.seconds > before and run.record.effects["glowing"].pairs == 3

    reference = execute(grid(), options, Journal.init(tmp_path / "whole"))
    assert pngs(list_runs(journal)[0]) == pngs(reference)


def test_a_run_its_rerun_and_a_resume_load_by_one_plan_said_and_timed_alike(tmp_path):
    """The three ways to run load their models the same way (runner/loading.py): the same phases in the same order
    and a Loading event for each model; a resume of a model-axis grid loads each of its models again."""
    from workshop.runner.execution import rerun
    from workshop.runner.runs import accept_run
    from workshop.runner.timing import reporting

    def loading(make) -> tuple[list[str], list[str]]:
        events = []
        with reporting(events.append):
            make(events.append)
        before = events[:next(i for i, e in enumerate(events) if isinstance(e, ev.RunStarted))]  # (not the run's own)
        phases = [e.name for e in before if isinstance(e, ev.Phase) and e.name in LOAD_PHASES]
        return phases, [e.model for e in before if isinstance(e, ev.Loading)]

    journal = Journal.init(tmp_path / "j")
    options = RunOptions(model="tiny", steps=1, max_batch=1, clip="none")
    axis = build_grid(spec_from({"prompt": "a red circle", "seeds": "1-2", "axes": {"x": "model=tiny,shapes"}}))
    made = []
    ran = loading(lambda on_event: made.append(execute(axis, options, journal, on_event=on_event,
                                                       cancel=lambda: len(list_runs(journal)[0].done) >= 1)))
    assert made[0].state == "cancelled" and ran == (LOAD_PHASES, ["tiny", "shapes"])
    resumed = loading(lambda on_event: resume(journal, made[0], options, on_event=on_event))
    assert list_runs(journal)[0].state == "finished" and resumed == ran
    accept_run(journal, list_runs(journal)[0], "Both models", pick=[0])
    assert loading(lambda on_event: rerun(journal, 1, options, on_event=on_event)) == (LOAD_PHASES, ["tiny"])


LOAD_PHASES = ["resolve the model", "pick the device"]


def test_a_batch_partly_made_runs_only_its_missing_cells(tmp_path):
    """After an out-of-memory split a planned batch can be half made: its other half is the batch that runs."""
    journal = Journal.init(tmp_path / "j")
    run = execute(grid(), RunOptions(model="tiny", steps=1, max_batch=4, clip="none"), journal)
    assert run.record.planned_layout == [[0, 1, 2, 3], [4, 5]]
    for cell in run.record.cells[2:]:
        cell.file = None
    run.record.layout = [[0, 1]]
    run.finish("cancelled")
    events = []
    resume(journal, list_runs(journal)[0], RunOptions(), on_event=events.append)
    assert [e.cells for e in events if isinstance(e, ev.BatchStarted)] == [[2, 3], [4, 5]]
    assert list_runs(journal)[0].record.layout == [[0, 1], [2, 3], [4, 5]]


@pytest.mark.parametrize("case, fragment", [
    ("unknown", "no run 'nope'"),
    ("live", "is running (in process"),
])
def test_what_cannot_be_resumed_is_refused_in_one_line(tmp_path, capsys, case, fragment):
    j = tmp_path / "j"
    journal = Journal.init(j)
    run = execute(grid(), RunOptions(model="tiny", steps=1, clip="none"), journal)
    if case == "live":  # a run still running in a process that is alive (this one)
        doc = json.loads((run.folder / MANIFEST).read_text(encoding="utf-8"))
        (run.folder / MANIFEST).write_text(json.dumps({**doc, "state": "running", "pid": os.getpid()}), encoding="utf-8")
    code, out, err = run_cli(capsys, "resume", "nope" if case == "unknown" else run.id, "--journal", str(j))
    assert code == 1 and out == "" and err.count("\n") == 1 and fragment in err and "Traceback" not in err, err
