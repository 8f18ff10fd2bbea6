"""Service latency: one 1-image generate, cold (in-process, `--local`) vs through a warm service.

    python tests/bench/service_latency.py [--repeat 5] [--model shapes] [--steps N] [--size WxH] [--cold-only] [--json]

For each way it times the whole CLI command (wall, from starting the process to its exit) and the time to the first
step event (from starting the process to the first `Step` JSON line on stdout); for the service also its own share:
from a client submitting the job over the socket to the job's first step event (`service_first_step_s`, no CLI start
in it). The cold runs are `--verbose`: their phases until the first step (imports, loading the model …) are
reported too, as medians. The service runs in a temporary runtime/state folder with a temporary journal; the
generate that starts it is the cold service start (`cold_service_*`, one sample, its phases too); it is stopped at
the end. ``--cold-only`` times the cold command alone, no service (on a GPU machine, with
``--model`` a folder from sd15_shaped.py: the first command's cold start). The CLI runs as ``python -m workshop.cli``
(what the `promptism` script runs; it works where no script is installed). Goals on a 2-core CPU (shapes): warm
generate ≤ 0.5 s wall (issue 24); first step through the service ≤ 0.3 s. On a GPU machine: cold generate to its first step
≤ 6 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workshop.contract import GivenOptions, Spec
from workshop.runner.options import parse_size

PROMPTISM = [sys.executable, "-m", "workshop.cli"]
PROMPT = "a red circle on a blue background"


def timed(argv: list[str], env: dict, phases: dict[str, list[float]] | None = None) -> tuple[float, float | None]:
    """(wall seconds, seconds to the first Step line) of one command; its Phase events' seconds (with --verbose)
    added to ``phases``, by name."""
    start = time.perf_counter()
    first_step = None
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) as proc:
        for line in proc.stdout:
            if first_step is None and '"event": "Step"' in line:
                first_step = time.perf_counter() - start
            elif phases is not None and '"event": "Phase"' in line:
                event = json.loads(line)
                phases.setdefault(event["name"], []).append(event["seconds"])
        err = proc.stderr.read()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"promptism {' '.join(argv[1:])} failed ({proc.returncode}): {err.strip()}")
    return wall, first_step


def submitted_to_first_step(env: dict, options) -> float:
    """Seconds from submitting the generate's job (with run ``options``) over the socket to its first step event (a
    warm service)."""
    os.environ.update({k: env[k] for k in ("PROMPTISM_RUNTIME", "PROMPTISM_STATE", "PROMPTISM_JOURNAL")})
    from workshop.runner.events import Step
    from workshop.service.api import JobRequest
    from workshop.service.client import connect

    client = connect(autostart=False)
    request = JobRequest(kind="grid", journal=env["PROMPTISM_JOURNAL"], spec=Spec(prompt=PROMPT, seeds=[1]),
                         options=options)
    start = time.perf_counter()
    job = client.submit(request)
    seconds = None
    for item in client.follow(job.id, request.journal):
        if seconds is None and isinstance(item, Step):
            seconds = time.perf_counter() - start
    return seconds


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default="shapes")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--size", help="WIDTHxHEIGHT (default: the model's native size)")
    parser.add_argument("--cold-only", action="store_true", help="time the cold command alone (no service)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    command = [*PROMPTISM, "generate", PROMPT, "--seed", "1", "--json", "--model", args.model]
    command += ["--steps", str(args.steps)] if args.steps else []
    command += ["--size", args.size] if args.size else []
    options = GivenOptions(model=args.model, steps=args.steps, size=parse_size(args.size) if args.size else None)
    with tempfile.TemporaryDirectory(prefix="pl-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "PROMPTISM_JOURNAL": str(root / "journal"), "PROMPTISM_RUNTIME": str(root / "rt"),
               "PROMPTISM_STATE": str(root / "state"), "HF_HUB_OFFLINE": "1", "PROMPTISM_SERVICE": "on"}
        cold_phases: dict[str, list[float]] = {}
        cold = [timed([*command, "--local", "--verbose"], env, cold_phases) for _ in range(args.repeat)]
        result = {"model": Path(args.model).name, "repeat": args.repeat, "cold_wall_s": median([w for w, _ in cold]),
                  "cold_first_step_s": median([s for _, s in cold if s is not None]),
                  "cold_phases_s": {name: median(seconds) for name, seconds in cold_phases.items()}}
        if not args.cold_only:
            service_phases: dict[str, list[float]] = {}
            try:
                started = timed([*command, "--verbose"], env, service_phases)  # starts the service, warms the model
                warm = [timed(command, env) for _ in range(args.repeat)]
                own = [submitted_to_first_step(env, options) for _ in range(args.repeat)]
            finally:
                subprocess.run([*PROMPTISM, "serve", "stop"], env=env, capture_output=True)
            result |= {"cold_service_wall_s": round(started[0], 3), "cold_service_first_step_s": round(started[1], 3),
                       "cold_service_phases_s": {name: seconds[0] for name, seconds in service_phases.items()},
                       "warm_wall_s": median([w for w, _ in warm]),
                       "warm_first_step_s": median([s for _, s in warm if s is not None]),
                       "service_first_step_s": median(own)}
            result["speedup"] = round(result["cold_wall_s"] / result["warm_wall_s"], 2)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"1-image {result['model']} generate, median of {args.repeat}:")
    print(f"  cold (--local)   wall {result['cold_wall_s']:.3f} s · first step {result['cold_first_step_s']:.3f} s")
    for name, seconds in result["cold_phases_s"].items():
        print(f"    {name:<50} {seconds:7.3f} s")
    if not args.cold_only:
        print(f"  cold service     wall {result['cold_service_wall_s']:.3f} s · first step "
              f"{result['cold_service_first_step_s']:.3f} s (the generate that starts it; one sample)")
        for name, seconds in result["cold_service_phases_s"].items():
            print(f"    {name:<50} {seconds:7.3f} s")
        print(f"  warm service     wall {result['warm_wall_s']:.3f} s · first step {result['warm_first_step_s']:.3f} s "
              f"(goals ≤ 0.5 s and ≤ 0.3 s)")
        print(f"  the service itself: submit → first step {result['service_first_step_s']:.3f} s")
        print(f"  the warm service is {result['speedup']:.1f}× faster end to end")
    return 0

if __name__ == "__main__":
    sys.exit(main())
