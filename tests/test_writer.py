"""The background writer: batches are written while the next one runs, in order, each on disk (files, then the
manifest naming them) before its BatchFinished event; a failed write fails the run in one line and keeps what was
written; contact sheets are drawn from tiles of at most MAX_TILE pixels a side, as the batches come."""

import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

import workshop.runner.writer as writer
from journal import Journal
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner import events as ev
from workshop.errors import RunError
from workshop.runner.runs import MANIFEST, list_runs
from workshop.runner.execution import RunOptions, execute
from workshop.runner.sheet import MAX_TILE, MISSING, Sheet, contact_sheet, sheet_tile, tile_size

PROMPT = "a red circle on a blue background"


def grid(seeds="1-6"):
    return build_grid(spec_from({"prompt": PROMPT, "seeds": seeds}))


def slow_encoding(monkeypatch, seconds: float, fail_at: int | None = None) -> list[str]:
    """The writer's PNG encoder, each call ``seconds`` slower (on the writer's threads); the ``fail_at``-th call fails
    as a full disk would. The names of the threads that encoded."""
    real, calls, threads = writer.scratch_png, [], []
    lock = threading.Lock()

    def encode(pixels):
        with lock:
            calls.append(1)
            n = len(calls)
        threads.append(threading.current_thread().name)
        time.sleep(seconds)
        if n == fail_at:
            raise OSError(28, "No space left on device")
        return real(pixels)

    monkeypatch.setattr(writer, "scratch_png", encode)
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

    def failing(self, jobs, *prepared):
        calls.append(1)
        if len(calls) == 2:
            raise RunError("out of memory making 2 image(s) of 32x32: use a smaller --size or --max-batch")
        return real(self, jobs, *prepared)

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


def test_a_sheet_encoded_as_its_tiles_come_is_the_sheet_drawn_at_once():
    """Tiles added in any order (rows compressed as they complete, the header band last, one tile never added) make
    the very pixels of the sheet drawn from all images at once, the missing tile grey."""
    g = build_grid(spec_from({"prompt": PROMPT, "keywords": ["glowing", "striped"], "mode": "leave-one-out",
                              "seeds": "1-3"}))
    cells = [c.to_json() | {"index": c.index} for c in g.cells]
    rng = np.random.default_rng(3)
    images = {c["index"]: Image.fromarray(rng.integers(0, 256, (512, 384, 3), dtype=np.uint8)) for c in cells[:-1]}
    for labels in (True, False):
        whole = contact_sheet(cells, images, g.rows, g.cols, g.subgrids, "leave-one-out · 8 of 9 images", "Generated with x",
                              labels=labels)
        sheet = Sheet(cells, g.rows, g.cols, g.subgrids, tile_size(384, 512), "leave-one-out · 9 of 9 images",
                      "Generated with x", labels)
        for index in [4, 0, 1, 2, 7, 3, 6, 5]:
            sheet.add(index, sheet_tile(images[index]))
        data = sheet.png("leave-one-out · 8 of 9 images")
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(whole))
        assert whole.size == (sheet.layout.width, sheet.layout.height)
        last = sheet.layout.tiles[-1]
        assert np.asarray(whole)[last.y + 5, last.x + 5].tolist() == list(MISSING)
    assert max(tile_size(384, 512)) <= MAX_TILE
