"""The engine for the CLIP-guided backend: the diffusers engine's batching, progress events, out-of-memory halving and
cancel, calling a ``GuidedPipeline`` per batch. Previews are the current frames; ``animate_every`` keeps every k-th
frame (and the last) per image for its animation, at most 256 pixels a side; a cancel mid-batch keeps the batch's latest frames, and
``stopped_at`` says after how many steps each such image stopped.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..contract import GuidedSettings
from . import events as ev
from .engine import Cancelled, Engine, Job, _load_init
from .guided import GuidedPipeline
from .pixels import host_pixels


FRAME_SIDE = 256


class GuidedEngine(Engine):
    def __init__(self, pipe: GuidedPipeline, settings: GuidedSettings, *, animate_every: int = 0, **kw):
        super().__init__(pipe, **kw)
        self.settings = settings
        self.animate_every = animate_every
        self.frames: dict[int, list[Image.Image]] = {}  # job index → animation frames
        self.stopped_at: dict[int, int] = {}  # job index → steps run, for images cut short by a cancel

    def run(self, jobs: list[Job], layout: list[list[int]]):
        yield from super().run(jobs, layout)
        if self.stopped_at:  # the last batch was cut short and kept: the run is still a cancelled one
            raise Cancelled()

    def _prepare(self, jobs: list[Job]) -> tuple[GuidedPipeline, list[None]]:
        """The guided pipeline, which takes its prompts as strings (of any length, in one batch: no conditioning)."""
        return self.pipe, [None] * len(jobs)

    def _call(self, jobs: list[Job], pipe, conditionings) -> np.ndarray:
        first = jobs[0]
        batch_no = len(self.layout)
        cells = [j.index for j in jobs]
        self.on_event(ev.BatchStarted(batch=batch_no, cells=cells))
        if self.animate_every:
            for j in jobs:
                self.frames[j.index] = []

        def on_step(step: int, losses, frames) -> bool:
            self._step_done(batch_no, cells, step, first.steps)
            animate = self.animate_every and step % self.animate_every == 0
            preview = self.preview_every and (step + 1) % self.preview_every == 0 and step + 1 < first.steps
            if animate or preview:
                images = frames()
                if animate:
                    for j, image in zip(jobs, images):
                        self.frames[j.index].append(_thumbnail(image))
                if preview:
                    self.on_event(ev.Preview(batch=batch_no, cells=cells, step=step + 1, images=images))
            return self.cancel() and step + 1 < first.steps

        init = _load_init(first.init_image, first.width, first.height) if first.init_image else None
        images, done = self.pipe([j.prompt for j in jobs], [j.negative for j in jobs], [j.seed for j in jobs],
                                 width=first.width, height=first.height,
                                 steps=first.steps, settings=self.settings, init_image=init, on_step=on_step)
        if done < first.steps:
            self.stopped_at.update((j.index, done) for j in jobs)
        if self.animate_every:
            for j, image in zip(jobs, images):
                self.frames[j.index].append(_thumbnail(image))  # the animation ends on the image itself
        return host_pixels(images)


def _thumbnail(image: Image.Image) -> Image.Image:
    """Animation frames at most FRAME_SIDE pixels a side: hundreds of full-size frames would fill the memory."""
    if max(image.size) <= FRAME_SIDE:
        return image
    frame = image.copy()
    frame.thumbnail((FRAME_SIDE, FRAME_SIDE), Image.LANCZOS)
    return frame
