"""Journal at scale: build an N-experiment journal (default 10,000), then time what an artist does every day.

    python tests/bench/journal_scale.py [--experiments N] [--json] [--keep DIR]

Reports, in seconds, each on a freshly opened Journal (cold index read included):
  list_s     open + list the newest 20
  search_s   open + a title search
  accept_s   open + accept one more experiment with a 64×64 image
  publish_s  open + publish one experiment to a new gallery
The history is written with ``git fast-import`` (one commit and tag per experiment, as accept makes them), so
building 10,000 experiments takes seconds rather than the hour 10,000 real accepts would.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from journal import Journal, ModelInfo, NewExperiment, NewImage
from journal.images import clean_png
from journal.index import Index
from journal.journal import DB_FILE, EXPERIMENT_FILE, _encode
from journal.model import Experiment, ImageRecord
from journal.slug import slugify

IMAGES_PER_EXPERIMENT = 4
MODELS = ["shapes", "stabilityai/stable-diffusion-2-1", "runwayml/stable-diffusion-v1-5", "vqgan-clip:shapes+shapes-clip"]
KEYWORDS = ["trending on artstation", "rendered in unreal engine", "in the style of Basquiat", "pixel art", "glowing"]


def build(path: Path, n: int) -> None:
    """A journal of ``n`` experiments with IMAGES_PER_EXPERIMENT 64×64 images each, committed and tagged."""
    Journal.init(path)
    png = clean_png(Image.new("RGB", (64, 64), (180, 40, 40)))
    stream = io.BytesIO()
    w = stream.write
    w(b"blob\nmark :1\ndata %d\n" % len(png.data) + png.data + b"\n")
    docs = {}
    parent = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True).stdout.strip()
    for number in range(1, n + 1):
        title = f"study {number} in {['red', 'blue', 'ochre', 'teal'][number % 4]}"
        slug = slugify(title)
        stamp = f"2026-{1 + number % 12:02d}-{1 + number % 28:02d}T12:00:00Z"
        exp = Experiment(
            number=number, title=title, slug=slug, dir=f"experiments/{number:04d}-{slug}",
            model=ModelInfo(MODELS[number % len(MODELS)], pipeline="StableDiffusionPipeline", scheduler="DDIMScheduler"),
            images=tuple(ImageRecord(file=f"{k:02d}-s{k}.png", sha256=png.sha256, width=64, height=64, seed=k,
                                     prompt=f"a red circle on a blue background, {KEYWORDS[k % 5]}", score=0.25 + k / 100)
                         for k in range(1, IMAGES_PER_EXPERIMENT + 1)),
            created=stamp, updated=stamp, prompt="a red circle on a blue background", negative_prompt="blurry",
            keywords=tuple(KEYWORDS[: 1 + number % 5]), grid={"mode": "leave-one-out"}, params={"steps": 12, "guidance": 7.5},
            tool_version="bench",
        )
        docs[str(number)] = exp.to_doc()
        body = _encode(exp)
        message = f"#{number} {title}\n\nModel: {exp.model.id}\n".encode()
        w(b"commit refs/heads/main\nmark :%d\n" % (number + 1))
        w(b"committer promptism <promptism@localhost> 1764000000 +0000\n")
        w(b"data %d\n%s\n" % (len(message), message))
        w(b"from %s\n" % (parent.encode() if number == 1 else b":%d" % number))
        w(b"M 100644 inline %s/%s\ndata %d\n%s\n" % (exp.dir.encode(), EXPERIMENT_FILE.encode(), len(body), body))
        for image in exp.images:
            w(b"M 100644 :1 %s/%s\n" % (exp.dir.encode(), image.file.encode()))
        w(b"reset refs/tags/exp/%04d\nfrom :%d\n\n" % (number, number + 1))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=stream.getvalue(), check=True)
    subprocess.run(["git", "reset", "--hard", "--quiet", "main"], cwd=path, check=True)
    Index(path / DB_FILE).replace_all(docs.values())


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(path: Path, scratch: Path) -> dict[str, float]:
    image = scratch / "new.png"
    Image.new("RGB", (64, 64), (20, 60, 200)).save(image)
    n = len(Journal.open(path))
    results = {
        "list_s": timed(lambda: Journal.open(path).list(limit=20)),
        "search_s": timed(lambda: Journal.open(path).search("study 4321")),
        "accept_s": timed(lambda: Journal.open(path).accept(NewExperiment(
            title="one more 𝔰𝔱𝔲𝔡𝔶", model=ModelInfo("shapes"), images=[NewImage(image, seed=1)], prompt="secret"))),
        "publish_s": timed(lambda: Journal.open(path).publish([n // 2], scratch / "gallery")),
    }
    assert len(Journal.open(path)) == n + 1
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", "-n", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", type=Path, help="build the journal here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        path = args.keep or scratch / "journal"
        os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
        t0 = time.perf_counter()
        build(path, args.experiments)
        build_s = time.perf_counter() - t0
        results = measure(path, scratch)
        size_mb = (path / "journal.json").stat().st_size / 1e6
    if args.json:
        print(json.dumps({**results, "experiments": args.experiments, "build_s": round(build_s, 2), "index_mb": round(size_mb, 2)}))
    else:
        print(f"{args.experiments} experiments ({IMAGES_PER_EXPERIMENT} images each), index {size_mb:.1f} MB, "
              f"built in {build_s:.1f} s on {platform.machine()} with {os.cpu_count()} cores")
        for key, value in results.items():
            print(f"  {key:<10} {value:.3f} s" + ("" if value < 0.5 else "   (over the 0.5 s goal)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
