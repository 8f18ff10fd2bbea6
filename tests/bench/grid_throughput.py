"""Grid throughput: a 4-keyword leave-one-out grid × 4 seeds (20 images) made three ways on the same pipeline — or
the runner's own overhead on the critical path, measured with a stand-in pipeline (``--null``).

    python tests/bench/grid_throughput.py [--model tiny] [--steps 4] [--size 64] [--max-batch 20[,8…]] [--repeat 3]
                                          [--compile] [--no-naive] [--service] [--json]
    python tests/bench/grid_throughput.py --null [--null-ms-per-image MS] [--null-content noise|smooth] [--size 512]
                                          [--max-batch 8] [--json]

  naive_s    one diffusers call per image, prompt as text (what A1111's X/Y plot does); --no-naive leaves it out (the
             slowest, and the same whatever --max-batch or --compile)
  batched_s  one hand-written diffusers call for all 20 images with a list of generators
  runner     promptism's runner end to end, at each --max-batch: embeddings once per variant, batches, PNGs and
             manifest written, contact sheets drawn; "identical" says whether every repeat wrote byte-identical PNGs
             (the reproducibility contract). With --compile the runner runs with Speedups(compile=True) instead
             (each --max-batch warmed once first: that call pays the compile); naive and batched stay eager
  service_s  (--service) the grid as a job of a warm service (started detached in a temporary runtime folder, stopped
             at the end), from submitting it to its end event, at the first --max-batch
Each is the best of --repeat runs, after one warm-up run of the runner.

--null swaps the pipeline the runner loads for ``null_pipeline.NullPipeline`` (in this process only): it returns
--size² images (default 512²) at once, or after sleeping MS per image (a GPU's batch time while the CPU stays free;
155 ms is an SD-1.5-shaped 512² image in 20 steps on an H100), of noise (as a random-weight pipeline makes) or smooth
pixels. Reported per image: ``overhead_ms`` = (runner wall − time inside the stand-in's __call__) / images, and
``critical_ms`` = (runner wall − the stand-in's device time) / images, which also counts the conversion to PIL that a
pipeline asked for output_type "pil" does on the CPU. ``batched_s`` is then the stand-in alone, called once for all
images (the pure run). Goal: ≤ 8 ms per 512² image.

Goals on the CPU (tiny): runner ≥ 1.2× faster than naive, within 1.05× of batched; service within 5 % of runner.
On a GPU (SD-1.5-shaped, 512², 20 steps): runner ≤ 1.05× batched at --max-batch 20 and 8; with --compile, warm,
faster than the eager batched call. Models for the GPU: tests/bench/sd15_shaped.py and sdxl_shaped.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from journal import Journal
from journal.images import sha256_file
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner.devices import device_name, pick_device
from workshop.runner.models import load_pipeline, resolve
from workshop.runner.execution import RunOptions, execute

SPEC = {"prompt": "a red circle on a blue background", "keywords": ["glowing", "pixel art", "striped", "outlined"],
        "mode": "leave-one-out", "seeds": [1, 2, 3, 4]}


@dataclass(frozen=True)
class RunnerTime:
    max_batch: int
    compile: bool
    seconds: float  # the best of the repeats
    identical: bool  # every repeat wrote byte-identical PNGs
    call_s: float | None = None  # --null: time inside the stand-in's __call__ in the best repeat
    device_s: float | None = None  # --null: the stand-in's device time in the best repeat


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def time_runner(grid, options: RunOptions, journal: Journal, repeat: int, *, null=None, compile: bool = False) -> RunnerTime:
    """The best of ``repeat`` runs of the runner, and whether they all wrote the same bytes."""
    fastest, made, clocks = float("inf"), set(), (None, None)
    for _ in range(repeat):
        if null is not None:
            null.reset_clocks()
        start = time.perf_counter()
        run = execute(grid, options, journal)
        seconds = time.perf_counter() - start
        made.add(tuple(sha256_file(run.image(c)) for c in run.record.cells))
        if seconds < fastest:
            fastest, clocks = seconds, ((null.call_s, null.device_s) if null is not None else (None, None))
    return RunnerTime(options.max_batch, compile, fastest, len(made) == 1, *clocks)


def compiled(options: RunOptions) -> RunOptions:
    """``options`` with torch.compile turned on (Speedups lands with issue 15's speed-ups)."""
    try:
        from workshop.runner.speedups import Speedups
    except ImportError:
        raise SystemExit("--compile needs workshop.runner.speedups (issue 15's speed-ups), which this checkout does not "
                         "have yet: leave out --compile") from None
    return options.model_copy(update={"speedups": Speedups(compile=True)})


def through_service(tmp: Path, journal: Journal, options: RunOptions, repeat: int) -> float:
    """The grid as a job of a warm service of its own (a runtime and state folder in ``tmp``), best of ``repeat``
    from submit to the end of its progress stream; the service is stopped before returning."""
    from workshop.service.api import JobRequest
    from workshop.service.client import connect
    from workshop.service.daemon import running_pid
    from workshop.contract import GivenOptions

    os.environ.update(PROMPTISM_RUNTIME=str(tmp / "rt"), PROMPTISM_STATE=str(tmp / "state"))
    client = connect(autostart=True)
    given = GivenOptions(model=options.model, steps=options.steps, size=options.size, max_batch=options.max_batch,
                         clip=options.clip)
    request = JobRequest(kind="grid", journal=str(journal.path.absolute()), spec=dict(SPEC), options=given)
    try:
        def job():
            for item in client.follow(client.submit(request).id, request.journal):
                pass
            if getattr(item, "state", None) != "finished":
                raise SystemExit(f"the service's job ended {getattr(item, 'state', '?')}: {getattr(item, 'error', '')}")

        job()  # warm-up: the service loads the model
        return best(job, repeat)
    finally:
        client.stop()
        while running_pid() is not None:  # gone (its lock released) before its folders are removed
            time.sleep(0.05)


def null_model(tmp: Path, pipe) -> str:
    """A model folder whose pipeline, in this process, is ``pipe``: the runner's loader is replaced (it resolves the
    folder as any local model, then gets ``pipe``)."""
    from workshop.runner import backends

    folder = tmp / "null-pipeline"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": type(pipe).__name__}), encoding="utf-8")
    backends.load_pipeline = lambda source, device, **kwargs: pipe
    return str(folder)


def parse_args() -> argparse.Namespace:
    from null_pipeline import CONTENTS  # a sibling module: this script's folder is on the path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a built-in model, a diffusers folder or a cached repo id (default: tiny)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=None, help="square size (default: the model's native size)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-batch", default="20", help="the runner's batch size; several, comma-separated, time each")
    parser.add_argument("--compile", action="store_true", help="the runner with Speedups(compile=True)")
    parser.add_argument("--no-naive", action="store_true", help="leave out the naive per-image loop")
    parser.add_argument("--service", action="store_true", help="also time the grid as a job of a warm service")
    parser.add_argument("--null", action="store_true", help="the runner's overhead with a stand-in pipeline")
    parser.add_argument("--null-ms-per-image", type=float, default=0.0, help="--null: the stand-in's time per image")
    parser.add_argument("--null-content", default="noise", choices=CONTENTS, help="--null: the stand-in's pixels (noise: the largest PNGs; smooth: the slowest to encode)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        args.max_batch = [int(b) for b in args.max_batch.split(",")]
    except ValueError:
        parser.error(f"--max-batch takes batch sizes separated by commas, e.g. 20,8, not {args.max_batch!r}")
    if args.null and (args.model or args.compile or args.service):
        parser.error("--null measures the runner with a stand-in pipeline: leave out --model, --compile and --service")
    return args


def main() -> int:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = pick_device()
    grid = build_grid(spec_from(dict(SPEC)))
    cells = grid.cells
    with tempfile.TemporaryDirectory() as tmp:
        null = None
        if args.null:
            from null_pipeline import NullPipeline

            null = NullPipeline(device, size=args.size or 512, ms_per_image=args.null_ms_per_image, content=args.null_content)
            model, pipe = null_model(Path(tmp), null), null
        else:
            model = args.model or "tiny"
            pipe = load_pipeline(resolve(model), device)
        size = args.size or pipe.unet.config.sample_size * pipe.vae_scale_factor
        common = dict(num_inference_steps=args.steps, guidance_scale=7.5, width=size, height=size, output_type="pil")

        def naive():
            for c in cells:
                pipe(prompt=c.prompt, negative_prompt=c.negative, generator=torch.Generator("cpu").manual_seed(c.seed), **common)

        def batched():
            pipe(prompt=[c.prompt for c in cells], negative_prompt=[c.negative for c in cells],
                 generator=[torch.Generator("cpu").manual_seed(c.seed) for c in cells], **common)

        journal = Journal.init(Path(tmp) / "journal")
        options = [RunOptions(model=model, steps=args.steps, size=(size, size), max_batch=b) for b in args.max_batch]
        runner_options = [compiled(o) for o in options] if args.compile else options
        execute(grid, options[0], journal)  # warm-up (eager): the first call pays one-off costs in every variant alike
        results: dict = {}
        if not (args.no_naive or args.null):
            results["naive_s"] = best(naive, args.repeat)
        results["batched_s"] = best(batched, args.repeat)
        runs = []
        for o in runner_options:  # after the eager variants: compiling may change the warm pipeline in place
            if args.compile:
                execute(grid, o, journal)  # warm-up: pays the compile for this batch size
            runs.append(time_runner(grid, o, journal, args.repeat, null=null, compile=args.compile))
        if args.service:
            results["service_s"] = through_service(Path(tmp), journal, options[0], args.repeat)
    info = {"images": len(cells), "model": "null" if args.null else Path(model).name, "steps": args.steps, "size": size,
            "device": device_name(device)}
    if args.null:
        info["null"] = {"ms_per_image": args.null_ms_per_image, "content": args.null_content}
    report = {k: round(v, 4) for k, v in results.items()} | info | {"runner": [_runner_json(r, results, len(cells)) for r in runs]}
    if args.json:
        print(json.dumps(report))
    else:
        _print(report, args)
    return 0


def _runner_json(r: RunnerTime, results: dict, images: int) -> dict:
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(r).items() if v is not None}
    out["vs_batched"] = round(r.seconds / results["batched_s"], 3)
    if "naive_s" in results:
        out["faster_than_naive"] = round(results["naive_s"] / r.seconds, 2)
    if r.call_s is not None:
        out["overhead_ms"] = round((r.seconds - r.call_s) / images * 1000, 2)
        out["critical_ms"] = round((r.seconds - r.device_s) / images * 1000, 2)
    return out


def _print(report: dict, args: argparse.Namespace) -> None:
    print(f"{report['images']} images, {report['model']} at {report['size']}×{report['size']}, {report['steps']} steps, "
          f"on {report['device']}")
    if args.null:
        print(f"  the stand-in: {args.null_ms_per_image:g} ms per image, {args.null_content} pixels")
    for key in ("naive_s", "batched_s", "service_s"):
        if key in report:
            print(f"  {key:<10} {report[key]:7.3f} s")
    for r in report["runner"]:
        line = (f"  runner{' compiled' if r['compile'] else ''} at max_batch {r['max_batch']}: {r['seconds']:.3f} s, "
                f"{r['vs_batched']:.2f}× batched")
        if "faster_than_naive" in r:
            line += f", {r['faster_than_naive']:.2f}× faster than naive"
        if "overhead_ms" in r:
            line += f"; overhead {r['overhead_ms']:.2f} ms/image, critical path {r['critical_ms']:.2f} ms/image (goal ≤ 8)"
        print(line + ("" if r["identical"] else "; REPEATS DIFFER"))
    if "service_s" in report:
        first = report["runner"][0]["seconds"]
        print(f"  through the service: {report['service_s'] / first:.3f}× the runner's time (goal ≤ 1.05)")


if __name__ == "__main__":
    sys.exit(main())
