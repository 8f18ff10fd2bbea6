"""AUTOMATIC1111's emphasis syntax: ``(text:1.3)`` weighs words up or down at the embedding level.

``weighted`` writes a keyword with its weight the way A1111 users do, so a cell's prompt carries its weights as text:
the run records it as it is, and the runner applies the weights when it encodes the prompt.
"""

from __future__ import annotations

import math

_SPECIAL = "\\()[]"


def escape(text: str) -> str:
    """``text`` with A1111's brackets and backslashes escaped, so they reach the model as typed."""
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


def weighted(text: str, weight: float) -> str:
    """``text`` weighed by ``weight`` in A1111's syntax: as it is at 1, else ``(text:weight)`` with brackets escaped."""
    if not math.isfinite(weight):
        raise ValueError(f"weight {weight} is not a finite number")
    return text if weight == 1 else f"({escape(text)}:{weight:g})"
