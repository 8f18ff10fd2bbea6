"""Running a grid end to end: check the inputs, load the model, run the engine, persist each batch, score, draw the
contact sheet, measure the compute — rerun a journal experiment to check it reproduces, and resume a run that was
interrupted or cancelled to the bytes it would have had.

Everything a run needs is checked before its folder is created, so bad input never leaves anything half-written.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable

from PIL import Image

from journal import InvalidInput, Journal
from journal.images import clean_png, open_image, sha256_file

from ..compose.grid import Grid
from ..compose.tokens import budget, clip_bpe
from ..errors import RunCancelled, RunError, option
from . import events as ev, sd_upscale
from .devices import EnergyMeter, cpu_threads, device_available, device_name, pick_device, using_threads
from .backends import Backend, load
from .batches import Dispatch, RunModels, Work
from .engine import Cancelled, Engine, Interrupted, Job, plan_batches
from .imported import is_imported
from .checks import NO_SCORER, Init, check_inputs, resolve_init
from .masks import DEFAULT_BLUR, DEFAULT_PADDING, Mask
from .loading import LoadPlan, Loader, load_plan
from .model_files import ModelFile
from .models import A1111, GUIDED, ModelSource
from .options import DEFAULT_STRENGTH, RunOptions, area_name, fill_name, grid_models
from .records import CellRecord, ComputeRecord, GridShape, ModelInfoRecord, ModelRecord, ParamsRecord, RunRecord, SpecRecord
from .runs import Run, model_source
from .scoring import keyword_effects, load_scorer, score_cells, weight_curves
from .sheet import RunSheets
from .speedups import Speedups, active
from .vae import recorded_vae
from .writer import BatchWriter, Kept, keep


def check_backend(source: ModelSource, options: RunOptions) -> None:
    """Options that belong to the other backend are refused, not silently ignored."""
    if source.kind == "guided" and options.guidance is not None:
        raise RunError(f"the {GUIDED} backend has no guidance scale: leave out {option('guidance')}")
    if source.kind == "guided" and options.strength is not None:
        raise RunError(f"the {GUIDED} backend has no strength: it starts from the init image's own latent (fewer "
                       f"{option('steps')} keep more of it); leave out {option('strength')}")
    if source.kind != "guided" and (options.guided or options.animate_every):
        raise RunError(f"{option('lr')}, {option('cutouts')}, {option('tv')}, {option('no-quantize')} and "
                       f"{option('animate')} are for the {GUIDED} backend; {source.id} is a diffusion "
                       f"model (use {option('model')} {GUIDED}:<decoder>+<clip>)")


def _jobs(cells: list[CellRecord], params: ParamsRecord, init: Init | None, mask: Init | None = None, *,
          in_full: bool = False) -> list[Job]:
    """One job per cell; a CLIP-guided image kept from a cancel reruns the steps it had (unless ``in_full``: a resume
    makes it as it would have been); with the run's mask (inpainting) and its recorded settings where it has one."""
    steps = {c.index: c.steps if in_full or c.steps_done is None else c.steps_done for c in cells}
    masked = Mask(mask.path, params.mask_blur or 0, bool(params.mask_invert), params.mask_fill or "original",
                  params.mask_area or "whole", params.mask_padding or 0, params.mask_blur_y) if mask else None
    return [Job(c.index, c.prompt, c.negative, c.seed, steps[c.index], c.guidance, c.width or params.width,
                c.height or params.height, (params.strength if c.strength is None else c.strength) if init else None,
                init.path if init else None, c.sampler, c.model, masked) for c in cells]


def _mask_params(mask: Init | None, options: RunOptions) -> dict:
    """What a run records of its mask: as given, its sha256, and its settings with their defaults resolved."""
    if mask is None:
        return {}
    return {"mask": mask.given, "mask_sha256": sha256_file(mask.path),
            "mask_blur": (blur := DEFAULT_BLUR if options.mask_blur is None else options.mask_blur),
            "mask_blur_y": None if options.mask_blur_y in (None, blur) else options.mask_blur_y,
            "mask_invert": options.mask_invert or None, "mask_fill": fill_name(options.mask_fill or "original"),
            **({"mask_area": "masked", "mask_padding": DEFAULT_PADDING if options.mask_padding is None else
                options.mask_padding} if area_name(options.mask_area) == "masked" else {})}


def _recorded_image(journal: Journal, given: str | None, sha256: str | None, flag: str, made: str) -> Init | None:
    """A run's recorded init image or mask, found again and unchanged since it was ``made``."""
    if given is None:
        return None
    found = resolve_init(journal, given, flag)
    if sha256 and sha256_file(found.path) != sha256:
        raise RunError(f"the {flag.replace('-', ' ')} {found.given} has changed since {made}")
    return found


@dataclass(frozen=True)
class Prepared:
    """A run checked, its model (and scorer) loaded, its cells and batches planned — and nothing written yet."""

    record: RunRecord  # the run's record, less its id
    backend: Backend
    jobs: list[Job]
    layout: list[list[int]]
    scorer: object | None
    device: object  # torch.device
    options: RunOptions
    sources: dict[str, ModelSource]  # a model axis's models by name (empty without one)


def execute(grid: Grid, options: RunOptions, journal: Journal, *, on_event: Callable[[ev.Event], None] = lambda e: None,
            cancel: Callable[[], bool] = lambda: False) -> Run:
    """Run every cell of ``grid``; the returned run is finished or cancelled, its images already on disk."""
    return start(prepare(grid, options, journal, on_event=on_event), journal, on_event=on_event, cancel=cancel)


def prepare(grid: Grid, options: RunOptions, journal: Journal | None, *,
            on_event: Callable[[ev.Event], None] = lambda e: None, dispatch: Dispatch | None = None) -> Prepared:
    """Check everything the run needs and load its model (here, or in ``dispatch``'s workers): RunError for bad
    input, before anything is written. ``journal`` is None where the command will create it (then ``#N`` init images
    name nothing)."""
    inputs = check_inputs(grid, options, journal)
    init = inputs.init
    names = grid_models(grid, options)

    def fits(name: str | None, backend: Backend) -> None:
        backend.check(grid, options)
        backend.params(options)

    def usable(source: ModelSource) -> None:
        check_backend(source, options)
        check_dispatch(source, dispatch)

    loaded = load_plan(LoadPlan(names[0], options.device, options.speedups, options.allow_pickle, options.allow_download,
                                options.clip, others={name: name for name in names[1:]}),
                       on_event=on_event, check_source=usable, check=fits, loader=loader(dispatch))
    source, backend, device = loaded.source, loaded.backend, loaded.device
    records = {names[0]: model_record(backend), **{name: model_record(b) for name, b in loaded.others.items()}}
    guided = backend.guided
    steps = options.steps or source.steps
    width, height = options.size or (backend.native_size(),) * 2
    guidance = None if guided else (source.guidance if options.guidance is None else options.guidance)
    cells = [CellRecord(**{**c.to_json(), "steps": c.params.get("steps", steps), "guidance": c.params.get("guidance", guidance)})
             for c in grid.cells]
    strength = None if guided else DEFAULT_STRENGTH if options.strength is None else options.strength
    params = ParamsRecord(steps=steps, guidance=guidance, width=width, height=height, strength=strength if init else None,
                          init_image=init.given if init else None, init_sha256=sha256_file(init.path) if init else None,
                          parent=init.parent if init else None, loras=hashed(inputs.loras, lora=True),
                          embeddings=hashed(inputs.embeddings), vae=inputs.vae.recorded() if inputs.vae else None,
                          **_mask_params(inputs.mask, options),
                          tiling=options.tiling or None, variation_seed=options.variation_seed,
                          variation_strength=options.variation_strength,
                          **sd_upscale.params(options, init.size if init else None), **backend.params(options))
    if params.sd_upscale:  # (the tiles: the run's size, and a size axis's)
        for w, h in dict.fromkeys((c.width or width, c.height or height) for c in cells):
            sd_upscale.check_tile(w, h, params.sd_upscale_overlap)
    jobs = _jobs(cells, params, init, inputs.mask)
    check_steps(backend, max(j.steps for j in jobs))
    if init and strength and (short := min(jobs, key=lambda j: j.steps * j.strength)).steps * short.strength < 1:
        raise RunError(f"{short.steps} steps at strength {short.strength:g} leave no step to run from the init image: "
                       f"use at least {math.ceil(1 / short.strength)} steps or a higher strength")
    layout = plan_batches(jobs, options.max_batch)
    spec = grid.spec
    record = run_record(backend, device, spec=SpecRecord(
        mode=spec.mode, prompt=spec.prompt.render(), base=spec.prompt.base, negative=spec.prompt.negative,
        keywords=spec.prompt.enabled, terms=grid.terms, seeds=list(spec.seeds),
        axes={n: a.text for n, a in spec.axes.items()}),
        params=params, grid=GridShape(rows=grid.rows, cols=grid.cols, subgrids=grid.subgrids), cells=cells, layout=layout,
        clip=loaded.clip, allow_pickle=options.allow_pickle)
    with_axis = any("model" in c.params for c in grid.cells)
    record.models = records if with_axis else None
    sources = {names[0]: source, **loaded.sources} if with_axis else {}
    return Prepared(record, backend, jobs, layout, loaded.scorer, device, options, sources)


def hashed(files: dict[str, ModelFile], *, lora: bool = False) -> list[str] | None:
    """Files by name as a run records them: "NAME: HASH", A1111's 12-digit hash of each, as its `Lora hashes:` (a
    safetensors LoRA's tensors alone: ``addnet_hash``) and `TI hashes:` (the whole file) write them."""
    from .model_files import addnet_hash, hashes

    def a1111(path) -> str:
        return (addnet_hash(path) if lora and path.suffix.lower() == ".safetensors" else hashes(path)[0])[:12]

    return [f"{name}: {a1111(file.path)}" for name, file in files.items()] or None


def run_record(backend: Backend, device, *, spec: SpecRecord, params: ParamsRecord, grid: GridShape,
               cells: list[CellRecord], layout: list[list[int]], clip: str | None, allow_pickle: bool,
               rerun_of: int | None = None) -> RunRecord:
    """The record a run starts with (a grid's or a rerun's), less its id: what it makes, with what, where."""
    return RunRecord(id="", model=model_record(backend), spec=spec, params=params, grid=grid, cells=cells,
                     planned_layout=layout, clip=clip, allow_pickle=allow_pickle, compute=_compute_record(device),
                     rerun_of=rerun_of)


def model_record(backend: Backend) -> ModelRecord:
    source = backend.source
    return ModelRecord(id=source.id, kind=source.kind, description=source.description, source=str(source.path),
                       info=ModelInfoRecord(**asdict(backend.model_info())))


def start(prepared: Prepared, journal: Journal, *, on_event: Callable[[ev.Event], None] = lambda e: None,
          cancel: Callable[[], bool] = lambda: False, dispatch: Dispatch | None = None) -> Run:
    """Create the run's folder in ``journal`` and run it (see ``prepare``): its batches made here, or dealt out by
    ``dispatch``."""
    check_dispatch(prepared.backend.source, dispatch)
    run = Run.create(journal, prepared.record.model_copy(deep=True))
    _run(run, prepared.backend, prepared.jobs, prepared.layout, prepared.scorer, prepared.device, prepared.options,
         on_event, cancel, sources=prepared.sources, dispatch=dispatch)
    return run


def past_limit(jobs: list[Job]) -> ev.PromptPastLimit | None:
    """The images whose prompts are longer than CLIP's window (as the composer counts them), or None: for a model
    whose prompts are not encoded in A1111's 75-token windows (``emphasis_encoder``)."""
    counted = {j.index: budget(j.prompt, (), clip_bpe()) for j in jobs}
    over = sorted(i for i, b in counted.items() if b.over)
    if not over:
        return None
    return ev.PromptPastLimit(cells=over, tokens=max(counted[i].tokens for i in over), limit=counted[over[0]].limit)


def check_dispatch(source: ModelSource, dispatch: Dispatch | None) -> None:
    """The CLIP-guided backend runs in this process only (its animations and cut-short frames stay with its engine):
    refused by its source, before it is loaded anywhere."""
    if dispatch is not None and source.kind == "guided":
        raise RunError(f"the {GUIDED} backend runs on one device: run it without Ray (`promptism serve --ray off`, "
                       f"or {option('local')})")


def loader(dispatch: Dispatch | None) -> Loader:
    """How a run's models are loaded: here, or by ``dispatch`` in its workers (then this process holds none)."""
    return load if dispatch is None else dispatch.load


def check_steps(backend: Backend, steps: int) -> None:
    """At most as many steps as the model can take: a diffusion scheduler's training timesteps, or GUIDED_MAX_STEPS
    optimisation steps for the CLIP-guided backend."""
    most, why = backend.max_steps()
    if most is not None and steps > most:
        raise RunError(f"steps must be at most {most} for {why}, not {steps}")


def _run(run: Run, backend: Backend, jobs: list[Job], layout: list[list[int]], scorer, device, options: RunOptions, on_event, cancel,
         earlier: dict[int, Kept] | None = None, sources: dict[str, ModelSource] | None = None,
         dispatch: Dispatch | None = None) -> None:
    """Run ``jobs`` in ``layout`` into ``run``'s folder — each batch on its model (``backend``'s, or a model axis's
    from ``sources``), made by the engine here or by ``dispatch``'s workers, and written in the background while the
    next ones run (``writer``) — then score, measure and draw it over its images (those made ``earlier`` too, for a
    resumed run). Workers that are lost leave it ``interrupted``."""
    r = run.record
    emit = _one_at_a_time(on_event)  # the engine's events and the writer's
    emit(ev.RunStarted(run=run.id, cells=len(jobs), batches=len(layout), model=r.model.credited,
                       device=device_name(device)))  # (the model as credited: a local folder's or file's name, not its path)
    if r.params.emphasis != A1111 and (past := past_limit(jobs)) is not None:  # (A1111's encoding reads it all)
        emit(past)
    meter = EnergyMeter(device)
    meter.start()
    started = time.monotonic()
    allow_pickle = r.allow_pickle or options.allow_pickle
    engine = None
    if dispatch is None:
        models = RunModels(backend, sources or {}, device, allow_pickle=allow_pickle,
                        speedups=Speedups.from_params(r.params), on_event=emit)
        engine = backend.make_engine(r.params, on_event=emit, cancel=cancel, preview_every=options.preview_every,
                                     models=models)
        batches = engine.run(jobs, layout)
    else:
        work = Work(source=backend.source, sources=sources or {}, device_type=device.type, threads=r.compute.threads,
                    allow_pickle=allow_pickle, params=r.params, preview_every=options.preview_every)
        batches = dispatch.run(work, jobs, layout, on_event=emit, cancel=cancel)
    sheets = RunSheets(r)
    if earlier:
        sheets.add({i: k.tile for i, k in earlier.items()})
    spent_before = r.compute.seconds or 0  # (a resumed run's earlier stretches)

    def spent() -> None:  # the seconds so far, saved with each batch: a run killed later keeps what it cost
        r.compute.seconds = round(spent_before + time.monotonic() - started, 3)

    writer = BatchWriter(run, on_event=emit, prepare=scorer.prepare if scorer else None, on_written=sheets.add,
                         before_save=spent)
    state, failure = "finished", None
    try:
        with active(Speedups.from_params(r.params)):  # the run's TF32 setting and compile limits, for the run alone
            for batch in batches:
                writer.submit(batch, _animations(engine, batch.cells))
    except Cancelled:
        state = "cancelled"
    except Interrupted:
        state = "interrupted"
    except Exception as exc:  # noqa: BLE001 - recorded as the run's error, then raised again
        failure = exc
    finally:
        write_error = writer.close()  # the batches made are written before anything else is recorded
    failure = failure or write_error
    if failure is not None:
        run.finish("failed", error=str(failure).splitlines()[0] if str(failure) else type(failure).__name__)
        raise failure
    seconds = time.monotonic() - started
    r.compute.seconds = spent_before
    _add_compute(r.compute, seconds, meter.stop_wh(), options.co2_g_per_kwh)
    for index, steps_done in getattr(engine, "stopped_at", {}).items():
        r.cells[index].steps_done = steps_done  # a CLIP-guided image kept from a cancel: its latest frame
    kept = {**(earlier or {}), **writer.kept}
    run.finish(state, **_conclude(run, kept, scorer, sheets))
    emit(ev.RunFinished(run=run.id, state=state, images=len(kept), seconds=seconds))


def _one_at_a_time(on_event: Callable[[ev.Event], None]) -> Callable[[ev.Event], None]:
    """``on_event`` called by one thread at a time (the run's, or the writer's)."""
    lock = threading.Lock()

    def emit(event: ev.Event) -> None:
        with lock:
            on_event(event)

    return emit


def _add_compute(compute: ComputeRecord, seconds: float, energy_wh: float | None, co2_g_per_kwh: float) -> None:
    """Count a stretch of running into the run's compute (a resumed run adds to what it had)."""
    compute.seconds = round((compute.seconds or 0) + seconds, 3)
    if energy_wh is not None or compute.energy_wh is not None:
        energy_wh = (compute.energy_wh or 0) + (energy_wh or 0)
    compute.energy_wh = energy_wh
    compute.co2_g = round(energy_wh * co2_g_per_kwh / 1000, 4) if energy_wh is not None else None
    compute.co2_g_per_kwh = co2_g_per_kwh


def settle(run: Run) -> Run:
    """A run whose process died (``interrupted``) gets what a cancelled run has: its finished images scored with the
    run's scorer, keyword effects, contact sheets, and its state recorded. Other runs are left as they are."""
    if run.state != "interrupted" or run.record.state != "running":
        return run
    scorer = None
    if run.record.clip and run.done:
        scorer = load_scorer(run.record.clip, pick_device("auto"), allow_pickle=run.record.allow_pickle)
    kept = _kept(run, run.done, scorer)
    sheets = RunSheets(run.record)
    sheets.add({i: k.tile for i, k in kept.items()})
    run.finish("interrupted", **_conclude(run, kept, scorer, sheets))
    return run


def _kept(run: Run, cells: list[CellRecord], scorer) -> dict[int, Kept]:
    """What the writer keeps of each image (sheet tile, scorer input), for images already in the run's folder."""
    try:
        return {c.index: keep(open_image(run.image(c)).convert("RGB"), scorer.prepare if scorer else None) for c in cells}
    except InvalidInput as exc:
        raise RunError(f"run {run.id}: {exc.message}") from None


def _conclude(run: Run, kept: dict[int, Kept], scorer, sheets: RunSheets) -> dict:
    """Scores, keyword effects and contact sheets for the images a run finished, however it ended; the record
    fields to set. The two sheets (drawn as the images came) are finished on threads of their own while the scorer
    runs."""
    extra = {}
    if not kept:
        return extra
    with ThreadPoolExecutor(2, thread_name_prefix="promptism-sheet") as pool:
        files = sheets.files(len(kept), pool)
        if scorer:
            r = run.record
            features = dict(zip(kept, scorer.image_features([k.scoring for k in kept.values()])))
            score_cells(scorer, r.cells, features, r.spec.base or r.spec.prompt)
            extra["effects"] = keyword_effects(scorer, r.cells, features, r.spec.keywords)
            extra["weight_curves"] = weight_curves(scorer, r.cells, features, r.spec.axes) or None
        for name, png in files.items():
            (run.folder / name).write_bytes(png.result())
    return extra


def _compute_record(device) -> ComputeRecord:
    """Where a run runs, recorded when it starts (so a run whose process dies has it too): the device and, on the
    CPU, torch's thread count, which ``rerun`` and ``resume`` restore."""
    return ComputeRecord(device=device_name(device), device_type=device.type, threads=cpu_threads(device))


def _animations(engine: Engine | None, indices: list[int]) -> dict[int, list[Image.Image]]:
    frames = getattr(engine, "frames", {})
    return {i: frames.pop(i) for i in indices if i in frames}


def compact_layout(cells: list[CellRecord]) -> tuple[GridShape, list[dict]]:
    """Where ``cells`` (some of a grid's, as the journal records them) go in a grid of their own: the rows, columns
    and sub-grids they came from, closed up over those none of them is in — so a rerun looks like the grid it reruns.
    The grid's shape, and each cell's row, col and subgrid."""
    def ranks(key: str) -> dict[int, int]:
        return {value: rank for rank, value in enumerate(sorted({getattr(c, key) for c in cells}))}

    rows, cols, subgrids = ranks("row"), ranks("col"), ranks("subgrid")
    places = [{"row": rows[c.row], "col": cols[c.col], "subgrid": subgrids[c.subgrid]}
              for c in cells]
    return GridShape(rows=len(rows), cols=len(cols), subgrids=len(subgrids)), places


def rerun(journal: Journal, number: int, options: RunOptions, *, on_event=lambda e: None,
          cancel=lambda: False, dispatch: Dispatch | None = None) -> tuple[Run, bool]:
    """Regenerate experiment #number with its recorded cells and batch layout; True if every image is byte-identical."""
    exp = journal.get(number)
    if is_imported(exp):
        raise RunError(f"#{number} was not made by promptism's runner (it was imported), so it cannot be rerun byte for "
                       f"byte: `promptism rerun {number}` makes it again from its imported settings")
    recorded = exp.grid
    params = ParamsRecord(**{**exp.params, "parent": exp.parent})
    if "animate_every" in exp.params:
        params.animate_every = 0  # the rerun checks the images; it makes no animations
    init = _recorded_image(journal, params.init_image, params.init_sha256, "init-image", f"#{number} was made")
    mask = _recorded_image(journal, params.mask, params.mask_sha256, "mask", f"#{number} was made")
    loaded = load_plan(LoadPlan(recorded.model_source or exp.model.id, options.device, Speedups.from_params(params),
                                options.allow_pickle, options.allow_download),  # the experiment's speed-ups, no scorer
                       on_event=on_event, check_source=lambda source: check_dispatch(source, dispatch),
                       loader=loader(dispatch))
    backend, device = loaded.backend, loaded.device
    if params.vae:  # the VAE it was made with, here and unchanged, before the run is
        recorded_vae(params.vae, f"#{number}")
    picked = recorded.picked
    batches = [b for b in recorded.layout if set(b) & set(picked)]
    needed = {i for b in batches for i in b}
    cells = [c for c in recorded.cells if c.index in needed]
    shape, places = compact_layout(cells)
    renumber = {c.index: k for k, c in enumerate(cells)}  # the run's cells are numbered 0..n-1
    run_cells = [c.model_copy(update={**place, "file": None, "index": k}) for k, (c, place) in enumerate(zip(cells, places))]
    layout = [[renumber[i] for i in b] for b in batches]
    jobs = _jobs(run_cells, params, init, mask)
    threads = exp.compute.threads if exp.compute and device.type == "cpu" else None
    with using_threads(threads):  # the experiment's CPU threads: they decide float reduction order, so the pixels
        record = run_record(backend, device, spec=SpecRecord(
            mode=recorded.mode, prompt=exp.prompt, base=exp.prompt, negative=exp.negative_prompt,
            keywords=list(exp.keywords), terms=list(exp.terms), seeds=recorded.seeds, axes=recorded.axes),
            params=params, grid=shape, cells=run_cells, layout=layout, clip=None, allow_pickle=options.allow_pickle,
            rerun_of=number)
        run = Run.create(journal, record)
        _run(run, backend, jobs, layout, None, device, options.model_copy(update={"preview_every": 0}), on_event, cancel,
             dispatch=dispatch)
    if run.record.state in ("cancelled", "interrupted"):
        raise RunCancelled(f"rerun of #{number} was {run.record.state}; its finished images are in run {run.id}", run.id)
    # each image as accept would keep it (the journal's copies are re-encoded from the run folder's), compared by hash
    matches = [clean_png(open_image(run.image(run.record.cells[renumber[i]]))).sha256 == image.sha256
               for i, image in zip(picked, exp.images)]
    run.finish("finished", verified=all(matches), mismatched=[i for i, ok in zip(picked, matches) if not ok])
    return run, all(matches)


def resume(journal: Journal, run: Run, options: RunOptions, *, on_event=lambda e: None, cancel=lambda: False,
           dispatch: Dispatch | None = None) -> Run:
    """Finish an interrupted or cancelled run in its own folder: its missing cells, in its planned batches, on its
    device at its CPU thread count, with its model, parameters and init image — so its images are byte-identical to
    those of a run never interrupted; then scores, effects and sheets over all its images, compute time added up."""
    r = run.record
    state = run.state
    if state not in ("interrupted", "cancelled"):
        still = f" (in process {r.pid})" if state == "running" else ""
        raise RunError(f"run {run.id} is {state}{still}: only an interrupted or cancelled run can be resumed")
    if r.rerun_of is not None:
        raise RunError(f"run {run.id} is a rerun of #{r.rerun_of}: rerun #{r.rerun_of} again instead of resuming it")
    todo = [c for c in r.cells if not c.file or c.steps_done is not None]
    if not todo:
        raise RunError(f"run {run.id} has every image already: nothing to resume")
    init = _recorded_image(journal, r.params.init_image, r.params.init_sha256, "init-image", f"run {run.id} started")
    mask = _recorded_image(journal, r.params.mask, r.params.mask_sha256, "mask", f"run {run.id} started")
    kind = r.compute.kind
    if options.device not in ("auto", kind) or not device_available(kind):
        raise RunError(f"run {run.id} ran on {r.compute.device or kind}; resume it where that device is (its images "
                       "would differ elsewhere)")
    models = r.models or {}

    def same(name: str | None, backend: Backend) -> None:  # the model it was made with, not another revision
        check_dispatch(backend.source, dispatch)
        made = r.model if name is None else models[name]
        if model_record(backend).info != made.info:
            raise RunError(f"the model {made.info.id} is not what run {run.id} was made with any more "
                           "(another revision or pipeline): its images would differ")

    loaded = load_plan(LoadPlan(model_source(r.model) or r.model.id, kind, Speedups.from_params(r.params),
                                r.allow_pickle or options.allow_pickle, options.allow_download, r.clip or NO_SCORER,
                                others={name: model_source(m) or m.id for name, m in models.items()}),
                       on_event=on_event, check_source=lambda source: check_dispatch(source, dispatch), check=same,
                       loader=loader(dispatch))
    backend, device, scorer, sources = loaded.backend, loaded.device, loaded.scorer, loaded.sources
    if r.params.vae:
        recorded_vae(r.params.vae, f"run {run.id}")
    missing = {c.index for c in todo}
    earlier = _kept(run, [c for c in r.done if c.index not in missing], scorer)
    layout = [left for b in r.planned_layout if (left := [i for i in b if i in missing])]
    jobs = _jobs(todo, r.params, init, mask, in_full=True)
    r.layout = [b for b in r.layout if not set(b) & missing]  # batches cut short are made again
    with using_threads(r.compute.threads if device.type == "cpu" else None):
        run.claim()
        run.save()
        _run(run, backend, jobs, layout, scorer, device, options, on_event, cancel, earlier, sources, dispatch=dispatch)
    return run
