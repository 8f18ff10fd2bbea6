"""CPU contention: the built-in shapes model's denoising step at torch's 2 CPU threads, with OpenMP's threads waiting
for work asleep (``OMP_WAIT_POLICY=PASSIVE``, what the test suite sets) or as libgomp has them wait when nothing is
set (spinning a while first: promptism's default), on an idle machine and while CPU burners of this script's own keep every core busy (a shared machine, a
test suite, a second job).

    python tests/bench/cpu_contention.py [--burners 4] [--steps 10] [--json]

Each case runs in a fresh interpreter (the policy is read once, as torch loads its OpenMP) and reports the median
wall milliseconds of one UNet step (the batch of two that classifier-free guidance makes). The burners are stopped by
pid, always. Findings on this project's 2-core CPU: under load, spinning threads make a step 100× slower; idle,
sleeping ones make this tiny model's step 2.3× slower (a big model's ops dwarf the wake-up). So the suite, which
shares its cores, sets PASSIVE; promptism keeps libgomp's default, and the README tells a CPU-only user on a busy
machine to set it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

STEP = """
import statistics, sys, time
import torch
from diffusers import UNet2DConditionModel
unet = UNet2DConditionModel.from_pretrained(sys.argv[1]).eval()
size, steps = unet.config.sample_size, int(sys.argv[2])
torch.manual_seed(0)
latents = torch.randn(2, unet.config.in_channels, size, size)
text = torch.randn(2, 8, unet.config.cross_attention_dim)
torch.set_num_threads(2)
seconds = []
with torch.inference_mode():
    unet(latents, 10, text)
    for _ in range(steps):
        began = time.perf_counter()
        unet(latents, 10, text)
        seconds.append(time.perf_counter() - began)
print(statistics.median(seconds) * 1000)
"""


@contextmanager
def burning(count: int):
    """``count`` busy processes of this script's own, stopped by pid at the end."""
    burners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def step_ms(policy: str, steps: int) -> float:
    """Median milliseconds of a step with OpenMP's ``policy`` ("default": none set)."""
    unet = Path(__file__).resolve().parents[2] / "workshop" / "runner" / "weights" / "shapes" / "unet"
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env |= {"OMP_WAIT_POLICY": policy} if policy != "default" else {}
    done = subprocess.run([sys.executable, "-c", STEP, str(unet), str(steps)], env=env, capture_output=True, text=True,
                          check=True)
    return float(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burners", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"load_before": os.getloadavg()[0]}
    for burners in (0, args.burners):
        with burning(burners):
            for policy in ("PASSIVE", "default"):
                result[f"{policy.lower()}_{burners}_burners_ms"] = round(step_ms(policy, args.steps), 1)
    loaded = f"{args.burners}_burners_ms"
    result["default_over_passive_loaded"] = round(result[f"default_{loaded}"] / result[f"passive_{loaded}"], 1)
    result["default_over_passive_idle"] = round(result["default_0_burners_ms"] / result["passive_0_burners_ms"], 2)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"shapes UNet step at 2 CPU threads, median of {args.steps} (load average before: {result['load_before']:.1f}):")
    for burners in (0, args.burners):
        print(f"  {burners} burners: asleep (PASSIVE) {result[f'passive_{burners}_burners_ms']:8.1f} ms · "
              f"libgomp's default {result[f'default_{burners}_burners_ms']:8.1f} ms")
    print(f"  default / asleep: {result['default_over_passive_idle']}× idle, {result['default_over_passive_loaded']}× "
          f"under load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
