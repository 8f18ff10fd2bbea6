"""The command line's own start: whole-process wall time of commands that load no model.

    python tests/bench/cli_start.py [--repeat 9] [--json]

Times `promptism --version`, `promptism log` on an empty journal and `promptism samplers` as whole processes (the
`promptism` script of this environment), each the median of ``--repeat`` runs, and reports which heavy libraries
each one imports (``-X importtime``: torch, numpy, PIL, git, diffusers). A warm 1-image `generate` through the
service is timed by service_latency.py. Goals on a quiet 2-core CPU: `--version` ≤ 0.15 s; a warm generate ≤ 0.5 s.
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

SCRIPT = str(Path(sys.executable).parent / "promptism")
HEAVY = ("torch", "numpy", "PIL", "git", "diffusers", "transformers", "textual", "httpx", "rich", "pydantic")
COMMANDS = {"--version": ["--version"], "log": ["log"], "samplers": ["samplers"]}


def wall(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run([SCRIPT, *argv], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"promptism {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return time.perf_counter() - start


def imported(argv: list[str], env: dict) -> list[str]:
    """The heavy top-level packages the command imports."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "workshop.cli", *argv], env=env, capture_output=True,
                          text=True)
    names = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [h for h in HEAVY if h in names]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pl-") as tmp:
        (Path(tmp) / "c.toml").touch()  # no settings (a $PROMPTISM_CONFIG must name a file that is there)
        env = {**os.environ, "PROMPTISM_JOURNAL": str(Path(tmp) / "journal"), "PROMPTISM_CONFIG": str(Path(tmp) / "c.toml")}
        subprocess.run([SCRIPT, "init"], env=env, capture_output=True, check=True)
        result = {"load_before": os.getloadavg()[0]}
        for name, argv in COMMANDS.items():
            wall(argv, env)  # the file cache warmed
            result[name] = {"wall_s": round(statistics.median(wall(argv, env) for _ in range(args.repeat)), 3),
                            "imports": imported(argv, env)}
        result["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"whole-process medians of {args.repeat} (load average {result['load_before']:.1f} → {result['load_after']:.1f}):")
    for name in COMMANDS:
        print(f"  promptism {name:<10} {result[name]['wall_s']:.3f} s   imports: {', '.join(result[name]['imports']) or '—'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
