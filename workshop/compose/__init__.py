"""Prompt composition: the prompt model, keyword-ablation grids, axes, spec files and token budgets.

Pure Python: nothing here imports torch, diffusers or textual; token budgets use CLIP's BPE through the
`tokenizers` library.
"""

from .errors import SpecError
from .grid import Cell, Grid, GridSpec, Label, build_grid
from .prompt import Keyword, Prompt

__all__ = ["Cell", "Grid", "GridSpec", "Keyword", "Label", "Prompt", "SpecError", "build_grid"]
