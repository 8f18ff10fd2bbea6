"""Build a random-weight pipeline shaped like Stable Diffusion 1.5 (UNet 860 M parameters, CLIP ViT-L/14 text
encoder, SD's VAE, PNDM) as an fp16 safetensors diffusers folder, for GPU benchmarks: it does a real SD-1.5's work.

    python tests/bench/sd15_shaped.py OUT [--device auto|cpu|cuda] [--seed 0] [--small]
    python tests/bench/grid_throughput.py --model OUT --size 512 --steps 20

Builds on the GPU when there is one (seconds; 860 M parameters take a minute or more on a CPU), seeded, and prints each
component's parameter count. ``--small`` builds the same blocks at tiny widths (64×64 images; what the tests load).
"""

import sys

from shaped import SD15, SD15_SMALL, cli

if __name__ == "__main__":
    sys.exit(cli(SD15, SD15_SMALL, __doc__))
