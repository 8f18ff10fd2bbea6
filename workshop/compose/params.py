"""The run settings a spec file's ``[params]`` table may hold: the same as the run flags (which win over them).

Their types are checked here, when the spec is read, so ``grid --dry-run`` refuses what the real run would; their
ranges (steps of 1 or more, a size in multiples of 8 …) are the runner's, checked for flags and spec alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from journal.text import quoted

from .errors import SpecError


@dataclass(frozen=True)
class RunParams:
    steps: int | None = None
    guidance: float | None = None
    size: str | None = None  # WIDTHxHEIGHT
    strength: float | None = None
    init_image: str | None = None  # a path (a spec file's is relative to the file) or #N[:K]
    max_batch: int | None = None
    clip: str | None = None
    sampler: str | None = None  # an AUTOMATIC1111 name, or "default" (checked by the runner, as --sampler is)


_KINDS = {"steps": "whole", "max_batch": "whole", "guidance": "number", "strength": "number", "size": "text",
          "init_image": "text", "clip": "text", "sampler": "text"}
_SAYS = {"whole": "a whole number", "number": "a number", "text": "text"}


def parse_params(raw) -> RunParams:
    """``[params]`` as RunParams; SpecError naming the key for an unknown key or a value of the wrong type."""
    if raw is None:
        return RunParams()
    if not isinstance(raw, dict):
        raise SpecError(f"params must be a table ([params] with steps = 12 …), not {quoted(raw)}")
    known = [f.name for f in fields(RunParams)]
    if unknown := sorted(set(raw) - set(known)):
        raise SpecError(f"[params]: unknown key {quoted(unknown[0])}; the keys are {', '.join(known)}")
    values = {}
    for key, value in raw.items():
        kind = _KINDS[key]
        ok = {"whole": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool),
              "text": isinstance(value, str) and value.strip() != ""}[kind]
        if not ok:
            raise SpecError(f"[params] {key} must be {_SAYS[kind]}, not {quoted(value)}")
        if kind == "number" and not math.isfinite(value):
            raise SpecError(f"[params] {key} must be a finite number, not {quoted(value)}")
        values[key] = float(value) if kind == "number" else value
    return RunParams(**values)
