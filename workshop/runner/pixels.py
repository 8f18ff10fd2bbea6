"""A batch's pixels between the device and the disk: what a pipeline returns becomes an NHWC array on the host,
converted to 8 bits on the GPU itself (one small copy to pinned memory) — or, on the CPU, left as floats for the
background writer to convert — with exactly the arithmetic diffusers uses for PIL output (``x * 255``, rounded half
to even), so the bytes are the same whichever way an image took.
"""

from __future__ import annotations

import numpy as np
import torch


def host_pixels(images) -> np.ndarray:
    """A pipeline's images (a float NCHW tensor in [0, 1], as ``output_type="pt"`` gives, or a list of PIL images) as
    an NHWC array on the host: uint8 when converted on a GPU or taken from PIL, float32 from a CPU tensor."""
    if not torch.is_tensor(images):
        return np.stack([np.asarray(im.convert("RGB")) for im in images])
    if images.device.type == "cpu":
        return images.permute(0, 2, 3, 1).float().numpy()
    on_device = eight_bit(images).permute(0, 2, 3, 1).contiguous()
    host = torch.empty(on_device.shape, dtype=torch.uint8, pin_memory=images.device.type == "cuda")
    host.copy_(on_device)
    return host.numpy()


def eight_bit(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] as 8-bit values on their own device, exactly as ``uint8_pixels`` makes them on the host."""
    return (images.float() * 255).round().to(torch.uint8)


def uint8_pixels(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels: as they are, or from floats in [0, 1] the way diffusers' ``numpy_to_pil`` makes them."""
    return pixels if pixels.dtype == np.uint8 else (pixels * 255).round().astype(np.uint8)

