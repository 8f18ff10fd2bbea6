"""The service's Ray executor on a local Ray cluster the tests start (two CPUs, two CPU workers, the `tiny` model): a
grid's batches dealt to both workers give the local executor's PNG bytes (each batch on its model, with its sampler,
for a grid with model and sampler axes); the service loads no model of its own; a writer that falls behind stops the
dealing, so the finished batches held for it stay bounded; workers the cluster cannot place are refused at once (or
left out, where others start); a worker killed mid-batch has its batch dealt again (its time still counted); cancel
stops every worker; workers that are all lost leave the run interrupted, and `resume` finishes it with the same
bytes. The cluster (and every worker) is stopped when the module's tests end."""

from __future__ import annotations

import os
import signal
import threading
from collections import OrderedDict

import pytest

ray = pytest.importorskip("ray")

from journal import Journal  # noqa: E402
from workshop.compose.grid import build_grid  # noqa: E402
from workshop.compose.spec import spec_from  # noqa: E402
from workshop.errors import RunError  # noqa: E402
from workshop.runner import events as ev  # noqa: E402
from workshop.runner import models  # noqa: E402
from workshop.runner.execution import prepare  # noqa: E402
from workshop.runner.options import RunOptions  # noqa: E402
from workshop.runner.runs import load_run  # noqa: E402
from workshop.runner.writer import BatchWriter  # noqa: E402
from workshop.service.api import JobRequest  # noqa: E402
from workshop.service.errors import ServiceError  # noqa: E402
from workshop.service.executor import run_job  # noqa: E402
from workshop.service import ray_executor  # noqa: E402
from workshop.service.ray_executor import RayExecutor  # noqa: E402

SPEC = {"prompt": "a lighthouse at dusk, SECRET-WORD", "seeds": [1, 2, 3, 4, 5, 6]}
OPTIONS = {"model": "tiny", "steps": 20, "size": [32, 32], "max_batch": 2, "clip": "none"}
ONE = "promptism-test-one"  # a custom resource the test cluster has one of


@pytest.fixture(scope="module")
def executor(tmp_path_factory, model_cache):
    """A Ray executor on a local cluster of two CPUs started here (its workers see this session's model cache), its
    two workers started; all of it stopped at the end."""
    home = tmp_path_factory.mktemp("ray-home")
    with pytest.MonkeyPatch.context() as env:  # what the cluster's processes inherit
        env.setenv("HOME", str(home))
        env.setenv("PROMPTISM_CACHE", str(model_cache))
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=2, resources={ONE: 1}, include_dashboard=False, log_to_driver=False, configure_logging=False)
    executor = RayExecutor("auto")
    with pytest.MonkeyPatch.context() as patch:  # a generous deadline for workers that import torch on a busy
        patch.setattr(ray_executor, "PING_TIMEOUT_S", 900.0)  # machine (at load 8, 120 s was not enough)
        try:
            assert executor.warm_up().startswith("Ray: 2 workers (2 CPU)")
            yield executor
        finally:
            executor.close()
            ray.shutdown()


def request(journal, **options) -> JobRequest:
    return JobRequest(kind="grid", journal=str(journal), spec=SPEC, options={**OPTIONS, **options}, create=True)


def images(journal, run_id) -> dict[int, bytes]:
    run = load_run(Journal.open(journal), run_id)
    return {c.index: run.image(c).read_bytes() for c in run.done}


@pytest.fixture(scope="module")
def local(tmp_path_factory, model_cache):
    """The grid made by the local executor: its run's images, by cell, and its manifest."""
    journal = tmp_path_factory.mktemp("local") / "j"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PROMPTISM_CACHE", str(model_cache))
        outcome = run_job(request(journal))
    assert outcome.state == "finished"
    return images(journal, outcome.run), load_run(Journal.open(journal), outcome.run).record


def test_a_grid_dealt_to_two_workers_gives_the_local_bytes(executor, local, tmp_path):
    events: list[ev.Event] = []
    outcome = executor.run(request(tmp_path / "j"), on_event=events.append, cancel=lambda: False)
    assert outcome.state == "finished"
    local_images, local_record = local
    assert images(tmp_path / "j", outcome.run) == local_images and len(local_images) == 6
    record = load_run(Journal.open(tmp_path / "j"), outcome.run).record
    assert record.cells == local_record.cells and record.planned_layout == local_record.planned_layout == [[0, 1], [2, 3], [4, 5]]
    assert sorted(record.layout) == sorted(local_record.layout) and record.compute.threads == local_record.compute.threads
    started = [e for e in events if isinstance(e, ev.BatchStarted)]
    assert sorted(e.batch for e in started) == [0, 1, 2] and len({e.worker for e in started}) == 2  # both worked
    assert sorted(e.batch for e in events if isinstance(e, ev.BatchFinished)) == [0, 1, 2]
    steps = [e for e in events if isinstance(e, ev.Step)]
    assert [e.done for e in steps] == list(range(1, 61)) and {e.total for e in steps} == {60}  # the run's counts
    assert isinstance(events[-1], ev.RunFinished) and events[-1].images == 6


def test_each_batch_runs_on_its_model_with_its_sampler_as_locally(executor, tmp_path):
    spec = {**SPEC, "seeds": [1, 2], "axes": {"x": "model=tiny,shapes", "y": "sampler=Euler a,DPM++ 2M Karras"}}
    made = {}
    for name, run in (("local", run_job), ("ray", executor.run)):
        journal = tmp_path / name
        request = JobRequest(kind="grid", journal=str(journal), spec=spec, options={**OPTIONS, "steps": 3}, create=True)
        outcome = run(request, on_event=lambda e: None, cancel=lambda: False)
        assert outcome.state == "finished"
        record = load_run(Journal.open(journal), outcome.run).record
        made[name] = images(journal, outcome.run), {(c.model, c.sampler) for c in record.cells}, record.planned_layout
    assert made["ray"] == made["local"] and len(made["ray"][0]) == 8 and len(made["ray"][1]) == 4


def test_the_service_loads_no_model_its_workers_do(executor, tmp_path, monkeypatch):
    for pool in models.Warm.pools:  # (other tests ran jobs in this process: its pools start empty here)
        monkeypatch.setattr(pool, "entries", OrderedDict())
    assert executor.warm_up().startswith("Ray: 2 workers (2 CPU) · runs written here on ")
    assert models.loaded_models() == []
    events: list[ev.Event] = []
    outcome = executor.run(request(tmp_path / "j", steps=3), on_event=events.append, cancel=lambda: False)
    assert outcome.state == "finished" and len(images(tmp_path / "j", outcome.run)) == 6
    assert models.loaded_models() == [] and not models.PIPELINES.entries  # checked and recorded, yet never loaded here
    assert [e.model for e in events if isinstance(e, ev.Loading)] == ["tiny"]  # by a worker (the others as it did)


def test_the_guided_backend_is_refused_for_ray_before_anything_loads():
    class Nowhere:  # a dispatch that must not be asked to load anything
        def load(self, *args, **kwargs):
            raise AssertionError("loaded")

    grid = build_grid(spec_from({"prompt": "a red circle", "seeds": [1]}))
    with pytest.raises(RunError, match="runs on one device"):
        prepare(grid, RunOptions(model="vqgan-clip:shapes+shapes-clip", clip="none"), None, dispatch=Nowhere())


def test_a_writer_behind_stops_the_dealing_so_the_batches_held_for_it_stay_bounded(executor, tmp_path, monkeypatch):
    """A slow writer: each write waits until the batches started and not yet taken by it are at the bound and every
    one of them is made (nothing runs: the dealing has stopped for the writer), or until every batch has started.
    Those batches — the finished ones held for the writer among them — reach IN_FLIGHT per worker and no more
    (unbounded, the twelve would all be made while the first write waits)."""
    bound = len(executor.slots) * ray_executor.IN_FLIGHT
    seeds = list(range(1, 13))
    counts = {"started": 0, "made": 0, "taken": 0, "most": 0}
    changed = threading.Condition()
    submit, write = BatchWriter.submit, BatchWriter._write

    def taken(self, batch, animations) -> None:
        submit(self, batch, animations)
        with changed:
            counts["taken"] += 1
            changed.notify_all()

    def stalled() -> bool:  # (under ``changed``) the dealing has stopped for the writer, or dealt everything
        behind = counts["started"] - counts["taken"]
        return behind >= bound and counts["made"] == counts["started"] or counts["started"] == len(seeds)

    def slow(self, *args) -> None:
        with changed:
            assert changed.wait_for(stalled, timeout=600)
        write(self, *args)

    def on_event(event: ev.Event) -> None:
        with changed:
            if isinstance(event, ev.BatchStarted):
                counts["started"] += 1
                counts["most"] = max(counts["most"], counts["started"] - counts["taken"])
            elif isinstance(event, ev.Step) and event.step == event.steps:
                counts["made"] += 1
            changed.notify_all()

    def grid(journal) -> JobRequest:
        return JobRequest(kind="grid", journal=str(journal), spec={**SPEC, "seeds": seeds},
                          options={**OPTIONS, "steps": 3, "max_batch": 1}, create=True)

    with monkeypatch.context() as writer:
        writer.setattr(BatchWriter, "submit", taken)
        writer.setattr(BatchWriter, "_write", slow)
        outcome = executor.run(grid(tmp_path / "j"), on_event=on_event, cancel=lambda: False)
    assert outcome.state == "finished" and counts["started"] == counts["taken"] == len(seeds)
    assert counts["most"] == bound  # the writer fell that far behind, and the dealing stopped there
    here = run_job(grid(tmp_path / "local"))
    assert images(tmp_path / "j", outcome.run) == images(tmp_path / "local", here.run)


def test_workers_the_cluster_lacks_resources_for_are_refused_at_once(executor, monkeypatch):
    monkeypatch.setattr(ray_executor, "_request", lambda gpus: {"promptism-test-none": 1.0})
    other = RayExecutor("auto")
    try:
        with pytest.raises(ServiceError) as refused:
            other.warm_up()
    finally:
        other.close()
    assert str(refused.value) == ("no Ray worker can start: each asks for 1 promptism-test-none, and the cluster has "
                                  "no promptism-test-none (see `ray status`)")
    assert other.slots == []


def test_workers_beyond_what_the_cluster_can_place_are_left_out_and_said(executor, monkeypatch):
    monkeypatch.setattr(ray_executor, "_request", lambda gpus: {ONE: 1.0})  # the cluster has one: one worker starts
    other = RayExecutor("auto", cpu_workers=2)
    try:
        line = other.warm_up()
        started = len(other.slots)
    finally:
        other.close()
    assert started == 1
    assert line.startswith(f"Ray: 1 workers (1 CPU) · 1 more cannot start: each asks for 1 {ONE}, and the cluster has "
                           f"0 of 1 {ONE} free (see `ray status`) · runs written here on ")


def test_a_worker_killed_mid_batch_has_its_batch_dealt_again_and_the_bytes_stay(executor, tmp_path):
    events: list[ev.Event] = []
    killed: list[str] = []

    def on_event(event: ev.Event) -> None:
        events.append(event)
        if isinstance(event, ev.BatchStarted) and event.batch == 0 and not killed:  # its batch has all its steps to go
            killed.append(event.worker)
            os.kill(int(event.worker.rpartition(":")[2]), signal.SIGKILL)

    # 60 steps a batch: the kill, sent when batch 0's start reaches this process, lands while the batch is being made
    # however late that is under load (with 20 a loaded machine saw the batch finish first: nothing was dealt again)
    outcome = executor.run(request(tmp_path / "j", steps=60), on_event=on_event, cancel=lambda: False)
    assert outcome.state == "finished"
    retried = [e for e in events if isinstance(e, ev.BatchRetried)]
    assert (0, [0, 1], 1) in [(e.batch, e.cells, e.attempt) for e in retried]  # (and the batch dealt to it next)
    assert {e.worker for e in retried} == set(killed) and all(e.attempt == 1 for e in retried)
    again = run_job(request(tmp_path / "local", steps=60))  # the bytes of the same grid made here
    assert images(tmp_path / "j", outcome.run) == images(tmp_path / "local", again.run)
    finished = [e for e in events if isinstance(e, ev.Step)][-1]
    assert finished.done == finished.total == 180  # the killed batch's steps were taken back, then made again
    # its time is not: the run's compute seconds are its span, from before the killed attempt began to its end
    started, began, retried = (next(k for k, e in enumerate(events) if match(e)) for match in (
        lambda e: isinstance(e, ev.RunStarted), lambda e: isinstance(e, ev.BatchStarted) and e.worker == killed[0],
        lambda e: isinstance(e, ev.BatchRetried)))
    assert started < began < retried < len(events) - 1
    compute = load_run(Journal.open(tmp_path / "j"), outcome.run).record.compute
    assert isinstance(events[-1], ev.RunFinished) and compute.seconds == round(events[-1].seconds, 3)


def test_cancel_stops_every_worker_between_steps(executor, tmp_path):
    events: list[ev.Event] = []
    steps = []

    def on_event(event: ev.Event) -> None:
        events.append(event)
        if isinstance(event, ev.Step):
            steps.append(event)

    outcome = executor.run(request(tmp_path / "j", steps=200, max_batch=3), on_event=on_event,
                           cancel=lambda: len(steps) >= 4)
    assert outcome.state == "cancelled"
    assert len(steps) < 2 * 200  # neither worker ran its batch to the end
    assert not images(tmp_path / "j", outcome.run)
    assert events[-1] == ev.RunFinished(run=outcome.run, state="cancelled", images=0, seconds=events[-1].seconds)


def test_workers_all_lost_leave_the_run_interrupted_and_resume_finishes_it(executor, local, tmp_path):
    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.BatchFinished):  # one batch is on disk: the cluster goes away
            for slot in executor.slots:
                ray.kill(slot.actor, no_restart=True)

    outcome = executor.run(request(tmp_path / "j"), on_event=on_event, cancel=lambda: False)
    assert outcome.state == "interrupted"
    kept = images(tmp_path / "j", outcome.run)
    assert 2 <= len(kept) < 6 and all(local[0][i] == png for i, png in kept.items())
    resumed = run_job(JobRequest(kind="resume", journal=str(tmp_path / "j"), run=outcome.run))
    assert resumed.state == "finished" and images(tmp_path / "j", outcome.run) == local[0]
