"""The engine: runs jobs (one image each) through a diffusers pipeline in batches, reproducibly, with progress,
previews, cancellation and out-of-memory recovery. It yields each finished batch as soon as it is done, its pixels
already on the host (``pixels.host_pixels``), and goes straight on to the next: writing them is the caller's (the
background ``writer``), so the device never waits for PNG encoding.

Reproducibility: every image's starting noise comes from its own CPU ``torch.Generator`` seeded with its seed, so a
seed gives the same noise whatever the batch or device. A rerun with the same batch layout is bit-identical on the
CPU; the same image made alone or inside a batch differs only by float reduction order (≤ 1/255 per channel).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from journal import InvalidInput
from journal.images import open_image

from ..compose.editing import at_step, schedule
from ..compose.emphasis import has_emphasis, plain
from ..compose.networks import networks, without_networks
from ..errors import RunError, option
from . import events as ev
from .emphasis_encoder import A1111Encoder, WeightedEncoder, a1111_encode, family
from .emphasis_encoder import encode as weights_encode
from .embeddings import installed as installed_embeddings, load as load_embeddings
from .hires import Hires, second_pass, upscale_alone
from .masks import Mask, inpainting, overlaid, prepared
from .loras import activate
from .models import A1111
from .pixels import eight_bit, host_pixels
from .sd_upscale import SdUpscale, tile_seed

# SD 1.x/2.x latent -> RGB approximation: a cheap preview without running the VAE.
_LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]])


@dataclass(frozen=True)
class Job:
    """One image to make: everything that decides its pixels."""

    index: int
    prompt: str
    negative: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    strength: float | None = None  # img2img: how far to move from the init image
    init_image: Path | None = None
    sampler: str | None = None  # an A1111 sampler name (None: the run's own)
    model: str | None = None  # a model axis's name for it (None: the run's own)
    mask: Mask | None = None  # inpainting (masks.py): what of the init image is painted again

    @property
    def batch_key(self) -> tuple:
        return (self.model, self.sampler, self.steps, self.guidance, self.width, self.height, self.strength,
                str(self.init_image), networks(self.prompt), self.mask)

    @property
    def effective_steps(self) -> int:
        return self.steps if self.strength is None else max(1, int(self.steps * self.strength))


def plan_batches(jobs: list[Job], max_batch: int) -> list[list[int]]:
    """Jobs that can share a pipeline call (same model, sampler, steps, guidance, size, init image), in order, at most
    ``max_batch`` — each model's batches together, so a grid of several models loads each once."""
    groups: dict[tuple, list[int]] = {}
    for job in jobs:
        groups.setdefault(job.batch_key, []).append(job.index)
    models = list(dict.fromkeys(key[0] for key in groups))
    ordered = sorted(groups.items(), key=lambda item: models.index(item[0][0]))  # (stable: in order within a model)
    return [g[i : i + max_batch] for _, g in ordered for i in range(0, len(g), max_batch)]


@dataclass(frozen=True)
class FinishedBatch:
    """A batch as it leaves the device: its number, its cells, their pixels (NHWC on the host: see ``host_pixels``)
    and the seconds it took."""

    number: int
    cells: list[int]
    pixels: np.ndarray
    seconds: float


@dataclass(frozen=True)
class Conditioning:
    """A job's encoded prompt and negative through its steps, A1111's prompt schedule (``compose.editing``): each
    entry the last 0-based step it conditions and its tensors (prompt, negative[, pooled, negative pooled]); one entry
    for a prompt without editing."""

    entries: tuple[tuple[int, tuple], ...]

    def at(self, step: int) -> tuple:
        return next((tensors for end, tensors in self.entries if step <= end), self.entries[-1][1])

    @property
    def tokens(self) -> tuple[tuple[int, int], ...]:
        """How many tokens it has until which step: jobs alike in this can share a pipeline call (its tensors are
        stacked), others not — a longer prompt padded for a shorter would change the shorter's image."""
        out: list[tuple[int, int]] = []
        for end, tensors in self.entries:
            if out and out[-1][1] == tensors[0].shape[1]:
                out[-1] = (end, tensors[0].shape[1])
            else:
                out.append((end, tensors[0].shape[1]))
        return tuple(out)


class Cancelled(Exception):
    """The run was cancelled; finished batches were already yielded."""


class Interrupted(Exception):
    """The workers making the batches are gone (a Ray cluster lost): the run is left interrupted, to be resumed."""


class Engine:
    def __init__(self, pipe, *, on_event: Callable[[ev.Event], None] = lambda e: None,
                 cancel: Callable[[], bool] = lambda: False, preview_every: int = 0,
                 pick: Callable[[Job], object] | None = None, emphasis: str | None = A1111, clip_skip: int = 1,
                 emphasis_mode: str | None = None, tiling: bool = False,
                 variation: tuple[int, float] | None = None, hires: Hires | None = None,
                 sd_upscale: SdUpscale | None = None):
        """``pipe`` runs every batch, unless ``pick`` gives the pipeline of each batch (its first job's model and
        sampler); ``emphasis``: how prompts are encoded (``ParamsRecord.emphasis``: "a1111", or None for a run
        recorded before it, whose prompts compel weighs); ``clip_skip``, ``emphasis_mode``: A1111's, for its
        encoding; ``tiling``: A1111's (``circular``); ``variation``: A1111's variation seed and strength
        (``starting_noise``); ``hires``: A1111's hires fix, a second pass after each batch's first (``hires.py``);
        ``sd_upscale``: A1111's SD upscale, each image made as tiles of its upscaled init image (``sd_upscale.py``)."""
        self.pipe = pipe
        self.pick = pick or (lambda job: pipe)
        self.on_event = on_event
        self.cancel = cancel
        self.preview_every = preview_every
        self._img2img: dict[tuple, object] = {}  # image-to-image and inpainting pipelines, by model and sampler
        self._embeddings: dict[tuple[str | None, str, str], tuple] = {}
        self.emphasis, self.clip_skip, self.emphasis_mode, self.hires = emphasis, clip_skip, emphasis_mode, hires
        self.tiling, self.variation, self.sd_upscale = tiling, variation, sd_upscale
        self._embedding_files: dict | None = None  # the installs' embeddings by name (embeddings.installed)
        self._weights: dict[str | None, object] = {}  # by model: its prompt encoder, made for its first prompt
        self.layout: list[list[int]] = []  # the batches as actually run (after any out-of-memory split)
        self._steps_done = 0
        self._steps_total = 0
        self._started = 0.0
        self._interrupted = False

    def run(self, jobs: list[Job], layout: list[list[int]]) -> Iterator[FinishedBatch]:
        """Yield each finished batch; raise Cancelled when cancelled between steps."""
        by_index = {j.index: j for j in jobs}
        self._steps_total = sum(self._batch_steps([by_index[i] for i in b]) for b in layout)
        self._started = time.monotonic()
        max_batch = max((len(b) for b in layout), default=1)
        queue = [list(b) for b in layout]
        while queue:
            if self.cancel():
                raise Cancelled()
            batch = queue.pop(0)
            if len(batch) > max_batch:  # an earlier batch ran out of memory: keep to the size that worked
                queue[:0] = [batch[i : i + max_batch] for i in range(0, len(batch), max_batch)]
                continue
            batch_jobs = [by_index[i] for i in batch]
            pipe, conditionings = self._prepare(batch_jobs)
            if len(parts := self._alike(pipe, batch_jobs, conditionings)) > 1:  # prompts of different lengths
                self._steps_total += sum(self._batch_steps([by_index[i] for i in part]) for part in parts) - \
                    self._batch_steps(batch_jobs)
                queue[:0] = parts
                continue
            steps_before = self._steps_done
            started = time.monotonic()
            try:
                images = self._call(batch_jobs, pipe, conditionings)
            except torch.cuda.OutOfMemoryError:
                self._steps_done = steps_before  # the batch is redone in halves: its steps count again
                if len(batch) == 1 and self.sd_upscale is not None and self.sd_upscale.batch > 1:
                    raise RunError(f"out of GPU memory making {self.sd_upscale.batch} SD upscale tiles at once: use a "
                                   f"smaller {option('max-batch')} (the tiles made in one call)") from None
                if len(batch) == 1:
                    raise RunError(f"out of GPU memory even for a single image: use a smaller {option('size')} or "
                                   "model") from None
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                max_batch = (len(batch) + 1) // 2
                self.on_event(ev.BatchSplit(cells=batch, size=len(batch), new_size=max_batch))
                queue[:0] = [batch[:max_batch], batch[max_batch:]]
                continue
            except (RuntimeError, MemoryError) as exc:
                if not out_of_cpu_memory(exc):
                    raise
                job = by_index[batch[0]]
                raise RunError(f"out of memory making {len(batch)} image(s) of {job.width}x{job.height}: use a smaller "
                               f"{option('size')} or {option('max-batch')}") from None
            self.layout.append(batch)
            yield FinishedBatch(len(self.layout) - 1, batch, images, time.monotonic() - started)

    def _prepare(self, jobs: list[Job]) -> tuple[object, list[Conditioning | None]]:
        """The batch's pipeline with its LoRAs (its prompts' tags, or none) and embeddings in place, and each job's
        conditioning (None: a pipeline without a reusable ``encode_prompt``, given the strings)."""
        first = jobs[0]
        pipe = self.pick(first)
        if hasattr(pipe, "get_list_adapters"):
            activate(pipe, networks(first.prompt))
        if self._embedding_files is None:  # the installs' embeddings, listed once a run (not walked every batch)
            self._embedding_files = installed_embeddings()
        load_embeddings(pipe, [text for j in jobs for text in (j.prompt, j.negative)], self._embedding_files)
        return pipe, [self._conditioning(pipe, job) for job in jobs]

    def _alike(self, pipe, jobs: list[Job], conditionings: list[Conditioning | None]) -> list[list[int]]:
        """The batch's jobs in groups of the same prompt length at every step (``Conditioning.tokens``), in order."""
        seconds = self._second(pipe, jobs)[1] if self.hires else [None] * len(jobs)  # (and in a hires fix's pass)
        groups: dict[tuple, list[int]] = {}
        for job, conditioning, second in zip(jobs, conditionings, seconds):
            groups.setdefault((conditioning and conditioning.tokens, second and second.tokens), []).append(job.index)
        return list(groups.values())

    def _job_steps(self, job: Job) -> int:
        """The denoising steps a job's batch runs: its own, and a hires fix's second pass's."""
        return job.effective_steps + (self.hires.steps_of(job) if self.hires else 0)

    def _batch_steps(self, jobs: list[Job]) -> int:
        """The denoising steps a batch runs: its first job's, or with SD upscale, its tiles' pipeline calls'."""
        if self.sd_upscale is None:
            return self._job_steps(jobs[0])
        tiles = len(jobs) * self.sd_upscale.tiling((jobs[0].width, jobs[0].height)).count
        return math.ceil(tiles / self.sd_upscale.batch) * jobs[0].effective_steps

    def _call(self, jobs: list[Job], pipe, conditionings: list[Conditioning | None]) -> np.ndarray:
        """One pipeline call for ``jobs`` on ``pipe`` (``_prepare``'s, with their ``conditionings``)."""
        first = jobs[0]
        batch_no = len(self.layout)
        self.on_event(ev.BatchStarted(batch=batch_no, cells=[j.index for j in jobs]))
        steps_before = self._steps_done
        self._interrupted = False
        if self.sd_upscale is not None:
            return host_pixels(self._tiled(jobs, pipe, conditionings, batch_no, steps_before))
        generators = [torch.Generator("cpu").manual_seed(j.seed) for j in jobs]
        kwargs = dict(
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=generators,
            output_type="pt",  # tensors: converted to 8 bits on the device, not image by image in PIL
            callback_on_step_end=self._callback(jobs, batch_no, conditionings),
            callback_on_step_end_tensor_inputs=["latents", *_scheduled_inputs(conditionings)],
            **_text_inputs(jobs, conditionings),
        )
        if first.init_image is None:
            kwargs.update(width=first.width, height=first.height)
            if self.variation is not None:  # (drawn from the generators the pipeline then goes on with)
                kwargs["latents"] = starting_noise(pipe, first.width, first.height, generators, *self.variation,
                                                   dtype=_latent_dtype(pipe, kwargs))
        elif first.mask is None:
            pipe = self._img2img_pipe(pipe, (first.model, first.sampler))
            init = _load_init(first.init_image, first.width, first.height)
            kwargs.update(image=[init] * len(jobs), strength=first.strength)
        else:  # inpainting: the masked part denoised, the rest kept (masks.py)
            pipe = self._inpaint_pipe(pipe, (first.model, first.sampler))
            whole = first.mask.area == "whole"  # (only the masked area: the init image as it is, cropped)
            made = prepared(first.mask, _load_init(first.init_image, *((first.width, first.height) if whole else ())),
                            first.width, first.height)
            kwargs.update(image=[made.start] * len(jobs), mask_image=[made.mask] * len(jobs), strength=first.strength,
                          width=first.width, height=first.height)
        if self.hires is not None:  # the first pass's latents (or pixels) go on to the second pass
            kwargs["output_type"] = self.hires.first_output
        filling = inpainting(pipe, made, [j.seed for j in jobs], first.mask.fill) if first.mask else nullcontext()
        with torch.inference_mode(), circular(pipe, self.tiling):
            with filling:
                images = pipe(**kwargs).images
            if self.hires is not None and not self._interrupted:
                images = (upscale_alone(pipe, self.hires, images, jobs) if self.hires.strength == 0 else
                          self._hires_pass(pipe, jobs, batch_no, kwargs, images))
            if self._interrupted:  # cut short: its images are not finished (a batch that got through is kept)
                self._steps_done = steps_before
                raise Cancelled()
            if first.mask is not None:
                images = overlaid(images, made)
            return host_pixels(images)

    def _conditioning(self, pipe, job: Job, first_pass: int | None = None) -> Conditioning | None:
        """``job``'s prompt and negative encoded for each step of their schedules (A1111 counts a second-order
        sampler's model calls as steps; ``first_pass``: the first pass's steps, where ``job`` is a hires fix's second),
        each distinct pair once per model and run, reused for every seed and batch."""
        order = 2 if getattr(pipe.scheduler, "order", 1) == 2 else 1
        steps, first = job.steps * order, None if first_pass is None else first_pass * order
        prompts = schedule(job.prompt, steps, first_pass=first)
        negatives = schedule(job.negative, steps, "the negative prompt", first_pass=first)
        entries = []
        for end in sorted({end for end, _ in prompts} | {end for end, _ in negatives}):
            key = (job.model, at_step(prompts, end), at_step(negatives, end))
            if key not in self._embeddings:
                self._embeddings[key] = self._encode(pipe, *key)
            if self._embeddings[key] is None:
                return None
            entries.append((end, self._embeddings[key]))
        return Conditioning(tuple(entries))

    def _encode(self, pipe, model: str | None, prompt: str, negative: str):
        """A1111's encoding where the pipeline's text encoders are CLIPs it knows (``emphasis_encoder``), else the
        pipeline's own (``backends`` refused weights for those). A run recorded before A1111's: the pipeline's own,
        and a prompt or negative in A1111's emphasis syntax has its words encoded so, then its weights applied by
        compel."""
        prompt, negative = without_networks(prompt), without_networks(negative)  # (A1111: a tag is no words)
        if self.emphasis == A1111 and family(pipe) is not None:
            if model not in self._weights:
                self._weights[model] = A1111Encoder(pipe, self.clip_skip, self.emphasis_mode)
            return a1111_encode(self._weights[model], prompt, negative)
        weighted = has_emphasis(prompt) or has_emphasis(negative)
        encode = getattr(pipe, "encode_prompt", None)
        if encode is None:
            return None
        try:
            out = encode(prompt=plain(prompt) if weighted else prompt, device=pipe.device, num_images_per_prompt=1,
                         do_classifier_free_guidance=True, negative_prompt=plain(negative) if weighted else negative)
        except TypeError:
            return None
        if not (isinstance(out, tuple) and len(out) in (2, 4) and all(torch.is_tensor(t) for t in out)):
            return None
        if not weighted:
            return tuple(out)
        if model not in self._weights:
            self._weights[model] = WeightedEncoder(pipe)
        return weights_encode(self._weights[model], prompt, negative, tuple(out))

    def _second(self, pipe, jobs: list[Job]) -> tuple[list[Job], list[Conditioning | None]]:
        """The jobs as a hires fix's second pass runs them (its steps, no strength), and their conditioning: A1111
        schedules prompt editing over the second pass's steps again."""
        second = [replace(j, steps=self.hires.steps_of(j), strength=None) for j in jobs]
        return second, [self._conditioning(pipe, j, first_pass=f.steps) for j, f in zip(second, jobs)]

    def _hires_pass(self, pipe, jobs: list[Job], batch_no: int, kwargs: dict, first):
        """A1111's hires fix's second pass over the first pass's output (``hires.second_pass``): image to image at the
        hires size, its steps counted and reported as its own."""
        second, conditionings = self._second(pipe, jobs)
        inputs = dict(callback_on_step_end=self._callback(second, batch_no, conditionings),
                      callback_on_step_end_tensor_inputs=["latents", *_scheduled_inputs(conditionings)],
                      **_text_inputs(second, conditionings))
        img2img = self._img2img_pipe(pipe, (jobs[0].model, jobs[0].sampler))
        return img2img(**second_pass(self.hires, first, jobs, kwargs["guidance_scale"], inputs)).images

    def _tiled(self, jobs: list[Job], pipe, conditionings: list[Conditioning | None], batch_no: int,
               steps_before: int) -> list[Image.Image]:
        """A1111's SD upscale of each job's image (``sd_upscale.py``): the init image upscaled and cut into tiles of
        the job's size, every job's tiles made image to image ``SdUpscale.batch`` at a time — tile ``k`` with its
        job's prompt and ``tile_seed`` — in 8 bits, then each job's laid back together."""
        first = jobs[0]
        img2img = self._img2img_pipe(pipe, (first.model, first.sampler))
        tiling = self.sd_upscale.tiling((first.width, first.height))
        source, boxes = self.sd_upscale.source(_load_init(first.init_image)), tiling.boxes()
        work = [(place, k) for place in range(len(jobs)) for k in range(len(boxes))]
        made: dict[tuple[int, int], Image.Image] = {}
        for start in range(0, len(work), self.sd_upscale.batch):
            chunk = work[start : start + self.sd_upscale.batch]
            tiles = [replace(jobs[place], seed=tile_seed(jobs[place].seed, k)) for place, k in chunk]
            conds = [conditionings[place] for place, _ in chunk]
            kwargs = dict(num_inference_steps=first.steps, guidance_scale=first.guidance, strength=first.strength,
                          image=[source.crop(boxes[k]) for _, k in chunk], output_type="pt",  # (cut as needed)
                          generator=[torch.Generator("cpu").manual_seed(t.seed) for t in tiles],
                          callback_on_step_end=self._callback(tiles, batch_no, conds),
                          callback_on_step_end_tensor_inputs=["latents", *_scheduled_inputs(conds)],
                          **_text_inputs(tiles, conds))
            with torch.inference_mode(), circular(pipe, self.tiling):
                images = img2img(**kwargs).images
            if self._interrupted:  # cut short: the batch's images are not finished
                self._steps_done = steps_before
                raise Cancelled()
            for key, pixels in zip(chunk, eight_bit(images).permute(0, 2, 3, 1).cpu().numpy()):
                made[key] = Image.fromarray(pixels)  # (8 bits, as A1111's tiles are images when it lays them down)
        return [tiling.combined([made[place, k] for k in range(len(boxes))]) for place in range(len(jobs))]

    def _inpaint_pipe(self, pipe, key: tuple):
        """The inpainting pipeline made of ``pipe``'s parts (a model without an inpainting UNet inpaints by keeping
        the unmasked latents, as A1111 does with it)."""
        return self._made_from(pipe, ("inpaint", *key), "AutoPipelineForInpainting")

    def _img2img_pipe(self, pipe, key: tuple):
        """The image-to-image pipeline made of ``pipe``'s parts (its scheduler too)."""
        if type(pipe).__name__.endswith("Img2ImgPipeline"):  # already one (the SDXL refiner): its config kept
            return pipe
        return self._made_from(pipe, key, "AutoPipelineForImage2Image")

    def _made_from(self, pipe, key: tuple, auto: str):
        """diffusers' ``auto`` pipeline made from ``pipe``'s parts, once per run and ``key`` (model and sampler)."""
        if key not in self._img2img:
            import diffusers

            self._img2img[key] = made = getattr(diffusers, auto).from_pipe(pipe)
            made.set_progress_bar_config(disable=True)
        return self._img2img[key]

    def _callback(self, jobs: list[Job], batch_no: int, conditionings: list[Conditioning | None]):
        steps = jobs[0].effective_steps
        cells = [j.index for j in jobs]
        changes = {end + 1 for c in conditionings if c is not None for end, _ in c.entries[:-1]}

        def on_step_end(pipe, step: int, timestep, tensors: dict) -> dict:
            self._step_done(batch_no, cells, step, steps)
            if step + 1 in changes:  # prompt editing: the next step's conditioning
                tensors.update(_step_inputs(pipe, conditionings, step + 1, tensors))
            if self.preview_every and (step + 1) % self.preview_every == 0 and step + 1 < steps:
                if (previews := latent_preview(tensors["latents"], getattr(pipe, "vae_scale_factor", 8))) is not None:
                    self.on_event(ev.Preview(batch=batch_no, cells=cells, step=step + 1, images=previews))
            if self.cancel() and step + 1 < steps:
                pipe._interrupt = True  # diffusers skips the remaining steps
                self._interrupted = True
            return tensors

        return on_step_end

    def _step_done(self, batch_no: int, cells: list[int], step: int, steps: int) -> None:
        """Count a finished denoising / optimisation step and report it with the run's rate and ETA."""
        self._steps_done += 1
        elapsed = time.monotonic() - self._started
        rate = self._steps_done / elapsed if elapsed > 0 else 0.0
        eta = (self._steps_total - self._steps_done) / rate if rate else None
        self.on_event(ev.Step(batch=batch_no, cells=cells, step=step + 1, steps=steps, done=self._steps_done,
                              total=self._steps_total, it_per_s=rate, eta_s=eta))


_NAMES = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")


def _text_inputs(jobs: list[Job], conditionings: list[Conditioning | None]) -> dict:
    """The first step's prompt embeddings of the batch (the strings, for a pipeline that encodes them itself)."""
    if conditionings[0] is None:
        return {"prompt": [j.prompt for j in jobs], "negative_prompt": [j.negative for j in jobs]}
    encoded = [c.at(0) for c in conditionings]
    return {name: torch.cat([e[k] for e in encoded]) for k, name in enumerate(_NAMES[: len(encoded[0])])}


def _scheduled_inputs(conditionings: list[Conditioning | None]) -> list[str]:
    """The pipeline's tensors the step callback replaces where a prompt is edited during sampling."""
    edited = [c for c in conditionings if c is not None and len(c.entries) > 1]
    if not edited:
        return []
    return ["prompt_embeds", "add_text_embeds"] if len(edited[0].entries[0][1]) == 4 else ["prompt_embeds"]


def _step_inputs(pipe, conditionings: list[Conditioning], step: int, tensors: dict) -> dict:
    """The batch's conditioning from 0-based ``step`` on, as the pipeline holds it: the negative's rows before the
    prompt's where it guides (classifier-free), and SDXL's pooled embeddings the same way."""
    encoded = [c.at(step) for c in conditionings]
    stacked = [torch.cat([e[k] for e in encoded]) for k in range(len(encoded[0]))]
    guided = getattr(pipe, "do_classifier_free_guidance", True)
    out = {"prompt_embeds": torch.cat([stacked[1], stacked[0]]) if guided else stacked[0]}
    if len(stacked) == 4:
        out["add_text_embeds"] = torch.cat([stacked[3], stacked[2]]) if guided else stacked[2]
    return {name: value.to(tensors[name]) for name, value in out.items()}
@contextmanager
def circular(pipe, on: bool) -> Iterator[None]:
    """A1111's Tiling while the block runs: every Conv2d of ``pipe``'s UNet and VAE pads circularly, so the image
    wraps round (its left edge continues its right, its top its bottom); their own padding back after, so the warm
    pipeline's next run is untouched."""
    if not on:
        yield
        return
    convs = [m for part in (pipe.unet, pipe.vae) for m in part.modules() if isinstance(m, torch.nn.Conv2d)]
    before = [m.padding_mode for m in convs]
    try:
        for conv in convs:
            conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in zip(convs, before):
            conv.padding_mode = mode


def starting_noise(pipe, width: int, height: int, generators: list, seed: int, strength: float, *, dtype) -> torch.Tensor:
    """A batch's starting latents with A1111's variation seed: each image's noise — drawn from its own generator as
    the pipeline's ``prepare_latents`` draws it (diffusers' ``randn_tensor``, same shape, device and dtype; the
    pipeline scales it by the scheduler's ``init_noise_sigma`` as ever) — slerped ``strength`` of the way toward the
    noise of ``seed`` (the same for every image of the run). Strength 0 is the image's own noise, bit for bit."""
    from diffusers.utils.torch_utils import randn_tensor

    shape = (len(generators), pipe.unet.config.in_channels, int(height) // pipe.vae_scale_factor,
             int(width) // pipe.vae_scale_factor)
    device = pipe._execution_device
    own = randn_tensor(shape, generator=generators, device=device, dtype=dtype)
    if strength == 0:
        return own
    other = randn_tensor(shape, generator=[torch.Generator("cpu").manual_seed(seed) for _ in generators],
                         device=device, dtype=dtype)
    return torch.stack([slerp(strength, a, b) for a, b in zip(own, other)])


def slerp(t: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of one image's noise (channels, height, width) ``t`` of the way from ``low`` to
    ``high``, as A1111's variation seed interpolates: along each column of each channel (its vectors run down the
    height), in float32; straight interpolation where the two are all but parallel (the angle's cosine averaging
    over 0.9995), where the sphere's formula would divide by nearly nothing."""
    a, b = low.float(), high.float()
    cos = ((a / a.norm(dim=1, keepdim=True)) * (b / b.norm(dim=1, keepdim=True))).sum(1)
    if cos.mean() > 0.9995:
        return (a * (1 - t) + b * t).to(low.dtype)
    angle = torch.acos(cos.clamp(-1, 1))
    sine = torch.sin(angle)
    mixed = (torch.sin((1 - t) * angle) / sine).unsqueeze(1) * a + (torch.sin(t * angle) / sine).unsqueeze(1) * b
    return mixed.to(low.dtype)


def _latent_dtype(pipe, kwargs: dict):
    """The dtype a pipeline's ``prepare_latents`` draws in: its prompt embeddings' (those handed in, else its text
    encoder's, as it encodes them)."""
    if "prompt_embeds" in kwargs:
        return kwargs["prompt_embeds"].dtype
    encoder = getattr(pipe, "text_encoder_2", None) or getattr(pipe, "text_encoder", None) or pipe.unet
    return encoder.dtype


def out_of_cpu_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation the machine refused: torch's CPU allocator (a RuntimeError) or Python's own."""
    return isinstance(exc, MemoryError) or "DefaultCPUAllocator" in str(exc) or "can't allocate memory" in str(exc)


def latent_preview(latents: torch.Tensor, scale: int = 8) -> list[Image.Image] | None:
    """A cheap RGB look at SD-style 4-channel latents (no VAE): a linear map, upscaled by the VAE's ``scale`` to the
    image's size."""
    if latents.ndim != 4 or latents.shape[1] != 4:
        return None
    rgb = torch.einsum("bchw,cr->bhwr", latents.detach().float().cpu(), _LATENT_RGB)
    rgb = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    return [Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST) for a in rgb]


def _load_init(path: Path, width: int | None = None, height: int | None = None) -> Image.Image:
    """The init image at the run's size (None: its own), opened as the journal opens every image (bounded in
    pixels)."""
    try:
        image = open_image(path)
    except InvalidInput as exc:
        raise RunError(f"{option('init-image')}: {exc.message}") from None
    image = image.convert("RGB")
    return image if width is None else image.resize((width, height), Image.LANCZOS)
