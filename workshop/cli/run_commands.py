"""Run commands: generate, runs, accept, discard, rerun, resume, models — and the options ``grid`` shares with ``generate``.

The runner (torch, diffusers) is imported inside the commands that run models, so journal commands stay quick.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from journal import Journal
from journal.privacy import check_title_keeps_secrets
from journal.slug import check_new_title
from journal.text import one_line, quoted

from ..compose.grid import DEFAULT_MAX_CELLS, build_grid
from ..compose.prompt import clean
from ..compose.spec import spec_from, spec_values
from ..settings import load_settings
from .journal_option import journal_option
from .output import console, dump_json, literal, print_table, say


def _model_defaults(setting: str, otherwise) -> str:
    """The defaults that differ by model, as the model table has them: '12 for shapes, 4 for tiny, 25 otherwise'."""
    from ..runner.models import BUILTINS, GUIDED, GUIDED_STEPS

    table = {name: getattr(b, setting) for name, b in BUILTINS.items()}
    if setting == "steps":
        table[GUIDED] = GUIDED_STEPS
    differing = [f"{value:g} for {name}" for name, value in table.items() if value != otherwise]
    return ", ".join([*differing, f"{otherwise:g} otherwise"])


LOCAL = click.option("--local", is_flag=True, help="Run in this process, not in the service (which is started when "
                     "none runs; `service = false` in config.toml or PROMPTISM_SERVICE=off does the same).")
VERBOSE = click.option("--verbose", "-v", is_flag=True, help="Say where the time until the first step went: each phase "
                       "(imports, starting the service, loading the model …) with its seconds, on stderr at the end "
                       "(with --json, as Phase events too).")


def run_options(fn):
    """The options of every command that makes images."""
    from ..runner.models import DEFAULT_GUIDANCE, DEFAULT_STEPS

    options = [
        click.option("--model", "-m", "model", help="shapes (the default), tiny, a diffusers folder, or a cached Hugging Face repo id (see `promptism models`)."),
        click.option("--steps", type=int, help=f"Denoising steps (default: {_model_defaults('steps', DEFAULT_STEPS)})."),
        click.option("--guidance", "-g", type=float, help="Classifier-free guidance scale (default: "
                     f"{_model_defaults('guidance', DEFAULT_GUIDANCE)})."),
        click.option("--size", help="WIDTHxHEIGHT, multiples of 8 (default: the model's native size)."),
        click.option("--init-image", help="Start from an image: a file, #N for experiment N's first image, or #N:K for its "
                     "image K (1-based, as `promptism show N` numbers them)."),
        click.option("--strength", type=float, help="How far to move from the init image (0–1], default 0.75; diffusion models only."),
        click.option("--mask", help="Inpaint: an image whose white marks what of the init image to paint again (a file, "
                     "or #N / #N:K); the rest is kept."),
        click.option("--mask-blur", metavar="N|X,Y", help="Blur the mask's edge by this many pixels (A1111's mask "
                     "blur; default 4), or by X across and Y down."),
        click.option("--mask-invert/--no-mask-invert", default=None, help="Paint the mask's black part instead."),
        click.option("--mask-fill", help="What the masked part starts from (A1111's masked content): original (the "
                     "init image; default), fill (the colours round it), latent-noise or latent-nothing (its latents "
                     "replaced by noise from the image's seed, or by zeros)."),
        click.option("--mask-area", help="Where to paint: whole (the whole picture at --size; default) or masked "
                     "(A1111's \"only masked\": the mask's box painted at --size, the image kept at the init image's "
                     "size)."),
        click.option("--mask-padding", type=int, help="With --mask-area masked: pixels round the mask's box that are "
                     "painted too (A1111's only masked padding; default 32)."),
        click.option("--sampler", help="An AUTOMATIC1111 sampler, e.g. \"Euler a\" or \"DPM++ 2M Karras\" (`promptism "
                     "samplers` lists them; default: the sampler setting, else the model's own scheduler, which "
                     "--sampler default asks for)."),
        click.option("--clip-skip", type=int, help="Condition on the text encoder's Nth layer from the end, as "
                     "AUTOMATIC1111's Clip skip does: 2 for most anime models (SD 1.x/2.x; default 1, the last)."),
        click.option("--emphasis", help="AUTOMATIC1111's Emphasis mode for (words:1.3): Original (its default: the "
                     "weights, then the mean restored), \"No norm\" (the weights alone) or Ignore (no weights)."),
        click.option("--vae", help="A VAE in place of the model's own, as AUTOMATIC1111's SD VAE setting: an install's "
                     "by name (e.g. vae-ft-mse-840000-ema-pruned.safetensors; `promptism models` lists them), a "
                     ".safetensors file, or a diffusers VAE folder (\"None\" / \"Automatic\": the model's own)."),
        click.option("--tiling/--no-tiling", default=None, help="Seamless textures, as AUTOMATIC1111's Tiling: the "
                     "image wraps round (its left edge continues its right, its top its bottom)."),
        click.option("--variation-seed", type=int, help="AUTOMATIC1111's Variation seed: every image's starting noise "
                     "moved toward this seed's (with --variation-strength)."),
        click.option("--variation-strength", type=float, help="How far toward the variation seed's noise: 0 (the "
                     "image's own seed) to 1 (the variation seed's)."),
        click.option("--hires", type=float, metavar="SCALE", help="AUTOMATIC1111's hires fix: make each image at "
                     "--size, upscale it by SCALE (e.g. 2; the size rounded down to multiples of 8) and make it again "
                     "image to image at that size (SD 1.x/2.x and SDXL; not with --init-image)."),
        click.option("--hires-steps", type=int, help="The hires fix's second pass: its denoising steps (default, or "
                     "0: the first pass's)."),
        click.option("--hires-strength", type=float, help="The hires fix's second pass: its denoising strength, (0–1] "
                     "(default 0.7, as AUTOMATIC1111)."),
        click.option("--hires-upscaler", metavar="NAME", help="The hires fix's upscaler, by its AUTOMATIC1111 name: "
                     "Latent (the default), Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), "
                     "Latent (nearest), Latent (nearest-exact), Lanczos, Nearest or None."),
        click.option("--sd-upscale", type=float, metavar="SCALE", help="AUTOMATIC1111's SD upscale: upscale the "
                     "--init-image by SCALE (e.g. 2), cut it into tiles of --size overlapping by --sd-upscale-overlap "
                     "and make each tile again image to image (tile k of seed S with seed S + k), then blend them "
                     "together; the images are the upscaled size."),
        click.option("--sd-upscale-overlap", type=int, metavar="N", help="SD upscale: the tiles' overlap in pixels "
                     "(default 64, as AUTOMATIC1111)."),
        click.option("--sd-upscale-upscaler", metavar="NAME", help="SD upscale's upscaler: Lanczos (the default), "
                     "Nearest, or None (the init image at its own size, as AUTOMATIC1111)."),
        click.option("--max-batch", type=int, help="Images (SD upscale: tiles) per pipeline call (default 8, or the configured max_batch)."),
        click.option("--clip", help="Score images with this CLIP: shapes-clip, tiny-clip, ARCH:CHECKPOINT, ARCH:TAG, or none (default: the model's own scorer, if it has one)."),
        click.option("--lr", type=float, help="vqgan-clip: Adam learning rate on the latent (default 0.4)."),
        click.option("--cutouts", type=int, help="vqgan-clip: random crops CLIP sees per step (default 24)."),
        click.option("--tv", type=float, help="vqgan-clip: total-variation weight, smooths the image (default 0.1)."),
        click.option("--no-quantize", is_flag=True, help="vqgan-clip with a VQGAN: optimise continuous codes, not codebook entries."),
        click.option("--animate", type=click.IntRange(min=1), help="vqgan-clip: keep every Nth step as an animated GIF beside each image."),
        click.option("--compile/--no-compile", default=None, help="torch.compile the UNet/transformer: faster once each "
                     "batch shape has compiled; the service keeps it, kernels are cached on disk (default: the compile setting, off)."),
        click.option("--channels-last/--no-channels-last", default=None, help="Channels-last memory format for the "
                     "UNet and VAE (default: the channels_last setting, off)."),
        click.option("--tf32/--no-tf32", default=None, help="TF32 float32 matmuls on Ampere+ GPUs (default: the tf32 "
                     "setting, off)."),
        click.option("--allow-pickle", is_flag=True, help="Allow pickle weights (they can run code when loaded)."),
        click.option("--allow-download", is_flag=True, help="Fetch a model from the Hugging Face Hub if it is not cached."),
        click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), help="Also copy the images here."),
        click.option("--accept", is_flag=True, help="Accept the run at once as the next experiment (needs --title)."),
        click.option("--title", "-t", help="Title for --accept (any Unicode; it is published)."),
        click.option("--allow-title-overlap", is_flag=True, help="With --accept: keep a title that contains the prompt or a keyword."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON: progress events as JSON lines (grid --dry-run: the cells)."),
        click.option("--reveal-prompt", is_flag=True, help="Name the keywords in the keyword effects (they are numbered otherwise)."),
        LOCAL,
        VERBOSE,
    ]
    for option in reversed(options):
        fn = option(fn)
    return journal_option(fn)


def checked_options(grid, spec, opts: dict):
    """The run options the command line gives (``given_options``), resolved over the spec's [params] and the
    settings as the run will resolve them, and checked without loading anything — so a dry run refuses what the
    real run would. Returns what was given: that is what the job carries."""
    from ..runner.options import check_grid, resolve

    given = given_options(opts)
    check_grid(grid, resolve(spec, given, load_settings()))
    return given


def given_options(opts: dict):
    """The run flags that were given (None where not), their paths made absolute (the service runs elsewhere)."""
    from pydantic import ValidationError

    from ..contract import GivenOptions, first_problem
    from ..runner.options import parse_size

    values = dict(model=opts["model"], steps=opts["steps"], guidance=opts["guidance"],
                  size=parse_size(opts["size"]) if opts["size"] is not None else None,
                  init_image=opts["init_image"], strength=opts["strength"], sampler=opts["sampler"],
                  mask=opts["mask"], **_blurs(opts["mask_blur"]), mask_invert=opts["mask_invert"],
                  mask_fill=opts["mask_fill"], mask_area=opts["mask_area"], mask_padding=opts["mask_padding"],
                  clip_skip=opts["clip_skip"], emphasis=opts["emphasis"], vae=opts["vae"], tiling=opts["tiling"],
                  variation_seed=opts["variation_seed"], variation_strength=opts["variation_strength"],
                  hires=opts["hires"], hires_steps=opts["hires_steps"],
                  hires_strength=opts["hires_strength"], hires_upscaler=opts["hires_upscaler"],
                  sd_upscale=opts["sd_upscale"], sd_upscale_overlap=opts["sd_upscale_overlap"],
                  sd_upscale_upscaler=opts["sd_upscale_upscaler"],
                  max_batch=opts["max_batch"], clip=opts["clip"],
                  animate_every=opts["animate"], compile=opts["compile"], channels_last=opts["channels_last"],
                  tf32=opts["tf32"], allow_pickle=opts["allow_pickle"], allow_download=opts["allow_download"])
    try:  # (the CLIP-guided settings are made in here too: a problem with one names its own flag, --lr or --tv)
        return absolute(GivenOptions(**values, guided=_guided_settings(opts)))
    except ValidationError as exc:
        problem = first_problem(exc)
        flag = "--animate" if problem.field == "animate_every" else f"--{problem.field.replace('_', '-')}"
        if problem.kind == "blank":
            raise click.BadParameter("it is empty: give a value or leave the flag out", param_hint=flag) from None
        raise click.BadParameter(f"it must be {problem.wanted}, not {quoted(problem.given)}", param_hint=flag) from None


def _blurs(text: str | None) -> dict:
    """``--mask-blur`` N or X,Y as GivenOptions' mask_blur and mask_blur_y (RunError, one line, for what is neither)."""
    from ..runner.options import parse_blur

    if text is None:
        return {"mask_blur": None}
    across, down = parse_blur(text)
    return {"mask_blur": across, "mask_blur_y": down}


def absolute(given):
    """``given`` with its paths made absolute (the service runs elsewhere): an init image file, a model folder, a
    CLIP checkpoint."""
    init, clip, mask = given.init_image, given.clip, given.mask
    if init and not init.startswith("#"):
        init = str(Path(init).expanduser().absolute())
    if mask and not mask.startswith("#"):
        mask = str(Path(mask).expanduser().absolute())
    arch, sep, checkpoint = (clip or "").partition(":")
    if sep and Path(checkpoint).expanduser().is_file():
        clip = f"{arch}:{Path(checkpoint).expanduser().absolute()}"
    vae = given.vae
    if vae and Path(vae).expanduser().exists():  # a VAE file or folder (an install's is named, as it is)
        vae = str(Path(vae).expanduser().absolute())
    return given.model_copy(update={"init_image": init, "model": _model_folder(given.model), "clip": clip, "vae": vae,
                                    "mask": mask})


def absolute_spec(spec):
    """``spec`` with its model folder (relative to where the command runs) made absolute, as flags' are."""
    return spec.model_copy(update={"model": _model_folder(spec.model)})


def _model_folder(model: str | None) -> str | None:
    """A model named by a folder, by its absolute path; any other name as it is."""
    return str(Path(model).expanduser().absolute()) if model and Path(model).expanduser().is_dir() else model


def execute_grid(grid, spec, opts: dict, journal_dir: Path) -> None:
    """Run ``grid`` (composed from ``spec``) with the command's options — through the service, or here with
    --local — show progress, and report (or accept) the result. Everything is checked, and the model loaded,
    before anything is written: bad input leaves no journal, run or --out folder."""
    from ..service.api import JobRequest
    from ..service.executor import existing_journal
    from . import job_progress

    if opts["accept"] and not opts["title"]:
        raise click.UsageError("--accept needs --title TITLE")
    if opts["title"] and not opts["accept"]:
        raise click.UsageError("--title goes with --accept (or use `promptism accept RUN --title …` later)")
    given = checked_options(grid, spec, opts)
    if opts["accept"]:  # a title the accept would refuse is refused before the run, not after it
        check_new_title(opts["title"])
        if not opts["allow_title_overlap"]:
            check_title_keeps_secrets(opts["title"], grid.secrets)
    existing_journal(journal_dir)  # a folder that is no journal is refused before any service starts
    request = JobRequest(kind="grid", journal=str(journal_dir.absolute()), spec=absolute_spec(spec), create=True,
                         options=given)
    outcome, cancelled = job_progress.run(request, as_json=opts["as_json"], local=opts["local"], verbose=opts["verbose"],
                                          before_write=lambda: _make_out(opts["out"]))
    if outcome.run is None:  # cancelled while it waited in the queue
        click.echo("cancelled before it started: no images", err=True)
        click.get_current_context().exit(130)
    from ..runner.runs import load_run

    journal = Journal.open(journal_dir)
    run = load_run(journal, outcome.run)
    if opts["out"]:
        _copy_out(run, opts["out"])
    _conclude(run, as_json=opts["as_json"], reveal=opts["reveal_prompt"], cancelled=cancelled, accepting=opts["accept"])
    if opts["accept"]:
        from ..runner.runs import accept_run

        exp = accept_run(journal, run, opts["title"], allow_title_overlap=opts["allow_title_overlap"])
        _say_accepted(exp, err=opts["as_json"])


def _make_out(out: Path | None) -> None:
    if out:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create {out} ({exc.strerror or exc})", param_hint="--out") from None


def _conclude(run, *, as_json: bool, reveal: bool, cancelled: bool, accepting: bool = False) -> None:
    """What a run made (a JSON result with --json, else the report); after a Ctrl-C, what was kept, and exit 130."""
    if as_json:
        click.echo(json.dumps({"event": "Result", "run": run.id, "state": run.state, "folder": str(run.folder),
                               "images": [str(run.image(c)) for c in run.done]}))
    else:
        _report(run, keep_hint=not accepting, reveal=reveal)
    if cancelled:  # Ctrl-C: what finished is kept (and copied to --out), nothing is accepted, and the exit says so
        kept = "" if not accepting else f"; not accepted (promptism accept {run.id} --title … keeps it)"
        click.echo(f"cancelled: {len(run.done)} finished image(s) kept in run {run.id}{kept}"
                   + (f" (promptism resume {run.id} finishes it)" if as_json else ""), err=True)
        click.get_current_context().exit(130)


def _say_accepted(exp, *, err: bool = False) -> None:
    """The one line that says a run became an experiment (``accept``, ``generate --accept``)."""
    say(f"#{exp.number} {exp.title} — {len(exp.images)} image(s) by {exp.credit}", err=err)


@click.command("generate")
@click.argument("prompt")
@click.option("--negative", "-n", default="", help="Negative prompt.")
@click.option("--seed", "-s", type=int, help="One seed (default 0).")
@click.option("--seeds", help="Several seeds: 1,2,3 or 1-9.")
@click.option("--max-cells", type=int, help=f"Refuse more images than this (default {DEFAULT_MAX_CELLS}).")
@run_options
def generate_cmd(prompt: str, negative: str, seed, seeds, max_cells, journal_dir: Path, **opts) -> None:
    """Make images of PROMPT (one per seed) as a new run in the journal's scratch area.

    \b
    Examples:
      promptism generate "two small red stars on a blue background, glowing" --seeds 1-4
      promptism generate "a lighthouse at dusk" --model tiny --seed 7 --steps 4 --size 64x64
    """
    if seed is not None and seeds is not None:
        raise click.UsageError("give --seed or --seeds, not both")
    if not clean(prompt):
        raise click.UsageError('the prompt is empty: say what to draw, e.g. promptism generate "a red circle"')
    spec = spec_values({"prompt": prompt, "negative": negative, "max_cells": max_cells,
                        "seeds": seeds if seeds is not None else [0 if seed is None else seed]})
    execute_grid(build_grid(spec_from(spec)), spec, opts, journal_dir)


@click.command("runs")
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--reveal-prompt", is_flag=True, help="Show the cells' prompts and name the keywords of the effects.")
@click.option("--follow", is_flag=True, help="Watch RUN's progress while the service runs it (from any terminal; "
              "Ctrl-C stops watching, not the run).")
@journal_option
def runs_cmd(run_id: str | None, as_json: bool, reveal_prompt: bool, follow: bool, journal_dir: Path) -> None:
    """List runs (finished, cancelled, or interrupted by a crash or lost connection), or show one."""
    from ..runner.runs import list_runs, load_run

    journal = Journal.open(journal_dir)
    if follow:
        if not run_id:
            raise click.UsageError("--follow needs the RUN to watch (`promptism runs` lists them)")
        _follow(journal, load_run(journal, run_id).id, as_json)
    runs = [load_run(journal, run_id)] if run_id else list_runs(journal)
    if run_id and runs[0].state == "interrupted":  # its process died: score it and draw its sheet, as for a cancel
        from ..runner.execution import settle

        settle(runs[0])
    if as_json:
        click.echo(dump_json([_run_json(r, reveal_prompt) for r in runs]))
        return
    if run_id:
        _report(runs[0], cells=True, reveal=reveal_prompt)
        return
    if not runs:
        click.echo("no runs yet — make some with `promptism generate` or `promptism grid`")
        return
    print_table(["run", "state", "images", "model", "sweeps", "accepted"],
                [[r.id, r.state, f"{len(r.done)}/{len(r.record.cells)}", r.record.model.id, _sweeps(r.record.spec),
                  " ".join(f"#{n}" for n in r.accepted)] for r in runs])


def _sweeps(spec) -> str:
    """What a run varies, public words only: its mode (leave-one-out …) and its axes' types (a weight axis's keyword,
    an S/R axis's values stay private)."""
    kinds = [text.partition("=")[0].partition(":")[0].strip().lower() for _, text in sorted(spec.axes.items())]
    return " · ".join([*([spec.mode] if spec.mode != "plain" else []), *([" × ".join(kinds)] if kinds else [])])


def _follow(journal: Journal, run_id: str, as_json: bool) -> None:
    """Watch the service's job that is making ``run_id`` until it ends (then the run is shown as usual)."""
    from ..service.client import connect
    from ..service.errors import ServiceUnavailable
    from . import job_progress

    try:
        client = connect(autostart=False)
        job = next((j for j in client.jobs(str(journal.path.absolute())) if j.run == run_id and not j.ended_yet), None)
    except ServiceUnavailable:
        job = None
    if job is None:
        from ..runner.runs import load_run

        state = load_run(journal, run_id).state
        hint = f"; `promptism resume {run_id}` finishes it" if state in ("interrupted", "cancelled") else ""
        raise click.ClickException(f"run {run_id} is not running in a service (it is {state}){hint}")
    with job_progress.Progress(as_json) as progress:
        job_progress.follow(client, job, cancel_on_interrupt=False, progress=progress)


def _run_json(run, reveal_prompt: bool) -> dict:
    """A run as JSON; the cells' prompts and keywords, and the keywords' names in the effects, only with
    --reveal-prompt, as for `show` (effects are numbered by the keyword's place in the prompt otherwise)."""
    r = run.record
    cells = [c.dump() for c in r.cells]
    if not reveal_prompt:
        cells = [{k: v for k, v in c.items() if k not in PRIVATE_CELL_KEYS} for c in cells]
    return {"id": run.id, "state": run.state, "folder": str(run.folder), "created": r.created, "model": r.model.id,
            "cells": cells, "images": [str(run.image(c)) for c in run.done], "layout": r.layout,
            "compute": r.compute.model_dump(mode="json"), "effects": _effects(r, reveal_prompt),
            "weight_curves": _curves(r, reveal_prompt), "accepted": run.accepted}


PRIVATE_CELL_KEYS = ("prompt", "negative", "keywords", "labels", "truncated_keywords")


def _effects(record, reveal: bool) -> list[dict]:
    """Each measured keyword effect: its place among the run's keywords (1-based), and its text only if revealed."""
    keywords = record.spec.keywords
    return [{"keyword_index": keywords.index(k) + 1 if k in keywords else None, **({"keyword": k} if reveal else {}),
             **e.dump()} for k, e in (record.effects or {}).items()]


def _curves(record, reveal: bool) -> list[dict]:
    """Each weight axis's curve: its keyword's place among the run's keywords (1-based), its text only if revealed,
    and its points."""
    keywords = record.spec.keywords
    return [{"keyword_index": keywords.index(k) + 1 if k in keywords else None, **({"keyword": k} if reveal else {}),
             "points": [p.dump() for p in points]} for k, points in (record.weight_curves or {}).items()]


@click.command("accept")
@click.argument("run_id")
@click.option("--title", "-t", required=True, help="Title of the new experiment (any Unicode; it is published).")
@click.option("--pick", help="Only these cells, by the numbers `promptism runs RUN` shows: 0,2,5.")
@click.option("--again", is_flag=True, help="Accept a run that was accepted before (another experiment of it).")
@click.option("--allow-title-overlap", is_flag=True, help="Keep a title that contains the prompt or a keyword.")
@journal_option
def accept_cmd(run_id: str, title: str, pick: str | None, again: bool, allow_title_overlap: bool, journal_dir: Path) -> None:
    """Make RUN (or its picked cells) the next numbered experiment."""
    from ..runner.runs import accept_run, load_run

    try:
        picked = [int(p) for p in pick.split(",") if p.strip()] if pick is not None else None
    except ValueError:
        picked = []
    if picked == []:
        raise click.BadParameter(f"{quoted(pick)}: give cell numbers separated by commas, e.g. 0,2", param_hint="--pick")
    if picked and len(set(picked)) < len(picked):
        twice = next(p for p in picked if picked.count(p) > 1)
        raise click.BadParameter(f"{quoted(pick)} picks cell {twice} twice: name each cell once", param_hint="--pick")
    journal = Journal.open(journal_dir)
    exp = accept_run(journal, load_run(journal, run_id), title, picked, again=again, allow_title_overlap=allow_title_overlap)
    _say_accepted(exp)


@click.command("discard")
@click.argument("run_id")
@journal_option
def discard_cmd(run_id: str, journal_dir: Path) -> None:
    """Delete RUN's folder and images (accepted experiments keep their own copies)."""
    from ..runner.runs import discard_run, load_run

    run = load_run(Journal.open(journal_dir), run_id)
    discard_run(run)
    click.echo(f"discarded run {run.id}")


@click.command("rerun")
@click.argument("number", type=click.IntRange(min=1))
@click.option("--verify", is_flag=True, help="Exit 0 only if every image comes out pixel-identical (re-encoded, the PNG bytes the journal holds).")
@click.option("--model", "-m", "model", help="An imported experiment: make it on this model (default: the one it "
              "names, where that one is here).")
@click.option("--sampler", help="An imported experiment: make it with this sampler (default: the one it names).")
@click.option("--strict", is_flag=True, help="An imported experiment: refuse (each named, nothing run) when anything "
              "it records would not be applied; without it, it is made and each is named.")
@click.option("--json", "as_json", is_flag=True, help="Print progress as JSON lines.")
@LOCAL
@VERBOSE
@journal_option
def rerun_cmd(number: int, verify: bool, model: str | None, sampler: str | None, strict: bool, as_json: bool,
              local: bool, verbose: bool, journal_dir: Path) -> None:
    """Regenerate experiment NUMBER from its recorded model, seeds, settings and batch layout.

    An imported experiment (made by another tool) is made again from its recorded prompt, negative prompt, seeds,
    steps, guidance, size and sampler, as a new run: its images cannot be compared byte for byte with the originals.
    What it records that promptism cannot apply is named, one line each; --strict refuses it instead. (A run made
    here reruns with everything it was made with, so --strict holds for it.)
    """
    from ..runner.imported import is_imported
    from ..runner.runs import load_run
    from ..service.api import JobRequest
    from . import job_progress

    journal = Journal.open(journal_dir)
    exp = journal.get(number)  # an unknown number is refused before any service starts
    if is_imported(exp):
        _remake(journal, exp, verify=verify, model=model, sampler=sampler, strict=strict, as_json=as_json, local=local,
                verbose=verbose)
        return
    if model is not None or sampler is not None:
        raise click.UsageError(f"--model and --sampler are for imported experiments; #{number} reruns with what it was "
                               "made with")
    request = JobRequest(kind="rerun", journal=str(journal.path.absolute()), number=number)
    outcome, cancelled = job_progress.run(request, as_json=as_json, local=local, verbose=verbose)
    if cancelled:
        where = f"in run {outcome.run}" if outcome.run else "in its run (`promptism runs` lists it)"
        click.echo(f"cancelled: rerun of #{number} was cancelled; its finished images are {where}", err=True)
        click.get_current_context().exit(130)
    run = load_run(journal, outcome.run)
    identical = bool(outcome.verified)
    verdict = "pixel-identical to the journal" if identical else f"DIFFERENT from the journal (cells {run.record.mismatched})"
    click.echo(f"rerun of #{number} → run {run.id}: {verdict}")
    if verify and not identical:
        raise click.ClickException(f"#{number} did not reproduce: see run {run.id}")


def _remake(journal: Journal, exp, *, verify: bool, model: str | None, sampler: str | None, strict: bool,
            as_json: bool, local: bool, verbose: bool) -> None:
    """Make imported experiment ``exp``'s images again as a new run (see ``runner.imported``)."""
    from ..runner.imported import remake
    from ..service.api import JobRequest
    from . import job_progress

    if verify:
        raise click.UsageError(f"#{exp.number} was imported (made by another tool): its images cannot be compared byte "
                               "for byte, so there is nothing to --verify")
    job = remake(exp, load_settings(), model=model, sampler_name=sampler)
    if strict and job.left_out:  # refused before any service starts: nothing is run or written
        for line in job.left_out:
            click.echo(one_line(f"promptism: --strict: #{exp.number} is not made, as it would leave out {line}"), err=True)
        click.get_current_context().exit(1)
    request = JobRequest(kind="grid", journal=str(journal.path.absolute()), spec=job.spec, options=absolute(job.options))
    outcome, cancelled = job_progress.run(request, as_json=as_json, local=local, verbose=verbose)
    if outcome.run is None or cancelled:
        kept = f"; its finished images are in run {outcome.run}" if outcome.run else " before it made an image"
        click.echo(f"cancelled: making #{exp.number} again was cancelled{kept}", err=True)
        click.get_current_context().exit(130)
    left_out = f" (not applied: {'; '.join(job.left_out)})" if job.left_out else ""
    notes = f" ({'; '.join(job.notes)})" if job.notes else ""
    click.echo(one_line(f"#{exp.number} made again from imported settings → run {outcome.run}: not comparable byte "
                        f"for byte (made by another tool){left_out}{notes}"))


@click.command("resume")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print progress as JSON lines.")
@click.option("--reveal-prompt", is_flag=True, help="Name the keywords in the keyword effects (they are numbered otherwise).")
@LOCAL
@VERBOSE
@journal_option
def resume_cmd(run_id: str, as_json: bool, reveal_prompt: bool, local: bool, verbose: bool, journal_dir: Path) -> None:
    """Finish RUN, interrupted (its process or the service died) or cancelled: only its missing images, in its
    recorded batches, on its device and thread count — byte-identical to a run that was never interrupted."""
    from ..runner.runs import load_run
    from ..service.api import JobRequest
    from . import job_progress

    journal = Journal.open(journal_dir)
    run = load_run(journal, run_id)  # an unknown run is refused before any service starts
    request = JobRequest(kind="resume", journal=str(journal.path.absolute()), run=run.id)
    _, cancelled = job_progress.run(request, as_json=as_json, local=local, verbose=verbose)
    _conclude(load_run(journal, run.id), as_json=as_json, reveal=reveal_prompt, cancelled=cancelled)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_cmd(as_json: bool) -> None:
    """List the models that can load here: built-ins, configured folders, diffusers repos in the Hugging Face cache,
    and the checkpoints, LoRAs, embeddings and VAEs of the AUTOMATIC1111 / ComfyUI installs config.toml names."""
    from ..runner.model_files import installs, model_files
    from ..runner.models import BUILTIN_CLIPS, available, configured_folders

    settings = load_settings()
    for line in configured_folders(settings)[1] + installs(settings)[1]:
        say(f"promptism: {line}", err=True)
    found, files = available(settings), model_files(settings)
    if as_json:
        click.echo(dump_json([{"id": m.id, "kind": m.kind, "path": str(m.path), "revision": m.revision,
                                "description": m.description} for m in found]
                             + [{"id": f.name, "kind": f.kind, "path": str(f.path), "title": f.title(),
                                 "install": f.install} for f in files]))
        return
    print_table(["model", "kind", "what"], [[m.id, m.kind, m.description] for m in found]
                + [[f.title() if f.kind == "checkpoint" else f.name, f.kind, f"{f.install}: {f.path}"] for f in files])
    click.echo("CLIP scorers: " + "; ".join(f"{k} — {v}" for k, v in BUILTIN_CLIPS.items()) + "; or ARCH:CHECKPOINT")


@click.command("samplers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def samplers_cmd(as_json: bool) -> None:
    """List the samplers --sampler takes: AUTOMATIC1111's names, each with the diffusers scheduler it runs and the
    schedule types it takes ("DPM++ 2M" + "Karras": --sampler "DPM++ 2M Karras")."""
    from ..samplers import EXTENDED, NOT_MADE, NOT_RUN, PLAIN, SAMPLERS, SCHEDULES, schedules_of

    if as_json:
        click.echo(dump_json([{"name": s.name, "scheduler": s.scheduler, "settings": s.settings, "ancestral": s.ancestral,
                               "schedules": {label: SCHEDULES[label].settings for label in schedules_of(s)}}
                              for s in SAMPLERS.values()]))
        return
    every = list(SCHEDULES)
    print_table(["sampler", "diffusers scheduler", "settings", "schedule types", "noise"],
                [[s.name, s.scheduler, ", ".join(f"{k}={v}" for k, v in s.settings.items()),
                  "all below" if schedules_of(s) == every else ", ".join(schedules_of(s)) or "—",
                  "fresh each step" if s.ancestral else ""] for s in SAMPLERS.values()])
    click.echo()
    print_table(["schedule type", "API name", "diffusers"],
                [[", ".join(PLAIN.values()), ", ".join(PLAIN), "the sampler alone: the model's own timestep spacing "
                  "(Automatic: A1111's default for the sampler, DPM++ 2M → Karras …)"]]
                + [[s.label, s.key, "NVIDIA's sigmas (SD 1.x / SDXL), interpolated as A1111 does" if s.sigmas else
                    ", ".join(f"{k}={v}" for k, v in s.settings.items())] for s in SCHEDULES.values()])
    click.echo("A sampler with a schedule type is one name: --sampler \"DPM++ 2M Karras\", \"Euler a SGM Uniform\". "
               "Without --sampler (or the sampler setting, or a spec's [params] sampler) a run uses the model folder's own "
               "scheduler. Samplers with fresh noise each step draw it from each image's own seed (DPM++ SDE: a torchsde "
               "Brownian tree per image, seeded with it), so reruns are byte-identical and an image's noise does not "
               "depend on its batch. Not made: " + ", ".join(NOT_RUN) + " (samplers); "
               + ", ".join(label for label, _ in NOT_MADE.values()) + " (schedule types).")
    for name, (added, why) in EXTENDED.items():
        click.echo(f"promptism extends {name} with {', '.join(sorted(added))} (EulerDiscreteScheduler's sigmas for "
                   f"them): {why}.")


def _guided_settings(opts: dict):
    """The CLIP-guided settings the command line gave, over the defaults; None when it gave none."""
    given = {k: opts[k] for k in ("lr", "cutouts", "tv") if opts[k] is not None}
    if opts["no_quantize"]:
        given["quantize"] = False
    if not given:
        return None
    from ..contract import GuidedSettings

    return GuidedSettings(**given)


def _report(run, cells: bool = False, reveal: bool = False, keep_hint: bool = True) -> None:
    """What a run made. Keyword effects are named only when ``reveal`` (--reveal-prompt), by number otherwise; how
    to keep it, unless ``keep_hint`` is False (the command accepts it itself)."""
    r = run.record
    out = console()
    comp = r.compute
    took = f" in {comp.seconds:.1f} s on {comp.device}" if comp.seconds is not None else ""
    energy = f", {comp.energy_wh:.3f} Wh ≈ {comp.co2_g:.2f} g CO2" if comp.energy_wh is not None else ""
    made_by = ", ".join(m.credited for m in r.models.values()) if r.models else \
        f"{r.model.credited} ({r.model.description})"
    out.print(literal(f"run {run.id} · {run.state} · {len(run.done)}/{len(r.cells)} images by {made_by}{took}{energy}"))
    if cells:
        print_table(["#", "seed", "steps", "guidance", "score", "image"],
                    [[str(c.index), str(c.seed), _blank(c.steps), _blank(c.guidance),
                      f"{c.score:.3f}" if c.score is not None else "", str(run.image(c)) if c.file else "—"]
                     for c in r.cells])
    elif run.done:
        out.print(literal(f"  images in {run.folder}"))
    if (run.folder / "sheet.png").exists():
        out.print(literal(f"  contact sheet: {run.folder / 'sheet.png'}"))
    if effects := _effects(r, reveal):
        named = [(e["keyword"] if reveal else f"keyword {e['keyword_index']}", e["effect"]) for e in effects]
        out.print(literal("  keyword effects (CLIP, with − without): " + ", ".join(f"{k} {v:+.3f}" for k, v in named)
                          + ("" if reveal else "  (--reveal-prompt names them)")))
    for curve in _curves(r, reveal) if cells else []:
        name = curve["keyword"] if reveal else f"keyword {curve['keyword_index']}"
        out.print(literal(f"  {name} by weight (CLIP: similarity to it, and its change from the lowest weight):"))
        print_table(["weight", "similarity", "effect", "pairs"],
                    [[f"{p['weight']:g}", f"{p['similarity']:.3f}", f"{p['effect']:+.3f}", str(p["pairs"])]
                     for p in curve["points"]])
    if run.state in ("interrupted", "cancelled") and len(run.done) < len(r.cells) and r.rerun_of is None:
        out.print(literal(f"  finish it: promptism resume {run.id}"))
    if keep_hint and run.done and not run.accepted:
        out.print(literal(f"  keep it: promptism accept {run.id} --title \"…\" [--pick 0,2]"))


def _blank(value) -> str:
    return "" if value is None else str(value)


def _copy_out(run, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for cell in run.done:
        shutil.copyfile(run.image(cell), out / f"{run.id}-{cell.file}")


