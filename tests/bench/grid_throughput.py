"""Grid throughput: a 4-keyword leave-one-out grid × 4 seeds (20 images) three ways, on the same pipeline.

    python tests/bench/grid_throughput.py [--model tiny] [--steps 4] [--size 64] [--repeat 3] [--service] [--json]

  naive_s    one diffusers call per image, prompt as text (what A1111's X/Y plot does)
  batched_s  one hand-written diffusers call for all 20 images with a list of generators
  runner_s   promptism's runner end to end: embeddings once per variant, batches, PNGs and manifest written,
             contact sheet drawn
  service_s  (--service) the same grid as a job of a warm service (started detached in a temporary runtime folder,
             stopped at the end), from submitting it to its end event: the runner plus the service's queue, HTTP
             and progress stream
Each is the best of --repeat runs. Goals on the CPU: runner ≥ 1.2× faster than naive, within 1.1× of batched;
service within 5 % of runner.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from journal import Journal
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.runner.devices import device_name, pick_device
from workshop.runner.models import load_pipeline, resolve
from workshop.runner.session import RunOptions, execute

SPEC = {"prompt": "a red circle on a blue background", "keywords": ["glowing", "pixel art", "striped", "outlined"],
        "mode": "leave-one-out", "seeds": [1, 2, 3, 4]}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def through_service(tmp: Path, journal: Journal, options: RunOptions, repeat: int) -> float:
    """The grid as a job of a warm service of its own (a runtime and state folder in ``tmp``), best of ``repeat``
    from submit to the end of its progress stream; the service is stopped before returning."""
    from workshop.service.api import JobRequest
    from workshop.service.client import connect
    from workshop.service.daemon import running_pid
    from workshop.service.executor import options_to_json

    os.environ.update(PROMPTISM_RUNTIME=str(tmp / "rt"), PROMPTISM_STATE=str(tmp / "state"))
    client = connect(autostart=True)
    request = JobRequest(kind="grid", journal=str(journal.path.absolute()), spec=dict(SPEC), options=options_to_json(options))
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=None, help="square size (default: the model's native size)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=20)
    parser.add_argument("--service", action="store_true", help="also time the grid as a job of a warm service")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = pick_device()
    pipe = load_pipeline(resolve(args.model), device)
    size = args.size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    grid = build_grid(spec_from(dict(SPEC)))
    cells = grid.cells
    common = dict(num_inference_steps=args.steps, guidance_scale=7.5, width=size, height=size, output_type="pil")

    def naive():
        for c in cells:
            pipe(prompt=c.prompt, negative_prompt=c.negative, generator=torch.Generator("cpu").manual_seed(c.seed), **common)

    def batched():
        pipe(prompt=[c.prompt for c in cells], negative_prompt=[c.negative for c in cells],
             generator=[torch.Generator("cpu").manual_seed(c.seed) for c in cells], **common)

    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.init(Path(tmp) / "journal")
        options = RunOptions(model=args.model, steps=args.steps, size=(size, size), max_batch=args.max_batch)

        def runner():
            execute(grid, options, journal)

        runner()  # warm-up: the first call pays one-off costs in every variant alike
        results = {"naive_s": best(naive, args.repeat), "batched_s": best(batched, args.repeat), "runner_s": best(runner, args.repeat)}
        if args.service:
            results["service_s"] = through_service(Path(tmp), journal, options, args.repeat)
    info = {"images": len(cells), "model": args.model, "steps": args.steps, "size": size, "max_batch": args.max_batch,
            "device": device_name(device)}
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in results.items()} | info))
    else:
        print(f"{len(cells)} images, {args.model} at {size}×{size}, {args.steps} steps, on {info['device']}")
        for key, value in results.items():
            print(f"  {key:<10} {value:7.3f} s")
        print(f"  runner is {results['naive_s'] / results['runner_s']:.2f}× faster than naive (goal ≥ 1.2) and "
              f"{results['runner_s'] / results['batched_s']:.2f}× the hand-batched time (goal ≤ 1.1)")
        if "service_s" in results:
            print(f"  through the service: {results['service_s'] / results['runner_s']:.3f}× the runner's time (goal ≤ 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
