"""Benchmark: `promptism import DIR` over a folder of generated images with AUTOMATIC1111 metadata (issue 17's goal:
1,000 small images in at most 60 s), then the same import again, which must change nothing.

    python tests/bench/import_folder.py [--images 1000] [--size 64] [--keep DIR]

Prints one JSON object: how the folder was made, both timings (the CLI in a fresh process, as a user runs it), the
commits made, and the load average before and after (other work on the machine slows it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests import import_samples as samples  # noqa: E402


def make_folder(folder: Path, images: int, size: int) -> None:
    """A1111's naming and batches: ``NNNNN-SEED.png``, four images of a prompt with consecutive seeds."""
    folder.mkdir(parents=True)
    for k in range(images):
        seed = 1000 + k
        image = samples.pixels((size, size), seed=k)
        samples.png(folder / f"{k:05d}-{seed}.png", {"parameters": samples.a1111_infotext(seed, f"{samples.A1111_PROMPT}, take {k // 4}")},
                    image=image)


def promptism(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workshop.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"promptism {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")
    return elapsed, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="pixels a side")
    parser.add_argument("--keep", type=Path, help="make folder and journal here (kept), not in a temporary folder")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="import-bench-"))
    folder, journal = base / "outputs", base / "journal"
    started = time.perf_counter()
    make_folder(folder, args.images, args.size)
    made = time.perf_counter() - started
    load_before = os.getloadavg()
    first, done = promptism("import", str(folder), "--title", "Bench", "--journal", str(journal))
    again, redone = promptism("import", str(folder), "--title", "Bench", "--journal", str(journal))
    commits = int(subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=journal, capture_output=True, text=True).stdout)
    print(json.dumps({
        "images": args.images, "size": args.size, "cpus": os.cpu_count(), "folder_made_s": round(made, 2),
        "import_s": round(first, 2), "per_image_ms": round(1000 * first / args.images, 2), "reimport_s": round(again, 2),
        "summary": done.stdout.splitlines()[0], "reimport_summary": redone.stdout.splitlines()[0],
        "commits": commits - 1, "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }, indent=2))


if __name__ == "__main__":
    main()
