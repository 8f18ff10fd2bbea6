"""Build a random-weight pipeline shaped like SDXL 1.0 base (UNet 2.57 B parameters with ``text_time``
conditioning, CLIP ViT-L/14 + a bigG-shaped second text encoder with projection, SDXL's VAE, Euler) as an fp16
safetensors diffusers folder, for GPU benchmarks at 1024×1024.

    python tests/bench/sdxl_shaped.py OUT [--device auto|cpu|cuda] [--seed 0] [--small]
    python tests/bench/grid_throughput.py --model OUT --size 1024 --steps 20 --max-batch 8

Builds on the GPU when there is one (3.5 B parameters: build it there), seeded, and prints each component's parameter
count (the folder takes 7 GB). ``--small`` builds the same blocks at tiny widths (64×64 images; what the tests load).
"""

import sys

from shaped import SDXL, SDXL_SMALL, cli

if __name__ == "__main__":
    sys.exit(cli(SDXL, SDXL_SMALL, __doc__))
