"""A stand-in for a diffusers text-to-image pipeline that makes its images at once — or after sleeping a set time per
image, as a GPU takes while the CPU stays free (``time.sleep`` releases the GIL, as waiting on CUDA does) — so the
runner's own work on the critical path can be measured without a GPU (``grid_throughput.py --null``).

It is called as diffusers' pipelines are (prompts as text: it has no ``encode_prompt``; a CPU generator per image;
``callback_on_step_end`` after every step, which may set ``_interrupt``), has what the runner reads of one
(``unet.config.sample_size``, ``vae_scale_factor``, ``scheduler.config.num_train_timesteps``, ``device``, ``dtype``),
and returns ``output_type`` "pt" (float NCHW in [0, 1] on its device), "np" (float32 NHWC) or "pil" (converted as
diffusers converts). Each image's pixels come from its generator: noise (what a random-weight pipeline makes; the
largest PNGs, 770 KB at 512², as PNG cannot compress it) or smooth (a few random colours blended across the image:
170 KB, but the slower to encode — zlib finds matches everywhere — 1.9× noise's time on this project's CPU).

It keeps two clocks: ``call_s``, the time spent inside its ``__call__``, and ``device_s``, the part of it that stands
for the GPU (drawing the pixels and the sleeps; not the runner's step callbacks nor the conversion to "np" or "pil",
which a real pipeline does on the CPU too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CONTENTS = ("noise", "smooth")


@dataclass(frozen=True)
class UNetConfig:
    sample_size: int


@dataclass(frozen=True)
class SchedulerConfig:
    num_train_timesteps: int = 1000


@dataclass(frozen=True)
class NullUNet:
    config: UNetConfig


class NullScheduler:
    config = SchedulerConfig()


@dataclass(frozen=True)
class NullOutput:
    images: object  # list of PIL images, an array or a tensor, as output_type asked


class NullPipeline:
    vae_scale_factor = 8

    def __init__(self, device: torch.device, *, size: int = 512, ms_per_image: float = 0.0, content: str = "noise"):
        if content not in CONTENTS:
            raise ValueError(f"content must be one of {', '.join(CONTENTS)}, not {content!r}")
        self.device = torch.device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.unet = NullUNet(UNetConfig(sample_size=size // self.vae_scale_factor))
        self.scheduler = NullScheduler()
        self.ms_per_image = ms_per_image
        self.content = content
        self._interrupt = False
        self.call_s = 0.0
        self.device_s = 0.0

    def reset_clocks(self) -> None:
        self.call_s = self.device_s = 0.0

    def __call__(self, prompt, negative_prompt=None, *, num_inference_steps: int, width: int, height: int,
                 generator=None, output_type: str = "pil", callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs=("latents",), **ignored) -> NullOutput:
        entered = time.perf_counter()
        self._interrupt = False
        count = len(prompt) if isinstance(prompt, list) else 1
        generators = generator if isinstance(generator, list) else [generator] * count
        latents = torch.cat([torch.randn((1, 4, height // 8, width // 8), generator=g) for g in generators])
        images = torch.stack([self._pixels(g, width, height) for g in generators]).to(self.device, self.dtype)
        drawn = time.perf_counter() - entered
        per_step = max(0.0, self.ms_per_image * count / 1000 - drawn) / num_inference_steps
        slept = 0.0
        for step in range(num_inference_steps):
            if self._interrupt:  # as diffusers: the remaining steps are skipped
                continue
            start = time.perf_counter()
            time.sleep(per_step)
            slept += time.perf_counter() - start
            if callback_on_step_end is not None:
                out = callback_on_step_end(self, step, 1000 - step, {"latents": latents})
                latents = out.get("latents", latents)
        self.device_s += drawn + slept
        result = NullOutput(_convert(images, output_type))
        self.call_s += time.perf_counter() - entered
        return result

    def _pixels(self, generator, width: int, height: int) -> torch.Tensor:
        """One image's pixels, CHW in [0, 1], from its generator."""
        if self.content == "noise":
            return torch.rand((3, height, width), generator=generator)
        coarse = torch.rand((1, 3, max(1, height // 64), max(1, width // 64)), generator=generator)
        return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def _convert(images: torch.Tensor, output_type: str):
    """As diffusers' image processor post-processes: "pt" as is, "np" float32 NHWC on the CPU, "pil" from that."""
    if output_type == "pt":
        return images
    if output_type not in ("np", "pil"):
        raise ValueError(f"output_type must be pt, np or pil, not {output_type!r}")
    array = images.permute(0, 2, 3, 1).float().cpu().numpy()
    if output_type == "np":
        return array
    return [Image.fromarray(a) for a in (array * 255).round().astype(np.uint8)]
