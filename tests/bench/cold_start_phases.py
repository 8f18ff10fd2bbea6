"""Benchmark: how much of a cold command's time to its first step its ``--verbose`` phases account for (the ratio
tests/test_cold_start.py used to assert, at least 0.8, now measured here).

    python tests/bench/cold_start_phases.py [--repeat 3] [--model tiny] [--steps 1]

The test checks the structure (the phases come in order, do not overlap, and torch and diffusers are imported inside
the phases named after them). This script runs ``promptism generate … --local --verbose --json`` cold (a fresh
process each time, a temporary journal) and prints one JSON object: each phase's median seconds, the median time to
the first step, and ``covered``: the phases' sum over that time (1.0: every moment is in a phase; the gaps between
phases are the rest). Goal: covered ≥ 0.8. The load average before and after is printed too (other work on the
machine lengthens the phases and the gaps alike).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOTAL = "to the first step, in all"


def table(stderr: str) -> dict[str, float]:
    """The --verbose block on stderr: phase → seconds, and the time to the first step."""
    lines = stderr[stderr.index("phases until the first step (seconds):"):].splitlines()[1:]
    rows = {}
    for line in lines:
        name, _, seconds = line.strip().rpartition(" ")
        try:
            rows[name.strip()] = float(seconds)
        except ValueError:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PROMPTISM_SERVICE": "off", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
        for k in range(args.repeat):
            done = subprocess.run([sys.executable, "-m", "workshop.cli", "generate", "a red circle", "--model", args.model,
                                   "--steps", str(args.steps), "--local", "--verbose", "--json",
                                   "--journal", str(Path(tmp) / f"j{k}")], capture_output=True, text=True, env=env,
                                  check=False)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            runs.append(table(done.stderr))
    names = [n for n in runs[0] if n != TOTAL]
    covered = [sum(v for n, v in run.items() if n != TOTAL) / run[TOTAL] for run in runs]
    print(json.dumps({
        "repeat": args.repeat, "model": args.model,
        "phases_s": {n: round(statistics.median(run.get(n, 0.0) for run in runs), 3) for n in names},
        "to_first_step_s": round(statistics.median(run[TOTAL] for run in runs), 3),
        "covered": round(statistics.median(covered), 3),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
