"""Pixels leave the device as the same bytes whichever way they go: 8-bit on the device (a GPU's path), 8-bit on the
host from floats (the CPU's path, in the writer) and diffusers' own PIL output all agree, ties rounded half to even."""

import io
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from workshop.runner.pixels import eight_bit, host_pixels, uint8_pixels
from workshop.runner.png import PngBands, scratch_png


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


def test_pil_output_becomes_8_bit_rgb_pixels():
    images = [Image.new("RGB", (8, 4), (10, 20, 30)), Image.new("L", (8, 4), 200)]
    pixels = host_pixels(images)
    assert pixels.shape == (2, 4, 8, 3) and pixels.dtype == np.uint8
    assert (pixels[0] == (10, 20, 30)).all() and (pixels[1] == 200).all()


@pytest.mark.parametrize("height, width", [(1, 1), (3, 7), (64, 64), (97, 131)])
def test_scratch_pngs_decode_to_their_pixels_and_carry_nothing_else(height, width):
    rng = np.random.default_rng(height)
    smooth = np.cumsum(rng.integers(0, 3, (height, width, 3)), axis=1).astype(np.uint8)  # wraps: Up filter edge cases
    for pixels in (rng.integers(0, 256, (height, width, 3), dtype=np.uint8), smooth):
        data = scratch_png(pixels)
        image = Image.open(io.BytesIO(data))
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), pixels) and image.info == {}
        chunks, at = [], 8
        while at < len(data):
            length = int.from_bytes(data[at:at + 4], "big")
            chunks.append(data[at + 4:at + 8])
            at += 12 + length
        assert chunks == [b"IHDR", b"IDAT", b"IEND"]  # pixels only: no text, EXIF, ICC or time chunk


def test_bands_encoded_in_any_order_make_one_png_of_the_whole_image():
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (50, 9, 3), dtype=np.uint8)
    bands = PngBands(pixels)
    for start, stop in [(20, 31), (31, 50), (0, 1), (1, 20)]:  # header band last, as a contact sheet does
        bands.encode(start, stop)
    data = bands.png()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert zlib.decompress(data[data.index(b"IDAT") + 4 : -16])  # the zlib stream's own checksum holds
    with pytest.raises(KeyError):
        PngBands(pixels).png()  # rows never encoded: no file
