"""Prompt composition: the prompt model, keyword-ablation grids, axes, spec files and token budgets.

Pure Python: nothing here imports torch, diffusers or textual; token budgets use CLIP's BPE through the
`tokenizers` library.
"""

from importlib import import_module

from .errors import SpecError

#: Imported when first asked for: the command line needs SpecError long before (or without) a grid.
_LAZY = {"Cell": "grid", "Grid": "grid", "GridSpec": "grid", "Label": "grid", "build_grid": "grid", "Keyword": "prompt",
         "Prompt": "prompt"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Cell", "Grid", "GridSpec", "Keyword", "Label", "Prompt", "SpecError", "build_grid"]
