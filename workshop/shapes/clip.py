"""Train ``shapes-clip``, a small open_clip model, contrastively on the shapes world (CPU-sized, seeded).

    python -m workshop.shapes.clip --out shapes-clip.safetensors [--steps N] [--batch 256] [--seed 0]
                                   [--hard-negatives 0.5] [--init CHECKPOINT]

The architecture is the ``shapes-clip`` open_clip config shipped in ``workshop/runner/clip_configs``; training is
symmetric InfoNCE over image–caption pairs drawn fresh from the seeded world, with open_clip's learnable logit scale.
Captions sometimes leave out the size, colour, background or styles, so short texts such as "red circle" score
sensibly. Hard negatives: a share of every batch are siblings of other scenes that differ only in the shape (same
colours, count, size, styles and placement), so telling shapes apart is what the loss rewards; random batches
alone teach colours long before shapes. ``--init`` continues from a checkpoint. The weights are saved in float16
(half the bytes; scores are computed in float32 after loading). The shipped weights' recipe, three stages from random
to all-sibling batches, is in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import SHAPES, Scene, caption, draw, omissions

CONFIGS = Path(__file__).resolve().parents[1] / "runner" / "clip_configs"
ARCH = "shapes-clip"


def create(seed: int = 0):
    import open_clip

    open_clip.add_model_config(CONFIGS)
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    return model, preprocess, open_clip.get_tokenizer(ARCH)


def scenes_with_siblings(rng: random.Random, n: int, hard: float) -> list[Scene]:
    """``n`` training scenes; the last ``n·hard/2`` are siblings of the first ones that differ only in the shape."""
    scenes = [Scene.random(rng) for _ in range(n - int(n * hard / 2))]
    for scene in scenes[: n - len(scenes)]:
        siblings = [dataclasses.replace(scene, shape=s) for s in SHAPES if s != scene.shape]
        scenes.append(rng.choice([s for s in siblings if not s.held_out]))  # never a held-out combination
    return scenes


def batch_of(rng: random.Random, n: int, preprocess, size: int = 32, hard: float = 0.0):
    scenes = scenes_with_siblings(rng, n, hard)
    pixels = torch.stack([preprocess(draw(s, size)) for s in scenes])
    return pixels, [caption(s, rng, omissions(rng, size=0.3, colour=0.1, background=0.2, styles=0.2)) for s in scenes]


def train(out: Path, steps: int, batch: int, seed: int, hard: float = 0.5, init: Path | None = None, log=print) -> None:
    from safetensors.torch import load_file, save_file

    model, preprocess, tokenize = create(seed)
    if init:
        model.load_state_dict(load_file(str(init)))
    rng = random.Random(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    started = time.monotonic()
    for step in range(steps):
        pixels, captions = batch_of(rng, batch, preprocess, hard=hard)
        image = F.normalize(model.encode_image(pixels), dim=-1)
        text = F.normalize(model.encode_text(tokenize(captions)), dim=-1)
        logits = model.logit_scale.exp() * image @ text.T
        labels = torch.arange(batch)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        if step % 100 == 0 or step == steps - 1:
            log(f"clip {step}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(out))
    log(f"saved to {out} after {time.monotonic() - started:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hard-negatives", type=float, default=0.5, help="share of each batch in shape-sibling pairs")
    p.add_argument("--init", type=Path, help="continue from this checkpoint")
    a = p.parse_args()
    train(a.out, a.steps, a.batch, a.seed, a.hard_negatives, a.init, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
