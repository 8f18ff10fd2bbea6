"""Ray executor overhead: the same grid run by the service's local executor and by its Ray executor (a local Ray
cluster started here, CPU workers), with the stand-in pipeline (null_pipeline.py) in every process — its 512² images
after sleeping --ms-per-image per image, as a GPU takes while the CPU stays free — so what differs is the executor's
own cost per batch: dealing the batch to an actor, relaying its step events, bringing its pixels back through Ray's
object store (the same writer then writes them, off the critical path in both).

    python tests/bench/ray_overhead.py [--batches 8] [--batch 8] [--size 512] [--steps 20] [--ms-per-image 100]
                                       [--workers 1,2] [--repeat 2] [--json]

Reported per batch (best of --repeat, after a warm-up run of each): ``local_ms`` and, for each --workers count,
``ray_ms_N_workers``; ``overhead_ms`` = ray_ms − local_ms with one worker: what Ray adds to each batch on the
critical path (the "device" waits for it). With N workers the sleeps overlap: ray_ms_N ≈ (local_ms + overhead) / N
while the service's writer keeps up. The machine's load average is reported with them (other processes share the
CPU). Goal: overhead ≤ 20 ms per batch of 8 images at 512². --ms-per-image 0: instant images (then the stand-in's
own drawing and the writer compete for the CPU, and the numbers say more about the 2 cores than about Ray).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import ray

from workshop.service.api import JobRequest
from workshop.contract import GivenOptions, Spec
from workshop.service.executor import LocalExecutor
from workshop.service.ray_executor import RayExecutor

PROMPT = "a red circle on a blue background"


def null_everywhere() -> None:
    """(In every process: this one, and each Ray worker as it starts.) The runner's loader gives the stand-in
    pipeline at $RAY_BENCH_SIZE² for any model."""
    import torch

    from tests.bench.null_pipeline import NullPipeline
    from workshop.runner import backends

    size, ms = int(os.environ["RAY_BENCH_SIZE"]), float(os.environ["RAY_BENCH_MS"])
    pipes: dict[str, NullPipeline] = {}

    def load_pipeline(source, device, **kwargs):
        return pipes.setdefault(str(device), NullPipeline(torch.device(device), size=size, ms_per_image=ms))

    backends.load_pipeline = load_pipeline


def timed(executor, request: JobRequest, repeat: int) -> float:
    """The best of ``repeat`` runs of ``request``, in seconds (after one warm-up run)."""
    best = float("inf")
    for k in range(repeat + 1):
        start = time.perf_counter()
        outcome = executor.run(request, on_event=lambda e: None, cancel=lambda: False)
        seconds = time.perf_counter() - start
        if outcome.state != "finished":
            raise SystemExit(f"the run ended {outcome.state}")
        if k:
            best = min(best, seconds)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="images per batch")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ms-per-image", type=float, default=100.0, help="the stand-in's (the GPU's) time per image")
    parser.add_argument("--workers", default="1,2", help="Ray worker counts to time, comma-separated")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    bench_env = {"RAY_BENCH_SIZE": str(args.size), "RAY_BENCH_MS": str(args.ms_per_image)}
    os.environ.update(bench_env, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled")
    null_everywhere()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "null-pipeline"
        model.mkdir()
        (model / "model_index.json").write_text(json.dumps({"_class_name": "NullPipeline"}), encoding="utf-8")
        options = GivenOptions(model=str(model), steps=args.steps, size=(args.size, args.size), max_batch=args.batch,
                               clip="none")
        seeds = list(range(1, args.batches * args.batch + 1))

        def request(name: str) -> JobRequest:
            return JobRequest(kind="grid", journal=str(Path(tmp) / name), spec=Spec(prompt=PROMPT, seeds=seeds),
                              options=options, create=True)

        local = LocalExecutor()
        local.warm_up()
        results = {"local_ms": timed(local, request("local"), args.repeat) / args.batches * 1000}
        ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"worker_process_setup_hook": null_everywhere,
                              "env_vars": bench_env})
        try:
            for count in workers:
                executor = RayExecutor("auto", cpu_workers=count)
                executor.warm_up()
                try:
                    ms = timed(executor, request(f"ray{count}"), args.repeat) / args.batches * 1000
                finally:
                    executor.close()
                results[f"ray_ms_{count}_workers"] = ms
        finally:
            ray.shutdown()
    report = {k: round(v, 1) for k, v in results.items()}
    if 1 in workers:
        report["overhead_ms"] = round(results["ray_ms_1_workers"] - results["local_ms"], 1)
    report |= {"batches": args.batches, "batch": args.batch, "size": args.size, "steps": args.steps,
               "ms_per_image": args.ms_per_image,
               "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
               "load_after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(report) if args.json else "\n".join(f"{k:>20}  {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
