"""Train ``shapes-clip``, a small open_clip model, contrastively on the shapes world (CPU-sized, seeded).

    python -m workshop.shapes.clip --out shapes-clip.safetensors [--steps N] [--batch 256] [--seed 0]

The architecture is the ``shapes-clip`` open_clip config shipped in ``workshop/runner/clip_configs``; training is
symmetric InfoNCE over image–caption pairs drawn fresh from the seeded world, with open_clip's learnable logit scale.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import Scene, caption, draw

CONFIGS = Path(__file__).resolve().parents[1] / "runner" / "clip_configs"
ARCH = "shapes-clip"


def create(seed: int = 0):
    import open_clip

    open_clip.add_model_config(CONFIGS)
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    return model, preprocess, open_clip.get_tokenizer(ARCH)


def batch_of(rng: random.Random, n: int, preprocess, size: int = 32):
    scenes = [Scene.random(rng) for _ in range(n)]
    pixels = torch.stack([preprocess(draw(s, size)) for s in scenes])
    return pixels, [caption(s, rng) for s in scenes]


def train(out: Path, steps: int, batch: int, seed: int, log=print) -> None:
    from safetensors.torch import save_file

    model, preprocess, tokenize = create(seed)
    rng = random.Random(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    started = time.monotonic()
    for step in range(steps):
        pixels, captions = batch_of(rng, batch, preprocess)
        image = F.normalize(model.encode_image(pixels), dim=-1)
        text = F.normalize(model.encode_text(tokenize(captions)), dim=-1)
        logits = model.logit_scale.exp() * image @ text.T
        labels = torch.arange(batch)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        if step % 100 == 0 or step == steps - 1:
            log(f"clip {step}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    log(f"saved to {out} after {time.monotonic() - started:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    train(a.out, a.steps, a.batch, a.seed, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
