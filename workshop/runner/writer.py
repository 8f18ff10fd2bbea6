"""The background writer: while the device makes the next batch, a finished batch's pixels are turned into PNGs (and
GIF animations), contact-sheet tiles and the scorer's inputs on a small thread pool (numpy and ISA-L's deflate release
the GIL), then written to the run folder by one committing thread in the order the batches finished — each batch's
files on disk before the manifest names them (``Run.add_images``), as when the runner wrote them itself. Its
``BatchFinished`` event is sent once the batch is on disk, so a client that sees it can read the images; then its
tiles go onto the contact sheets, which compress the rows they complete (``sheet.RunSheets``).

A crash loses only the batches the writer still holds (at most ``PENDING`` besides the one being written): the
manifest never names a file that is not there, and ``resume`` makes the rest. Run folders are scratch, so their PNGs
are made for speed (``png.scratch_png``); the journal re-encodes what it keeps at accept.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from journal import failpoints
from journal.images import clean_gif

from . import events as ev
from .engine import FinishedBatch
from .pixels import uint8_pixels
from .png import scratch_png
from .runs import Run
from .sheet import sheet_tile

PENDING = 2  # finished batches waiting to be written before the engine waits for the writer (bounds the memory)


def workers() -> int:
    """Encoding threads: one per core, at most 8 (a 1024² PNG takes tens of milliseconds of one core)."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class Kept:
    """What a run keeps of an image for its end, instead of the image: its contact-sheet tile, and its scorer input."""

    tile: Image.Image
    scoring: object | None = None  # the scorer's prepared tensor (``Scorer.prepare``), when the run is scored


def keep(image: Image.Image, prepare: Callable[[Image.Image], object] | None) -> Kept:
    return Kept(sheet_tile(image), prepare(image) if prepare else None)


class BatchWriter:
    """Writes the batches given to ``submit`` into ``run`` in the background; ``close`` waits for all of them. After
    a write fails nothing more is written, and ``submit`` raises its error."""

    def __init__(self, run: Run, *, on_event: Callable[[ev.Event], None], prepare: Callable | None = None,
                 on_written: Callable[[dict[int, Image.Image]], None] = lambda tiles: None,
                 before_save: Callable[[], None] = lambda: None):
        self.run = run
        self.on_event = on_event
        self.prepare = prepare
        self.on_written = on_written  # each batch's sheet tiles, once it is written (the contact sheets take them)
        self.before_save = before_save  # brings the record up to date before each batch's manifest is saved
        self.kept: dict[int, Kept] = {}  # by cell, for every image written
        self._pool = ThreadPoolExecutor(workers(), thread_name_prefix="promptism-encode")
        self._commit = ThreadPoolExecutor(1, thread_name_prefix="promptism-write")
        self._slots = threading.Semaphore(PENDING + 1)
        self._error: BaseException | None = None

    def submit(self, batch: FinishedBatch, animations: dict[int, list[Image.Image]]) -> None:
        """Hand over a finished batch (waits while PENDING batches are still unwritten); raises the error of an
        earlier write, if one failed."""
        self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            raise self._error
        images = [self._pool.submit(self._encode, batch.pixels[k]) for k in range(len(batch.cells))]
        gifs = {i: self._pool.submit(clean_gif, frames) for i, frames in animations.items()}
        self._commit.submit(self._write, batch, images, gifs)

    def _encode(self, pixels: np.ndarray) -> tuple[bytes, Kept]:
        pixels = uint8_pixels(pixels)
        return scratch_png(pixels), keep(Image.fromarray(pixels), self.prepare)

    def _write(self, batch: FinishedBatch, images: list[Future], gifs: dict[int, Future]) -> None:
        try:
            if self._error is not None:
                return
            encoded = [f.result() for f in images]
            animations = {i: f.result().data for i, f in gifs.items()}
            failpoints.hit("batch-held")  # encoded, not yet written: a crash here loses this batch alone
            self.before_save()
            self.run.add_images(batch.cells, [png for png, _ in encoded], animations, pool=self._pool)
            kept = dict(zip(batch.cells, (kept for _, kept in encoded)))
            self.kept.update(kept)
            self.on_event(ev.BatchFinished(batch=batch.number, cells=batch.cells, seconds=batch.seconds))
            self.on_written({i: k.tile for i, k in kept.items()})
        except BaseException as exc:  # noqa: BLE001 - kept for the run's thread, which fails the run with it
            self._error = exc
        finally:
            self._slots.release()

    def close(self) -> BaseException | None:
        """Wait until every batch handed over is written (or dropped after an error) and stop the threads; the error
        a write met, if one did."""
        self._commit.shutdown()
        self._pool.shutdown()
        return self._error
