"""Where the work runs: device choice (cuda > mps > cpu), its name, the CPU thread count that decides a CPU run's
pixels, and GPU energy from NVML when available."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import RunError


def pick_device(requested: str = "auto") -> torch.device:
    """The device ``requested`` (auto: cuda, else mps, else the CPU); RunError (code "machine") for one this machine
    does not have."""
    if requested != "auto":
        device = torch.device(requested)
        if not device_available(device.type):
            raise RunError(f"device {requested}: this machine has no {device.type} device; use auto or cpu",
                           code="machine")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise RunError(f"device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                           f"cuda:0 to cuda:{torch.cuda.device_count() - 1}", code="machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_available(kind: str) -> bool:
    """Whether a device of this type (cpu, cuda, mps) is here."""
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return kind == "cpu"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (mps)"
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_threads(device: torch.device) -> int | None:
    """torch's CPU thread count for a run on the CPU (it decides float reduction order, so the exact pixels); None on a
    GPU."""
    return torch.get_num_threads() if device.type == "cpu" else None


@contextmanager
def using_threads(count: int | None) -> Iterator[None]:
    """Run the body with torch's CPU thread count set to ``count`` (a recorded run's), then restore it; None: as is."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class EnergyMeter:
    """Total GPU energy between ``start`` and ``stop`` via NVML (nvidia-ml-py); None where NVML is unavailable."""

    def __init__(self, device: torch.device):
        self._handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except Exception:  # noqa: BLE001 - no driver, no NVML, unsupported GPU: simply not measured
            self._handle = None
        self._start = None

    def start(self) -> None:
        self._start = self._read()

    def stop_wh(self) -> float | None:
        end = self._read()
        if end is None or self._start is None:
            return None
        return (end - self._start) / 3.6e6  # millijoules -> watt-hours

    def _read(self) -> int | None:
        if self._handle is None:
            return None
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception:  # noqa: BLE001 - older GPUs lack the counter
            return None
