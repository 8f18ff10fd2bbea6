"""Service latency: one 1-image `shapes` generate, cold (in-process, `--local`) vs through a warm service.

    python tests/bench/service_latency.py [--repeat 5] [--json]

For each way it times the whole CLI command (wall, from starting the process to its exit) and the time to the first
step event (from starting the process to the first `Step` JSON line on stdout); for the service also its own share:
from a client submitting the job over the socket to the job's first step event (`service_first_step_s`, no CLI start
in it). The service runs in a temporary runtime/state folder with a temporary journal, is warmed by one generate
first, and is stopped at the end. Goals on a 2-core CPU: warm generate ≤ 1.0 s wall; first step through the service
≤ 0.3 s.
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

PROMPTISM = [str(Path(sys.executable).parent / "promptism")]
ARGS = ["generate", "a red circle on a blue background", "--seed", "1", "--json"]


def timed(argv: list[str], env: dict) -> tuple[float, float | None]:
    """(wall seconds, seconds to the first Step line) of one command."""
    start = time.perf_counter()
    first_step = None
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) as proc:
        for line in proc.stdout:
            if first_step is None and '"event": "Step"' in line:
                first_step = time.perf_counter() - start
        err = proc.stderr.read()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"promptism {' '.join(argv[1:])} failed ({proc.returncode}): {err.strip()}")
    return wall, first_step


def submitted_to_first_step(env: dict) -> float:
    """Seconds from submitting the generate's job over the socket to its first step event (a warm service)."""
    os.environ.update({k: env[k] for k in ("PROMPTISM_RUNTIME", "PROMPTISM_STATE", "PROMPTISM_JOURNAL")})
    from workshop.runner.events import Step
    from workshop.service.api import JobRequest
    from workshop.service.client import connect

    client = connect(autostart=False)
    request = JobRequest(kind="grid", journal=env["PROMPTISM_JOURNAL"], spec={"prompt": ARGS[1], "seeds": [1]})
    start = time.perf_counter()
    job = client.submit(request)
    seconds = None
    for item in client.follow(job.id, request.journal):
        if seconds is None and isinstance(item, Step):
            seconds = time.perf_counter() - start
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pl-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "PROMPTISM_JOURNAL": str(root / "journal"), "PROMPTISM_RUNTIME": str(root / "rt"),
               "PROMPTISM_STATE": str(root / "state"), "HF_HUB_OFFLINE": "1", "PROMPTISM_SERVICE": "on"}
        cold = [timed([*PROMPTISM, *ARGS, "--local"], env) for _ in range(args.repeat)]
        try:
            timed([*PROMPTISM, *ARGS], env)  # starts the service (detached) and warms the model
            warm = [timed([*PROMPTISM, *ARGS], env) for _ in range(args.repeat)]
            own = [submitted_to_first_step(env) for _ in range(args.repeat)]
        finally:
            subprocess.run([*PROMPTISM, "serve", "stop"], env=env, capture_output=True)
    median = lambda values: round(statistics.median(values), 3)  # noqa: E731
    result = {
        "cold_wall_s": median([w for w, _ in cold]), "cold_first_step_s": median([s for _, s in cold if s is not None]),
        "warm_wall_s": median([w for w, _ in warm]), "warm_first_step_s": median([s for _, s in warm if s is not None]),
        "service_first_step_s": median(own),
        "repeat": args.repeat,
    }
    result["speedup"] = round(result["cold_wall_s"] / result["warm_wall_s"], 2)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"1-image shapes generate, median of {args.repeat}:")
        print(f"  cold (--local)   wall {result['cold_wall_s']:.3f} s · first step {result['cold_first_step_s']:.3f} s")
        print(f"  warm service     wall {result['warm_wall_s']:.3f} s · first step {result['warm_first_step_s']:.3f} s "
              f"(goals ≤ 1.0 s and ≤ 0.3 s)")
        print(f"  the service itself: submit → first step {result['service_first_step_s']:.3f} s")
        print(f"  the warm service is {result['speedup']:.1f}× faster end to end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
