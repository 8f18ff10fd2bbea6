"""Speed-ups a user can turn on (settings, or --compile / --channels-last / --tf32 for one run): each keeps the
reproducibility contract for its setting — a rerun with the same setting is byte-identical — and the ones that are on
are recorded in the run's parameters, so ``rerun`` and ``resume`` apply them again.

- ``compile``: the UNet (or transformer) through ``torch.compile`` (inductor) with static shapes: each batch shape
  is compiled once, the first time it comes (expect a recompile per batch size and image size), so what a batch
  computes never depends on the shapes that came before it; inductor in its deterministic mode (no kernel chosen by
  timing it); compiled kernels cached under promptism's cache folder, so a new process reuses them. The warm service
  keeps the compiled model between jobs.
- ``channels_last``: the UNet's (or transformer's) and the VAE's weights in channels-last memory format.
- ``tf32``: TF32 float32 matmuls on Ampere and later GPUs (torch already runs float32 convolutions in TF32). It
  changes float32 work only: diffusion pipelines run in half precision on a GPU; it does nothing on the CPU.

Attention: diffusers calls torch's scaled_dot_product_attention, which picks FlashAttention on a CUDA GPU where the
shapes allow (its default order: flash, memory-efficient, math), so there is no setting for it.

A compiled or channels-last model is another model: the warm pool keys by ``model_key``. The process-wide state
(TF32, dynamo's limits) is set for a run only, by ``active``. Torch is imported by what needs it, not by this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields

from journal.text import quoted

from ..paths import cache_dir
from ..settings import Settings
from ..errors import RunError, option
from .records import ParamsRecord

RECOMPILE_LIMIT = 64  # batch shapes compiled per model; one more is an error, never a silent eager fallback


@dataclass(frozen=True)
class Speedups:
    compile: bool = False
    channels_last: bool = False
    tf32: bool = False

    def params(self) -> dict[str, bool]:
        """The ones that are on, as a run's parameters record them."""
        return {f.name: True for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def chosen(cls, settings: Settings, **flags: bool | None) -> Speedups:
        """The settings' speed-ups, each overridden by its flag where one was given (not None)."""
        return cls(**{f.name: getattr(settings, f.name) if flags.get(f.name) is None else flags[f.name] for f in fields(cls)})

    @classmethod
    def from_params(cls, params: ParamsRecord) -> Speedups:
        """The speed-ups a run recorded (rerun and resume apply them)."""
        return cls(**{f.name: getattr(params, f.name) is True for f in fields(cls)})

    @classmethod
    def from_json(cls, data: dict) -> Speedups:
        known = [f.name for f in fields(cls)]
        if unknown := sorted(set(data) - set(known)):
            raise RunError(f"unknown speed-up {quoted(unknown[0])}; the speed-ups are {', '.join(known)}")
        if bad := [k for k, v in data.items() if not isinstance(v, bool)]:
            raise RunError(f"speed-up {bad[0]} must be true or false, not {quoted(data[bad[0]])}")
        return cls(**data)

    @property
    def model_key(self) -> tuple[bool, bool]:
        """What they do to a loaded model: models that differ in it are kept warm apart."""
        return self.compile, self.channels_last

    @property
    def label(self) -> str:
        """' (compiled, channels-last)' after a warm model's name; empty for a plain one."""
        names = [name for name, on in (("compiled", self.compile), ("channels-last", self.channels_last)) if on]
        return f" ({', '.join(names)})" if names else ""


def check_device(speedups: Speedups, device) -> None:
    """RunError where ``torch.compile`` cannot work on ``device``: inductor needs Triton on a CUDA GPU and a C++
    compiler on the CPU."""
    if not speedups.compile:
        return
    _kernel_cache()
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise RunError(f"{option('compile')} on a GPU needs Triton, which is not installed: pip install triton, "
                           f"or leave out {option('compile')}")
    elif device.type == "cpu":
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler

        try:
            get_cpp_compiler()
        except InvalidCxxCompiler:
            raise RunError(f"{option('compile')} on the CPU needs a C++ compiler (g++, or the one $CXX names) and "
                           f"there is none: install one, or leave out {option('compile')}") from None
    else:
        raise RunError(f"{option('compile')} works on a CUDA GPU or the CPU, not on {device.type}: leave it out")


def apply(pipe, speedups: Speedups):
    """``pipe`` with the speed-ups that change a loaded model, changed in place; returns it."""
    import torch

    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    if speedups.channels_last:
        for module in (getattr(pipe, name), getattr(pipe, "vae", None)):
            if module is not None:
                module.to(memory_format=torch.channels_last)
    if speedups.compile:
        _kernel_cache()
        setattr(pipe, name, torch.compile(getattr(pipe, name), dynamic=False, options={"deterministic": True}))
    return pipe


def _kernel_cache() -> None:
    """Inductor keeps compiled kernels (and Triton's) in ``$TORCHINDUCTOR_CACHE_DIR``: the user's, else
    ``<cache>/inductor`` in place of inductor's own default in /tmp (which it writes into the environment as soon as
    anything asks — importing diffusers does)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir() / "inductor")


@contextmanager
def active(speedups: Speedups) -> Iterator[None]:
    """The process-wide torch state a run's speed-ups decide, for the run only, restored after it (the service runs
    jobs with other settings one after another): the float32 matmul precision — TF32 or full, whatever it was
    before — and, for a compiled model, room for a compiled graph per batch shape."""
    import torch

    with ExitStack() as stack:
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high" if speedups.tf32 else "highest")
        stack.callback(torch.set_float32_matmul_precision, before)
        full: tuple[type[Exception], ...] = ()
        if speedups.compile:
            import torch._dynamo
            from torch._dynamo.exc import FailOnRecompileLimitHit

            stack.enter_context(torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True))
            full = (FailOnRecompileLimitHit,)
        try:
            yield
        except full:
            raise RunError(f"the model has been compiled for {RECOMPILE_LIMIT} batch shapes in this process, the most "
                           f"it keeps: start afresh (`promptism stop` stops the service) or leave out "
                           f"{option('compile')}") from None
