"""Quality bar of the built-in shapes models, on 200 held-out captions (shape–colour–background combinations that
neither model saw in training: ``Scene.held_out``).

    python tests/bench/shapes_quality.py [--model shapes] [--clip shapes-clip] [--count 200] [--steps 12]
                                         [--guidance G] [--json]      (default: the model's guidance)

For every held-out scene, 10 candidate captions in the same phrasing: the right one and 9 distractors that each
change one thing — the shapes' colour, the background colour, or the shape — drawn from the 15 such changes.

  real_accuracy       shapes-clip picks the right caption for the dataset's own drawing      (bar: ≥ 0.80)
  generated_accuracy  shapes-clip picks the right caption for what the model makes from it  (bar: ≥ 0.50; chance 0.10)
  generated_misses    for the generated images it got wrong: which change the picked caption made
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from workshop.runner.devices import device_name, pick_device  # noqa: E402
from workshop.runner.models import load_pipeline, resolve  # noqa: E402
from workshop.runner.scoring import load_scorer  # noqa: E402
from workshop.shapes.dataset import COLOURS, SHAPES, Scene, caption, draw  # noqa: E402

SEED = 2026  # held-out scenes are drawn from their own stream; training used seeds 0 and 1


def candidates(scene: Scene, rng: random.Random) -> tuple[list[str], list[str]]:
    """The right caption first, then 9 distractors; and what each distractor changed."""
    changes = [("colour", dataclasses.replace(scene, colour=c)) for c in COLOURS if c not in (scene.colour, scene.background)]
    changes += [("background", dataclasses.replace(scene, background=c)) for c in COLOURS if c not in (scene.colour, scene.background)]
    changes += [("shape", dataclasses.replace(scene, shape=s)) for s in SHAPES if s != scene.shape]
    picked = rng.sample(changes, 9)
    phrasing = rng.randrange(2**31)  # the same word order for all ten
    texts = [caption(s, random.Random(phrasing)) for s in [scene, *(s for _, s in picked)]]
    return texts, [kind for kind, _ in picked]


def accuracy(scorer, images, sets) -> tuple[float, Counter]:
    right, misses = 0, Counter()
    for image, (texts, kinds) in zip(images, sets):
        best = int(scorer.similarity([image], texts)[0].argmax())
        right += best == 0
        if best:
            misses[kinds[best - 1]] += 1
    return right / len(images), misses


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="shapes")
    p.add_argument("--clip", default="shapes-clip")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--guidance", type=float)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(SEED)
    scenes = [Scene.random(rng, held_out=True) for _ in range(a.count)]
    sets = [candidates(s, rng) for s in scenes]
    device = pick_device("auto")
    scorer = load_scorer(a.clip, device)
    source = resolve(a.model)
    pipe = load_pipeline(source, device)
    a.guidance = source.guidance if a.guidance is None else a.guidance
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor

    real, real_misses = accuracy(scorer, [draw(s, size) for s in scenes], sets)
    started = time.perf_counter()
    generated = []
    for i in range(0, a.count, a.batch):
        chunk = range(i, min(i + a.batch, a.count))
        generated += pipe([sets[k][0][0] for k in chunk], num_inference_steps=a.steps, guidance_scale=a.guidance,
                          height=size, width=size, generator=[torch.Generator("cpu").manual_seed(k) for k in chunk]).images
    seconds = time.perf_counter() - started
    made, made_misses = accuracy(scorer, generated, sets)
    result = {"device": device_name(device), "count": a.count, "size": size, "steps": a.steps, "guidance": a.guidance,
              "real_accuracy": real, "real_misses": dict(real_misses), "generated_accuracy": made,
              "generated_misses": dict(made_misses), "generate_s_per_image": seconds / a.count,
              "passes": real >= 0.8 and made >= 0.5}
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{a.count} held-out captions, 1 right + 9 distractors (colour, background or shape), on {result['device']}")
        print(f"  real images:      {real:.1%} right (bar 80 %)  misses by kind: {dict(real_misses)}")
        print(f"  generated images: {made:.1%} right (bar 50 %)  misses by kind: {dict(made_misses)}  "
              f"[{size}×{size}, {a.steps} steps, guidance {a.guidance}, {seconds / a.count * 1000:.0f} ms/image]")
    return 0 if result["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
