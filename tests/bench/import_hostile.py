"""Benchmark: reading hostile metadata on import (the timings tests/test_import.py used to assert, now measured here).

    python tests/bench/import_hostile.py [--repeat 3]

The tests check the structure (a huge A1111 or InvokeAI 2 chunk is never handed to sd-parsers, whose patterns are
quadratic on it; a ComfyUI graph of hundreds of samplers reaches it cut to the nearest few; a stealth gzip bomb is
inflated no further than a limit). This script times ``read_source`` on each of those files against an ordinary
A1111 PNG of the same size and prints one JSON object: the median seconds of each, its ratio to the ordinary one, and
the load average before and after (other work on the machine slows every number, not the ratios as much). Before the
bounds the hostile files took 15 s (40 KB of A1111 hashes) to minutes (a thousand ComfyUI samplers); the goals, on a
2-core CPU, are those the tests used to assert: under 2 s for a huge chunk, under 3 s for the graph and the bomb.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from journal.importing import read_source  # noqa: E402
from tests import import_samples as samples  # noqa: E402
from tests.helpers import make_png  # noqa: E402


def files(folder: Path) -> dict[str, Path]:
    made = {
        "ordinary a1111": make_png(folder / "ordinary.png", text={"parameters": samples.a1111_infotext(1234, samples.A1111_PROMPT)}),
        "a1111 hashes 40 KB": make_png(folder / "hashes.png", text={
            "parameters": "a\nSteps: 1, Sampler: Euler, Seed: 1, " + "Hashes: {" * 40_000}),
        "invokeai dream 40 KB": make_png(folder / "dream.png", text={"Dream": '"' * 40_000 + "\nx"}),
        "comfyui 600 samplers": make_png(folder / "comfyui.png", text={"prompt": json.dumps(samples.comfy_hostile_graph(600))}),
    }
    bomb = folder / "bomb.png"
    samples.stealth(samples.pixels((800, 800), seed=1), "a" * 64 * 2**20).save(bomb)
    made["stealth gzip bomb 64 MB"] = bomb
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        seconds = {}
        for name, path in files(Path(tmp)).items():
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                read_source(path)
                times.append(time.perf_counter() - started)
            seconds[name] = statistics.median(times)
    ordinary = seconds["ordinary a1111"]
    print(json.dumps({
        "repeat": args.repeat,
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "ratio_to_ordinary": {k: round(v / ordinary, 1) for k, v in seconds.items()},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
