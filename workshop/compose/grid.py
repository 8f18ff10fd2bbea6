"""Grids: a spec (prompt, mode, axes, seeds) becomes an ordered list of cells, each one image to make.

A grid has up to three axes — x (columns), y (rows), z (sub-grids). A mode fills some of them with prompt
variants; ``--x/--y/--z TYPE=VALUES`` fill others; a list of seeds takes the first free one. Cells are the product,
x varying fastest, so cell ``i`` of a Prompt matrix is A1111's variant ``i`` (keyword ``j`` present iff bit ``j``).

Modes:
  plain          the prompt as it is (only axes and seeds vary)
  matrix         AUTOMATIC1111's Prompt matrix: 2^k variants; the first ceil(k/2) keywords across, the rest down
  leave-one-out  the full prompt, then each keyword removed in turn (k+1 variants)
  add-one        the base, then the base plus each keyword in turn (k+1 variants)
  sr             plain, with at least one Prompt S/R axis
  dynamic        every combination of {a|b} alternatives and __wildcards__ (dynamicprompts)
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from journal.text import quoted

from .dynamic import dynamic_syntax, expand, varying_part
from .emphasis import weighted
from .errors import SpecError
from .params import RunParams
from .prompt import Prompt, clean
from .ranges import parse_values
from .tokens import Budget, Encoder, budget, clip_bpe

MODES = ("plain", "matrix", "leave-one-out", "add-one", "sr", "dynamic")
AXIS_TYPES = ("sr", "seed", "steps", "guidance")
AXIS_NAMES = ("x", "y", "z")
DEFAULT_MAX_CELLS = 64
SEED_MAX = 2**32 - 1
_MODE_AXES = {"matrix": ("x", "y"), "leave-one-out": ("x",), "add-one": ("x",), "dynamic": ("x",)}
_LABEL_PREFIX = {"seed": "Seed", "steps": "Steps", "guidance": "Guidance"}


@dataclass(frozen=True)
class Label:
    """One piece of a cell's header: a keyword shown active (black) or inactive (grey, struck), or an axis value.
    ``private``: words of the prompt (keywords, S/R values, dynamic choices), not a setting such as ``Seed: 3``."""

    text: str
    active: bool = True
    private: bool = True


@dataclass(frozen=True)
class AxisSpec:
    kind: str
    values: tuple

    @classmethod
    def parse(cls, text: str, name: str) -> "AxisSpec":
        """``TYPE=VALUES``: ``sr=red,blue,"a, b"`` or ``seed=1-5`` or ``steps=10-30 (+10)`` or ``guidance=3,7.5``."""
        kind, sep, values = text.partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in AXIS_TYPES:
            raise SpecError(f"axis {name} {quoted(text)}: write TYPE=VALUES with TYPE one of {', '.join(AXIS_TYPES)}")
        if kind == "sr":
            items = [v.strip() for v in next(csv.reader(io.StringIO(values), skipinitialspace=True), [])]
            items = [v for v in items if v]
            if not items:
                raise SpecError(f"axis {name}: sr needs a search key then replacements, e.g. sr=red,blue,green")
            return cls(kind, tuple(items))
        parsed = parse_values(values, integer=kind != "guidance", what=kind)
        if kind == "seed" and not all(0 <= v <= SEED_MAX for v in parsed):
            raise SpecError(f"axis {name}: seeds must be between 0 and {SEED_MAX}")
        if kind == "steps" and not all(v >= 1 for v in parsed):
            raise SpecError(f"axis {name}: steps must be 1 or more")
        return cls(kind, tuple(parsed))


@dataclass(frozen=True)
class GridSpec:
    prompt: Prompt
    mode: str = "plain"
    seeds: tuple[int, ...] = (0,)
    per_cell_seeds: bool = False
    axes: dict[str, AxisSpec] = field(default_factory=dict)
    wildcards: Path | None = None
    max_cells: int = DEFAULT_MAX_CELLS
    model: str | None = None
    params: RunParams = RunParams()


@dataclass(frozen=True)
class Cell:
    index: int
    prompt: str
    negative: str
    seed: int
    row: int
    col: int
    subgrid: int
    keywords: tuple[str, ...]
    labels: dict[str, tuple[Label, ...]]
    params: dict
    encode: Encoder | None = field(default=None, repr=False, compare=False)  # the model's tokenizer; None: CLIP's BPE

    @cached_property
    def token_budget(self) -> Budget:
        """The prompt's share of CLIP's window, counted when first asked for (loading CLIP's BPE takes a quarter
        second: a command that only sends the grid to the service never pays it)."""
        return budget(self.prompt, self.keywords, self.encode or clip_bpe())

    @property
    def tokens(self) -> int:
        return self.token_budget.tokens

    @property
    def truncated_keywords(self) -> tuple[str, ...]:
        return self.token_budget.truncated

    def to_json(self) -> dict:
        return {
            "index": self.index, "prompt": self.prompt, "negative": self.negative, "seed": self.seed,
            "row": self.row, "col": self.col, "subgrid": self.subgrid, "keywords": list(self.keywords),
            "labels": {axis: [{"text": lb.text, "active": lb.active} for lb in labels] for axis, labels in self.labels.items()},
            "tokens": self.tokens, "truncated_keywords": list(self.truncated_keywords), **self.params,
        }


@dataclass(frozen=True)
class Axis:
    """A filled axis: what it varies, and one entry per position along it."""

    name: str
    title: str
    entries: tuple["_Entry", ...]


@dataclass(frozen=True)
class Grid:
    spec: GridSpec
    axes: tuple[Axis, ...]
    cells: tuple[Cell, ...]
    rows: int
    cols: int
    subgrids: int

    @property
    def terms(self) -> list[str]:
        """The grid's private words beyond its prompts and keywords: the base prompt, S/R values, dynamic choices."""
        labels = (lb.text for c in self.cells for axis in c.labels.values() for lb in axis if lb.private)
        return list(dict.fromkeys([self.spec.prompt.base, *labels]))

    @property
    def secrets(self) -> list[str]:
        """Every private string of the grid an experiment's title may not contain (as ``Experiment.secrets``)."""
        prompt = self.spec.prompt
        return [prompt.render(), prompt.negative, *prompt.enabled, *(c.prompt for c in self.cells), *self.terms]

    def describe(self) -> str:
        shape = " × ".join(f"{len(a.entries)} {a.title}" for a in self.axes if len(a.entries) > 1) or "1 cell"
        layout = f"{self.rows} row(s) × {self.cols} col(s)" + (f" × {self.subgrids} sub-grids" if self.subgrids > 1 else "")
        return f"{self.spec.mode} · {shape} = {len(self.cells)} cells · {layout}"


@dataclass(frozen=True)
class _Entry:
    """One position along an axis: what it changes about a cell, and its label."""

    labels: tuple[Label, ...] = ()
    add: frozenset[int] = frozenset()  # keyword indices switched on
    remove: frozenset[int] = frozenset()  # keyword indices switched off
    replace: tuple[str, str] | None = None
    seed: int | None = None
    params: tuple[tuple[str, float | int], ...] = ()
    parts: tuple[str, ...] | None = None  # dynamic: the expanded base, keywords and negative


def build_grid(spec: GridSpec, encode: Encoder | None = None) -> Grid:
    """All the cells of ``spec``, each with its token budget (``encode``: the model's tokenizer; default open_clip's
    CLIP BPE), counted when first asked for."""
    if spec.mode not in MODES:
        raise SpecError(f"unknown mode {quoted(spec.mode)}: choose one of {', '.join(MODES)}")
    if spec.max_cells < 1:
        raise SpecError("the cell cap must be 1 or more")
    for seed in spec.seeds:
        if not 0 <= seed <= SEED_MAX:
            raise SpecError(f"seed {seed} is outside 0…{SEED_MAX}")
    if spec.mode != "dynamic":
        for text in (spec.prompt.base, *spec.prompt.enabled, spec.prompt.negative):
            if found := dynamic_syntax(text):
                raise SpecError(f"{found} is dynamic-prompt syntax, which only the dynamic mode expands (promptism grid "
                                "--mode dynamic); in this mode it would reach the model as typed: remove it or switch modes")
    axes = _place_axes(spec)
    count = math.prod(len(a.entries) for a in axes.values())
    if count > spec.max_cells:
        raise SpecError(f"the grid has {count} cells, over the cap of {spec.max_cells}: use fewer keywords, values or "
                        f"seeds, or raise the cap with --max-cells")
    cells = _cells(spec, axes, encode)
    ordered = tuple(axes[n] for n in AXIS_NAMES)
    if _square_seed_grid(spec, axes):
        cols = math.ceil(math.sqrt(len(cells)))
        cells = [replace(c, row=c.index // cols, col=c.index % cols) for c in cells]
        return Grid(spec, ordered, tuple(cells), math.ceil(len(cells) / cols), cols, 1)
    return Grid(spec, ordered, tuple(cells), len(axes["y"].entries), len(axes["x"].entries), len(axes["z"].entries))


def _place_axes(spec: GridSpec) -> dict[str, Axis]:
    mode_axes = _MODE_AXES.get(spec.mode, ())
    axes: dict[str, Axis] = {}
    for name, axis in zip(mode_axes, _mode_entries(spec)):
        axes[name] = replace(axis, name=name)
    for name, axis_spec in spec.axes.items():
        if name not in AXIS_NAMES:
            raise SpecError(f"unknown axis {quoted(name)}: use x, y or z")
        if name in axes and len(axes[name].entries) > 1:
            used = " and ".join(a for a in mode_axes)
            raise SpecError(f"{spec.mode} mode fills the {used} axis; put your {axis_spec.kind} axis on another one")
        axes[name] = _explicit_axis(spec, name, axis_spec)
    if spec.mode == "sr" and not any(a.kind == "sr" for a in spec.axes.values()):
        raise SpecError("sr mode needs a Prompt S/R axis, e.g. --x \"sr=red,blue,green\"")
    seed_axes = [a for a in spec.axes.values() if a.kind == "seed"]
    if len(spec.seeds) > 1 and seed_axes:
        raise SpecError("seeds are given twice (--seeds and a seed axis): keep one")
    if spec.per_cell_seeds and (seed_axes or len(spec.seeds) > 1):
        raise SpecError("per-cell seeds and a list of seeds cannot be combined: keep one")
    if len(spec.seeds) > 1:
        free = next((n for n in AXIS_NAMES if n not in axes or len(axes[n].entries) == 1), None)
        if free is None:
            raise SpecError("every axis is taken, so the seeds have nowhere to go: drop an axis or use a seed axis")
        axes[free] = Axis(free, "seeds", tuple(_Entry(labels=(Label(f"Seed: {s}", private=False),), seed=s) for s in spec.seeds))
    for name in AXIS_NAMES:
        axes.setdefault(name, Axis(name, "", (_Entry(),)))
    return axes


def _square_seed_grid(spec: GridSpec, axes: dict[str, Axis]) -> bool:
    """A plain list of seeds and nothing else (the 3×3 seed grid) is laid out square rather than in one row."""
    varying = [a for a in axes.values() if len(a.entries) > 1]
    return len(spec.seeds) > 1 and len(varying) == 1 and varying[0].title == "seeds"


def _mode_entries(spec: GridSpec) -> list[Axis]:
    kws = spec.prompt.enabled
    k = len(kws)
    if spec.mode in ("matrix", "leave-one-out", "add-one") and k == 0:
        raise SpecError(f"{spec.mode} mode needs keywords: add some with --keyword")
    if spec.mode == "matrix":
        if 2**k > spec.max_cells:
            raise SpecError(f"a prompt matrix of {k} keywords has {2**k} cells, over the cap of {spec.max_cells}: "
                            f"use fewer keywords or raise --max-cells")
        across = math.ceil(k / 2)
        return [_combinations(kws, range(across), "keyword combinations"),
                _combinations(kws, range(across, k), "keyword combinations")]
    if spec.mode == "leave-one-out":
        full = _Entry(labels=tuple(Label(t) for t in kws))
        return [Axis("x", "variants", (full, *(
            _Entry(labels=tuple(Label(t, i != j) for i, t in enumerate(kws)), remove=frozenset({j})) for j in range(k))))]
    if spec.mode == "add-one":
        base = _Entry(labels=tuple(Label(t, False) for t in kws), remove=frozenset(range(k)))
        return [Axis("x", "variants", (base, *(
            _Entry(labels=tuple(Label(t, i == j) for i, t in enumerate(kws)), remove=frozenset(range(k)) - {j}) for j in range(k))))]
    if spec.mode == "dynamic":
        return [_dynamic_axis(spec)]
    return []


def _combinations(kws: list[str], indices: range, title: str) -> Axis:
    entries = []
    for bits in range(2 ** len(indices)):
        on = frozenset(j for b, j in enumerate(indices) if bits >> b & 1)
        entries.append(_Entry(labels=tuple(Label(kws[j], j in on) for j in indices), add=on))
    return Axis("", title, tuple(entries))


def _dynamic_axis(spec: GridSpec) -> Axis:
    p = spec.prompt
    templates = [p.base, *p.enabled, p.negative]
    expansions = [expand(t, spec.wildcards, spec.max_cells) for t in templates]
    count = math.prod(len(e) for e in expansions)
    if count > spec.max_cells:
        raise SpecError(f"the dynamic prompt expands to more than {spec.max_cells} variants (the cell cap): "
                        "use fewer alternatives or raise --max-cells")
    entries = []
    for combo in itertools.product(*expansions):
        label = " · ".join(varying_part(choice, options) for choice, options in zip(combo, expansions) if len(options) > 1)
        entries.append(_Entry(labels=(Label(label or combo[0]),), parts=tuple(combo)))
    return Axis("", "variants", tuple(entries))


def _explicit_axis(spec: GridSpec, name: str, axis: AxisSpec) -> Axis:
    if axis.kind == "sr":
        key, *_ = axis.values
        if len(set(axis.values)) != len(axis.values):
            raise SpecError(f"axis {name}: an S/R value is given twice: keep one")
        full = spec.prompt.render()
        if key not in full and key not in spec.prompt.negative:
            raise SpecError(f"axis {name}: the S/R key {quoted(key)} is not in the prompt; the first value must appear in it")
        return Axis(name, "replacements", tuple(_Entry(labels=(Label(v),), replace=(key, v)) for v in axis.values))
    if len(set(axis.values)) != len(axis.values):
        raise SpecError(f"axis {name}: a {axis.kind} value is given twice: keep one")
    prefix = _LABEL_PREFIX[axis.kind]
    if axis.kind == "seed":
        return Axis(name, "seeds", tuple(_Entry(labels=(Label(f"{prefix}: {v}", private=False),), seed=v) for v in axis.values))
    return Axis(name, axis.kind, tuple(_Entry(labels=(Label(f"{prefix}: {v}", private=False),), params=((axis.kind, v),))
                                       for v in axis.values))


def _cells(spec: GridSpec, axes: dict[str, Axis], encode: Encoder | None) -> list[Cell]:
    p = spec.prompt
    kws = p.enabled
    weights = [k.weight for k in p.enabled_keywords]
    base_active = frozenset() if spec.mode == "matrix" else frozenset(range(len(kws)))
    cells, seen = [], {}
    for z, y, x in itertools.product(*(range(len(axes[n].entries)) for n in ("z", "y", "x"))):
        entries = [axes["x"].entries[x], axes["y"].entries[y], axes["z"].entries[z]]
        active = set(base_active)
        for e in entries:
            active |= e.add
            active -= e.remove
        parts = next((e.parts for e in entries if e.parts is not None), None)
        base, texts, negative = (parts[0], list(parts[1:-1]), parts[-1]) if parts else (p.base, list(kws), p.negative)
        keywords = [clean(texts[i]) for i in sorted(active)]
        prompt = p.render([weighted(clean(texts[i]), weights[i]) for i in sorted(active)], base)
        for e in entries:
            if e.replace:
                key, value = e.replace
                prompt, negative = prompt.replace(key, value), negative.replace(key, value)
                keywords = [k.replace(key, value) for k in keywords]
        index = len(cells)
        seed = next((e.seed for e in entries if e.seed is not None), spec.seeds[0])
        seed = seed + index if spec.per_cell_seeds else seed
        if seed > SEED_MAX:
            raise SpecError(f"per-cell seeds run past {SEED_MAX}: start from a lower seed")
        params = dict(pair for e in entries for pair in e.params)
        key = (prompt, negative, seed, tuple(sorted(params.items())))
        if key in seen:
            raise SpecError(f"cells {seen[key]} and {index} would be identical: remove the duplicate keyword or value")
        seen[key] = index
        labels = {n: axes[n].entries[i].labels for n, i in zip(AXIS_NAMES, (x, y, z)) if axes[n].entries[i].labels}
        cells.append(Cell(index, prompt, negative, seed, y, x, z, tuple(keywords), labels, params, encode))
    return cells
