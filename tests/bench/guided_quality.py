"""Quality bar of the CLIP-guided backend ("VQGAN+CLIP") on the shapes world: the shapes VAE steered by shapes-clip.

    python tests/bench/guided_quality.py [--steps 200] [--seeds 3] [--save DIR] [--json]

  from grey   200 steps toward "a red circle on a blue background" from a flat grey start: shapes-clip similarity of
              the decoded image to the prompt at the start and at the end (bar: a clear rise), and the end image's
              red and blue pixel fractions (bar: a red region on a blue field)
  from init   "a red circle" from a green square on blue: mean pixel distance to the init image for the run from the
              init and for the run from grey (bar: the init run stays closer), and the red fraction before and after
              (bar: it moves toward red)
  s_per_step  CPU (or GPU) seconds per optimisation step for one 32×32 image
Each number is the mean over --seeds seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from workshop.runner.devices import device_name, pick_device  # noqa: E402
from workshop.contract import GuidedSettings  # noqa: E402
from workshop.runner.guided import load_guided, parse_spec  # noqa: E402
from workshop.runner.scoring import load_scorer  # noqa: E402
from workshop.shapes.dataset import COLOURS, colour_mask  # noqa: E402

PROMPT = "a red circle on a blue background"


def fraction(image: Image.Image, colour: str) -> float:
    return float(colour_mask(image, colour).mean())


def green_square() -> Image.Image:
    image = Image.new("RGB", (32, 32), COLOURS["blue"])
    image.paste(COLOURS["green"], (5, 5, 19, 19))
    return image


def run(pipe, prompt: str, seed: int, steps: int, settings: GuidedSettings, init=None):
    first = []

    def on_step(step, losses, frames):
        if step == 0:
            first.extend(frames())
        return False

    started = time.perf_counter()
    images, _ = pipe([prompt], [""], [seed], width=32, height=32, steps=steps, settings=settings, init_image=init, on_step=on_step)
    return first[0], images[0], (time.perf_counter() - started) / steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="vqgan-clip:shapes+shapes-clip")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lr", type=float, default=GuidedSettings().lr)
    p.add_argument("--cutouts", type=int, default=GuidedSettings().cutouts)
    p.add_argument("--save", type=Path, help="also save the end images here, enlarged ×4")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = pick_device("auto")
    pipe = load_guided(parse_spec(a.model), device)
    scorer = load_scorer(parse_spec(a.model).clips[0], device)
    settings = GuidedSettings(lr=a.lr, cutouts=a.cutouts)
    init = green_square()

    def sim(image, text):
        return float(scorer.similarity([image], [text])[0, 0])

    rows = []
    for seed in range(a.seeds):
        start, end, per_step = run(pipe, PROMPT, seed, a.steps, settings)
        _, from_init, _ = run(pipe, "a red circle", seed, a.steps, settings, init)
        _, from_grey, _ = run(pipe, "a red circle", seed, a.steps, settings)
        distance = [np.abs(np.asarray(im, dtype=float) - np.asarray(init, dtype=float)).mean() for im in (from_init, from_grey)]
        rows.append({"similarity_start": sim(start, PROMPT), "similarity_end": sim(end, PROMPT), "red": fraction(end, "red"),
                     "blue": fraction(end, "blue"), "init_distance_from_init": distance[0],
                     "init_distance_from_grey": distance[1], "init_red_before": fraction(init, "red"),
                     "init_red_after": fraction(from_init, "red"), "s_per_step": per_step})
        if a.save:
            a.save.mkdir(parents=True, exist_ok=True)
            for name, image in (("grey", end), ("init", from_init)):
                image.resize((128, 128), Image.NEAREST).save(a.save / f"seed{seed}-from-{name}.png")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    result = {"device": device_name(device), "steps": a.steps, "seeds": a.seeds, "lr": a.lr, "cutouts": a.cutouts, **mean,
              "passes": mean["similarity_end"] > mean["similarity_start"] + 0.1 and mean["red"] > 0.03 and mean["blue"] > 0.3
              and mean["init_distance_from_init"] < mean["init_distance_from_grey"]
              and mean["init_red_after"] > mean["init_red_before"]}
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"CLIP-guided on {result['device']}, {a.steps} steps, mean of {a.seeds} seeds:")
        print(f"  from grey: shapes-clip similarity {mean['similarity_start']:.3f} → {mean['similarity_end']:.3f}; "
              f"red {mean['red']:.1%}, blue {mean['blue']:.1%}")
        print(f"  from a green square: distance to the init {mean['init_distance_from_init']:.1f} (from grey: "
              f"{mean['init_distance_from_grey']:.1f}); red {mean['init_red_before']:.1%} → {mean['init_red_after']:.1%}")
        print(f"  {mean['s_per_step'] * 1000:.0f} ms per step")
    return 0 if result["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
