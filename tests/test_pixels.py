"""Pixels leave the device as the same bytes whichever way they go: 8-bit on the device (a GPU's path), 8-bit on the
host from floats (the CPU's path, in the writer) and diffusers' own PIL output all agree, ties rounded half to even."""

import numpy as np
import torch
from PIL import Image

from workshop.runner.pixels import eight_bit, host_pixels, to_image, uint8_pixels


def floats() -> torch.Tensor:
    """Random values in [0, 1], plus every k/510 — the values that land exactly on .5 after ×255 — in fp32 and fp16."""
    torch.manual_seed(0)
    ties = torch.arange(511, dtype=torch.float32) / 510
    return torch.cat([torch.rand(2 * 3 * 16 * 16 - 511), ties]).reshape(2, 3, 16, 16)


def test_eight_bit_on_the_device_equals_the_host_conversion_and_diffusers():
    for images in (floats(), floats().half()):
        host = uint8_pixels(host_pixels(images))  # the CPU path: NHWC floats, converted by numpy
        device = eight_bit(images).permute(0, 2, 3, 1).numpy()  # the GPU path's arithmetic, here on the CPU
        diffusers = (images.cpu().permute(0, 2, 3, 1).float().numpy() * 255).round().astype("uint8")  # numpy_to_pil
        assert host.dtype == device.dtype == np.uint8 and np.array_equal(host, device) and np.array_equal(host, diffusers)
    assert {int(v) for v in eight_bit(torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255]))} == {0, 2}  # half to even


def test_pil_output_and_images_round_trip():
    images = [Image.new("RGB", (8, 4), (10, 20, 30)), Image.new("L", (8, 4), 200)]
    pixels = host_pixels(images)
    assert pixels.shape == (2, 4, 8, 3) and pixels.dtype == np.uint8
    assert to_image(pixels[1]).getpixel((0, 0)) == (200, 200, 200) and to_image(pixels[0]).size == (8, 4)
