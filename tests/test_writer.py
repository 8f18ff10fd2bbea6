"""The background writer: batches are written while the next one runs, in order, each on disk (files, then the
manifest naming them) before its BatchFinished event; a failed write fails the run in one line and keeps what was
written; contact sheets are drawn from tiles of at most MAX_TILE pixels a side."""

import json
import threading
import time

import pytest
from PIL import Image

import workshop.runner.writer as writer
from journal import Journal
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner import events as ev
from workshop.runner.errors import RunError
from workshop.runner.runs import MANIFEST, list_runs
from workshop.runner.session import RunOptions, execute
from workshop.runner.sheet import MAX_TILE, sheet_tile

PROMPT = "a red circle on a blue background"


def grid(seeds="1-6"):
    return build_grid(spec_from({"prompt": PROMPT, "seeds": seeds}))


def slow_encoding(monkeypatch, seconds: float, fail_at: int | None = None) -> list[str]:
    """clean_png in the writer, each call ``seconds`` slower (on the writer's threads); the ``fail_at``-th call fails
    as a full disk would. The names of the threads that encoded."""
    real, calls, threads = writer.clean_png, [], []
    lock = threading.Lock()

    def encode(image, **kw):
        with lock:
            calls.append(1)
            n = len(calls)
        threads.append(threading.current_thread().name)
        time.sleep(seconds)
        if n == fail_at:
            raise OSError(28, "No space left on device")
        return real(image, **kw)

    monkeypatch.setattr(writer, "clean_png", encode)
    return threads


def test_the_next_batch_runs_while_the_last_is_written_and_each_is_on_disk_before_its_event(tmp_path, monkeypatch):
    journal = Journal.init(tmp_path / "j")
    threads = slow_encoding(monkeypatch, 0.3)
    seen, on_disk = [], []

    def on_event(event):
        seen.append(event)
        if isinstance(event, ev.BatchFinished):
            run = list_runs(journal)[0]
            manifest = json.loads((run.folder / MANIFEST).read_text())
            named = {c["index"]: c["file"] for c in manifest["cells"] if c.get("file")}
            on_disk.append(all(i in named and (run.folder / named[i]).is_file() for i in event.cells))

    run = execute(grid(), RunOptions(model="shapes", max_batch=2), journal, on_event=on_event)
    assert run.state == "finished" and len(run.done) == 6 and on_disk == [True, True, True]
    order = [(type(e).__name__, e.batch) for e in seen if isinstance(e, (ev.BatchStarted, ev.BatchFinished))]
    assert order.index(("BatchStarted", 1)) < order.index(("BatchFinished", 0))  # the device did not wait for the disk
    assert [e.batch for e in seen if isinstance(e, ev.BatchFinished)] == [0, 1, 2]  # written in order
    assert all(name.startswith("promptism-encode") for name in threads)
    assert isinstance(seen[-1], ev.RunFinished) and run.record.layout == [[0, 1], [2, 3], [4, 5]]


def test_a_failed_write_fails_the_run_in_one_line_and_keeps_what_was_written(tmp_path, monkeypatch):
    journal = Journal.init(tmp_path / "j")
    slow_encoding(monkeypatch, 0, fail_at=3)  # the first image of the second batch
    with pytest.raises(OSError, match="No space left"):
        execute(grid(), RunOptions(model="shapes", max_batch=2), journal)
    run = list_runs(journal)[0]
    assert run.state == "failed" and "No space left on device" in run.record.error and "\n" not in run.record.error
    assert [c.index for c in run.done] == [0, 1] and run.record.layout == [[0, 1]]
    assert all(Image.open(run.image(c)).size == (32, 32) for c in run.done)
    assert sorted(p.name for p in run.folder.iterdir()) == sorted([MANIFEST, *(c.file for c in run.done)])


def test_a_run_error_in_the_engine_still_writes_the_batches_it_finished(tmp_path, monkeypatch):
    """An error after some batches (here: the second call of the pipeline) leaves the first batch written."""
    import workshop.runner.engine as engine

    journal = Journal.init(tmp_path / "j")
    real, calls = engine.Engine._call, []

    def failing(self, jobs):
        calls.append(1)
        if len(calls) == 2:
            raise RunError("out of memory making 2 image(s) of 32x32: use a smaller --size or --max-batch")
        return real(self, jobs)

    monkeypatch.setattr(engine.Engine, "_call", failing)
    slow_encoding(monkeypatch, 0.3)  # still being written when the engine fails
    with pytest.raises(RunError):
        execute(grid(), RunOptions(model="shapes", max_batch=2), journal)
    run = list_runs(journal)[0]
    assert run.state == "failed" and [c.index for c in run.done] == [0, 1] and run.image(run.done[0]).is_file()


@pytest.mark.parametrize("size, tile", [((512, 512), (256, 256)), ((1024, 768), (256, 192)), ((768, 512), (256, 171)),
                                        ((64, 64), (64, 64)), ((256, 256), (256, 256))])
def test_sheet_tiles_are_at_most_max_tile_a_side(size, tile):
    image = Image.new("RGB", size, (200, 30, 30))
    shrunk = sheet_tile(image)
    assert shrunk.size == tile and max(shrunk.size) <= MAX_TILE and shrunk.getpixel((5, 5)) == (200, 30, 30)
