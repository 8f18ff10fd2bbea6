"""Running a grid end to end: check the inputs, load the model, run the engine, persist each batch, score, draw the
contact sheet, measure the compute — and rerun a journal experiment to check it reproduces.

Everything a run needs is checked before its folder is created, so bad input never leaves anything half-written.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from journal import InvalidInput, Journal, ModelInfo
from journal.images import clean_png, open_image, sha256_file
from journal.text import quoted

from ..compose.grid import Grid
from . import events as ev
from .devices import EnergyMeter, cpu_threads, device_name, pick_device, using_threads
from .engine import Cancelled, Engine, Job, plan_batches
from .errors import RunCancelled, RunError
from .guided import GuidedPipeline, GuidedSettings, parse_spec, prompt_parts
from .guided_engine import GuidedEngine
from .models import GUIDED, GUIDED_MAX_STEPS, ModelSource, load_pipeline, resolve
from .options import DEFAULT_STRENGTH, RunOptions, check_options
from .runs import Run, new_run_id
from .scoring import keyword_effects, load_scorer, score_cells
from .sheet import contact_sheet


@dataclass(frozen=True)
class _Init:
    path: Path
    given: str
    parent: int | None


def check_backend(source: ModelSource, options: RunOptions) -> None:
    """Options that belong to the other backend are refused, not silently ignored."""
    if source.kind == "guided" and options.guidance is not None:
        raise RunError(f"the {GUIDED} backend has no guidance scale: leave out --guidance")
    if source.kind == "guided" and options.strength is not None:
        raise RunError(f"the {GUIDED} backend has no strength: it starts from the init image's own latent (fewer --steps "
                       "keep more of it); leave out --strength")
    if source.kind != "guided" and (options.guided or options.animate_every):
        raise RunError(f"--lr, --cutouts, --tv, --no-quantize and --animate are for the {GUIDED} backend; {source.id} is a diffusion "
                       f"model (use --model {GUIDED}:<decoder>+<clip>)")


def _resolve_init(journal: Journal | None, given: str | None) -> _Init | None:
    if given is None:
        return None
    if given.startswith("#"):
        try:
            number = int(given[1:])
        except ValueError:
            raise RunError(f"--init-image {quoted(given)}: write #N for experiment N, or a file path") from None
        if journal is None:
            raise RunError(f"--init-image {given}: no experiment #{number}; the journal does not exist yet, so pass an "
                           "image file")
        exp = journal.get(number)
        path = journal.image_path(exp, exp.images[0])
        if not path.is_file():
            raise RunError(f"--init-image {given}: experiment #{exp.number}'s image {path} is missing from the journal "
                           "(run `promptism doctor`)")
        init = _Init(path, given, exp.number)
    else:
        path = Path(given).expanduser().absolute()
        init = _Init(path, str(path), None)
    try:
        image = open_image(path)  # bounded in pixels, like every image promptism opens
    except InvalidInput as exc:
        raise RunError(f"--init-image: {exc}") from None
    if min(image.size) < 8:
        raise RunError(f"--init-image {init.given} is {image.width}x{image.height}; it must be at least 8x8")
    return init


def _jobs(cells: list[dict], width: int, height: int, init: _Init | None, strength: float | None) -> list[Job]:
    """One job per cell record (as in a run manifest or an experiment's grid); a CLIP-guided image kept from a cancel
    reruns the steps it had."""
    return [Job(c["index"], c["prompt"], c["negative"], c["seed"], c.get("steps_done", c["steps"]), c["guidance"], width,
                height, strength if init else None, init.path if init else None) for c in cells]


@dataclass(frozen=True)
class Prepared:
    """A run checked, its model (and scorer) loaded, its cells and batches planned — and nothing written yet."""

    manifest: dict  # the run's manifest, less its id
    pipe: object
    jobs: list[Job]
    layout: list[list[int]]
    scorer: object | None
    device: object  # torch.device
    options: RunOptions


def execute(grid: Grid, options: RunOptions, journal: Journal, *, on_event: Callable[[ev.Event], None] = lambda e: None,
            cancel: Callable[[], bool] = lambda: False) -> Run:
    """Run every cell of ``grid``; the returned run is finished or cancelled, its images already on disk."""
    return start(prepare(grid, options, journal, on_event=on_event), journal, on_event=on_event, cancel=cancel)


def prepare(grid: Grid, options: RunOptions, journal: Journal | None, *,
            on_event: Callable[[ev.Event], None] = lambda e: None) -> Prepared:
    """Check everything the run needs and load its model: RunError for bad input, before anything is written.
    ``journal`` is None where the command will create it (then ``#N`` init images name nothing)."""
    check_options(options)
    init = _resolve_init(journal, options.init_image)
    source = resolve(options.model, allow_download=options.allow_download)
    check_backend(source, options)
    device = pick_device(options.device)
    on_event(ev.Loading(model=source.id, device=device_name(device)))
    pipe = load_pipeline(source, device, allow_pickle=options.allow_pickle)
    guided = (options.guided or GuidedSettings()) if source.kind == "guided" else None
    if guided:
        check_guided(pipe, guided, grid, options.size)
    clip = source.clip if options.clip is None else options.clip
    scorer = None
    if clip and clip != "none":
        on_event(ev.Loading(model=clip, device=device_name(device), part="scorer"))
        scorer = load_scorer(clip, device, allow_pickle=options.allow_pickle, allow_download=options.allow_download)
    steps = options.steps or source.steps
    width, height = options.size or (native_size(pipe),) * 2
    guidance = None if guided else (source.guidance if options.guidance is None else options.guidance)
    cells = [{**c.to_json(), "steps": c.params.get("steps", steps), "guidance": c.params.get("guidance", guidance)}
             for c in grid.cells]
    strength = None if guided else DEFAULT_STRENGTH if options.strength is None else options.strength
    jobs = _jobs(cells, width, height, init, strength)
    check_steps(source, pipe, max(j.steps for j in jobs))
    if init and strength and (short := min(jobs, key=lambda j: j.steps)).steps * strength < 1:
        raise RunError(f"{short.steps} steps at strength {strength} leave no step to run from the init image: "
                       f"use at least {math.ceil(1 / strength)} steps or a higher --strength")
    layout = plan_batches(jobs, options.max_batch)
    spec = grid.spec
    manifest = {
        "model": {"id": source.id, "kind": source.kind, "description": source.description, "source": str(source.path),
                  "info": asdict(model_info(source, pipe))},
        "spec": {"mode": spec.mode, "prompt": spec.prompt.render(), "base": spec.prompt.base, "negative": spec.prompt.negative,
                 "keywords": spec.prompt.enabled, "terms": grid.terms, "seeds": list(spec.seeds),
                 "axes": {n: f"{a.kind}={','.join(map(str, a.values))}" for n, a in spec.axes.items()}},
        "params": {"steps": steps, "guidance": guidance, "width": width, "height": height,
                   "strength": strength if init else None, "init_image": init.given if init else None,
                   "init_sha256": sha256_file(init.path) if init else None, "parent": init.parent if init else None,
                   "scheduler": None if guided else type(pipe.scheduler).__name__}
                  | (guided_params(pipe, guided, options.animate_every) if guided else {}),
        "grid": {"rows": grid.rows, "cols": grid.cols, "subgrids": grid.subgrids},
        "cells": cells,
        "planned_layout": layout,
        "clip": clip if scorer else None,
        "allow_pickle": options.allow_pickle,  # what the scorer may load: settling an interrupted run needs it again
        "compute": _compute_record(device),
    }
    return Prepared(manifest, pipe, jobs, layout, scorer, device, options)


def start(prepared: Prepared, journal: Journal, *, on_event: Callable[[ev.Event], None] = lambda e: None,
          cancel: Callable[[], bool] = lambda: False) -> Run:
    """Create the run's folder in ``journal`` and run it (see ``prepare``)."""
    run = Run.create(journal, {"id": new_run_id(), **prepared.manifest})
    return _run(run, prepared.pipe, prepared.jobs, prepared.layout, prepared.scorer, prepared.device, prepared.options,
                on_event, cancel)


def check_steps(source: ModelSource, pipe, steps: int) -> None:
    """At most as many steps as the model can take: a diffusion scheduler's training timesteps (diffusers refuses
    more only once the run has begun), or GUIDED_MAX_STEPS optimisation steps for the CLIP-guided backend."""
    if isinstance(pipe, GuidedPipeline):
        most, why = GUIDED_MAX_STEPS, f"the {GUIDED} backend"
    else:
        most = getattr(getattr(pipe.scheduler, "config", None), "num_train_timesteps", None)
        why = f"{source.id} (its scheduler has {most} timesteps)"
    if isinstance(most, int) and steps > most:
        raise RunError(f"steps must be at most {most} for {why}, not {steps}")


def model_info(source: ModelSource, pipe) -> ModelInfo:
    """What is credited: a local folder by its name (its full path stays in the private run and grid records)."""
    if isinstance(pipe, GuidedPipeline):
        return ModelInfo(id=pipe.spec.credit, pipeline=f"{type(pipe).__name__} ({type(pipe.decoder.model).__name__})")
    credit = source.path.name if source.kind == "local" else source.id
    return ModelInfo(id=credit, revision=source.revision, pipeline=type(pipe).__name__, scheduler=type(pipe.scheduler).__name__)


def check_guided(pipe: GuidedPipeline, settings: GuidedSettings, grid: Grid, size: tuple[int, int] | None) -> None:
    """Everything a CLIP-guided run could trip on later, checked before its folder exists."""
    for cell in grid.cells:
        prompt_parts(cell.prompt, cell.negative)
        if "guidance" in cell.params:
            raise RunError(f"the {GUIDED} backend has no guidance scale: take the guidance axis out of the grid")
    if not settings.quantize and pipe.decoder.kind != "vq":
        raise RunError(f"--no-quantize is for VQGAN (VQModel) decoders; {pipe.spec.decoder} is an AutoencoderKL")
    factor = pipe.decoder.factor
    if size and (size[0] % factor or size[1] % factor):
        raise RunError(f"size {size[0]}x{size[1]}: this decoder needs multiples of {factor}")


def native_size(pipe) -> int:
    if isinstance(pipe, GuidedPipeline):
        return pipe.native_size
    return pipe.unet.config.sample_size * pipe.vae_scale_factor


def guided_params(pipe: GuidedPipeline, settings: GuidedSettings, animate_every: int) -> dict:
    """The run parameters of a CLIP-guided run, beside steps, size, seeds and init image (all flat, as the journal
    keeps parameters)."""
    credit = parse_spec(pipe.spec.credit)  # short names: a local path stays in the private grid record only
    return {"backend": GUIDED, "decoder": credit.decoder, "decoder_class": type(pipe.decoder.model).__name__,
            "clips": list(credit.clips), **asdict(settings), "animate_every": animate_every}


def make_engine(pipe, params: dict, *, on_event, cancel, preview_every: int = 0) -> Engine:
    """The engine for ``pipe``: diffusers, or CLIP-guided with the settings recorded in ``params``."""
    if not isinstance(pipe, GuidedPipeline):
        return Engine(pipe, on_event=on_event, cancel=cancel, preview_every=preview_every)
    settings = GuidedSettings(**{k: params[k] for k in GuidedSettings.__dataclass_fields__})
    return GuidedEngine(pipe, settings, animate_every=params.get("animate_every", 0), on_event=on_event, cancel=cancel,
                        preview_every=preview_every)


def _run(run: Run, pipe, jobs: list[Job], layout: list[list[int]], scorer, device, options: RunOptions, on_event, cancel) -> Run:
    on_event(ev.RunStarted(run=run.id, cells=len(jobs), batches=len(layout), model=run.manifest["model"]["id"],
                           device=device_name(device)))
    meter = EnergyMeter(device)
    meter.start()
    started = time.monotonic()
    engine = make_engine(pipe, run.manifest["params"], on_event=on_event, cancel=cancel, preview_every=options.preview_every)
    images: dict[int, Image.Image] = {}
    state = "finished"
    try:
        for indices, batch_images in engine.run(jobs, layout):
            run.add_images(indices, batch_images, animations=_animations(engine, indices))
            images.update(zip(indices, batch_images))
    except Cancelled:
        state = "cancelled"
    except Exception as exc:
        run.finish("failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    seconds = time.monotonic() - started
    energy = meter.stop_wh()
    extra = {"compute": {**run.manifest["compute"], "seconds": round(seconds, 3), "energy_wh": energy,
                         "co2_g": round(energy * options.co2_g_per_kwh / 1000, 4) if energy is not None else None,
                         "co2_g_per_kwh": options.co2_g_per_kwh}}
    cells = run.manifest["cells"]
    for index, steps_done in getattr(engine, "stopped_at", {}).items():
        cells[index]["steps_done"] = steps_done  # a CLIP-guided image kept from a cancel: its latest frame
    run.finish(state, **extra, **_conclude(run, images, scorer))
    on_event(ev.RunFinished(run=run.id, state=state, images=len(images), seconds=seconds))
    return run


def settle(run: Run) -> Run:
    """A run whose process died (``interrupted``) gets what a cancelled run has: its finished images scored with the
    run's scorer, keyword effects, contact sheets, and its state recorded. Other runs are left as they are."""
    if run.state != "interrupted" or run.manifest["state"] != "running":
        return run
    m = run.manifest
    try:
        images = {c["index"]: open_image(run.image(c)) for c in run.done}
    except InvalidInput as exc:
        raise RunError(f"run {run.id}: {exc}") from None
    scorer = None
    if m.get("clip") and images:
        scorer = load_scorer(m["clip"], pick_device("auto"), allow_pickle=bool(m.get("allow_pickle")))
    run.finish("interrupted", **_conclude(run, images, scorer))
    return run


def _conclude(run: Run, images: dict[int, Image.Image], scorer) -> dict:
    """Scores, keyword effects and contact sheets for the images a run finished, however it ended; the manifest
    fields to add."""
    extra = {}
    if scorer and images:
        m = run.manifest
        score_cells(scorer, m["cells"], images, m["spec"]["base"] or m["spec"]["prompt"])
        extra["effects"] = keyword_effects(scorer, m["cells"], images, m["spec"]["keywords"])
    if images:
        _write_sheets(run, images)
    return extra


def _compute_record(device) -> dict:
    """Where a run runs, recorded when it starts (so a run whose process dies has it too): the device and, on the
    CPU, torch's thread count, which ``rerun`` restores."""
    return {"device": device_name(device), "threads": cpu_threads(device)}


def _animations(engine: Engine, indices: list[int]) -> dict[int, list[Image.Image]]:
    frames = getattr(engine, "frames", {})
    return {i: frames.pop(i) for i in indices if i in frames}


def _write_sheets(run: Run, images: dict[int, Image.Image]) -> None:
    m = run.manifest
    g = m["grid"]
    title = f"{m['spec']['mode']} · {len(images)} of {len(m['cells'])} images"
    model = f"Generated with {m['model']['id']}"
    for name, labels in (("sheet.png", True), ("sheet-unlabelled.png", False)):
        sheet = contact_sheet(m["cells"], images, g["rows"], g["cols"], g["subgrids"], title, model, labels=labels)
        (run.folder / name).write_bytes(clean_png(sheet).data)


def compact_layout(cells: list[dict]) -> tuple[dict, list[dict]]:
    """Where ``cells`` (some of a grid's) go in a grid of their own: the rows, columns and sub-grids they came from,
    closed up over those none of them is in — so a rerun looks like the grid it reruns. The grid's shape, and each
    cell's row, col and subgrid."""
    def ranks(key: str) -> dict[int, int]:
        return {value: rank for rank, value in enumerate(sorted({c.get(key, 0) for c in cells}))}

    rows, cols, subgrids = ranks("row"), ranks("col"), ranks("subgrid")
    places = [{"row": rows[c.get("row", 0)], "col": cols[c.get("col", 0)], "subgrid": subgrids[c.get("subgrid", 0)]}
              for c in cells]
    return {"rows": len(rows), "cols": len(cols), "subgrids": len(subgrids)}, places


def rerun(journal: Journal, number: int, options: RunOptions, *, on_event=lambda e: None,
          cancel=lambda: False) -> tuple[Run, bool]:
    """Regenerate experiment #number with its recorded cells and batch layout; True if every image is byte-identical."""
    exp = journal.get(number)
    recorded = exp.grid or {}
    if "cells" not in recorded or "picked" not in recorded:
        raise RunError(f"#{number} was not made by promptism's runner (it was imported), so it cannot be rerun")
    p = exp.params
    init_given = p.get("init_image")
    init = _resolve_init(journal, init_given) if init_given else None
    if init and p.get("init_sha256") and sha256_file(init.path) != p["init_sha256"]:
        raise RunError(f"the init image {init.given} has changed since #{number} was made")
    source = resolve(recorded.get("model_source") or exp.model.id, allow_download=options.allow_download)
    device = pick_device(options.device)
    on_event(ev.Loading(model=source.id, device=device_name(device)))
    pipe = load_pipeline(source, device, allow_pickle=options.allow_pickle)
    picked = recorded["picked"]
    layout = [b for b in recorded["layout"] if set(b) & set(picked)]
    needed = {i for b in layout for i in b}
    cells = [c for c in recorded["cells"] if c["index"] in needed]
    jobs = _jobs(cells, p["width"], p["height"], init, p.get("strength"))
    shape, places = compact_layout(cells)
    threads = exp.compute.threads if exp.compute and device.type == "cpu" else None
    with using_threads(threads):  # the experiment's CPU threads: they decide float reduction order, so the pixels
        run = Run.create(journal, {
            "id": new_run_id(), "rerun_of": number,
            "model": {"id": source.id, "kind": source.kind, "description": source.description, "source": str(source.path),
                      "info": asdict(model_info(source, pipe))},
            "spec": {"mode": recorded.get("mode", "plain"), "prompt": exp.prompt, "base": exp.prompt,
                     "negative": exp.negative_prompt, "keywords": list(exp.keywords), "terms": list(exp.terms),
                     "seeds": recorded.get("seeds"),
                     "axes": recorded.get("axes", {})},
            "params": {**p, "parent": exp.parent},
            "grid": shape,
            "cells": [{**c, **place, "file": None, "index": k} for k, (c, place) in enumerate(zip(cells, places))],
            "planned_layout": layout, "clip": None, "compute": _compute_record(device),
        })
        # run cells are renumbered 0..n-1 for the run folder; the engine works in the recorded numbering
        renumber = {c["index"]: k for k, c in enumerate(cells)}
        collected: dict[int, Image.Image] = {}
        engine = make_engine(pipe, {**p, "animate_every": 0}, on_event=on_event, cancel=cancel)
        try:
            for indices, images in engine.run(jobs, layout):
                run.add_images([renumber[i] for i in indices], images)
                collected.update(zip(indices, images))
        except Cancelled:
            run.finish("cancelled")
            raise RunCancelled(f"rerun of #{number} was cancelled; its finished images are in run {run.id}") from None
        except Exception as exc:
            run.finish("failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise
    matches = [clean_png(collected[i]).sha256 == image.sha256 for i, image in zip(picked, exp.images)]
    run.finish("finished", verified=all(matches), mismatched=[i for i, ok in zip(picked, matches) if not ok])
    return run, all(matches)

