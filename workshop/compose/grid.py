"""Grids: a spec (prompt, mode, axes, seeds) becomes an ordered list of cells, each one image to make.

A grid has up to three axes — x (columns), y (rows), z (sub-grids). A mode fills some of them with prompt
variants; ``--x/--y/--z TYPE=VALUES`` fill others (AXIS_TYPES, as AUTOMATIC1111's X/Y/Z plot has them: Prompt S/R
on the prompt or the negative, Prompt order, a keyword's weight, seed, steps, guidance, sampler, model, size and
img2img strength); a list of seeds takes the first free one. Cells are the product,
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

from ..errors import option
from .dynamic import dynamic_syntax, expand, varying_part
from .emphasis import weighted
from .errors import SpecError
from .prompt import Prompt, clean
from .ranges import parse_values
from .tokens import Budget, Encoder, budget, clip_bpe

MODES = ("plain", "matrix", "leave-one-out", "add-one", "sr", "dynamic")
AXIS_TYPES = ("sr", "nsr", "order", "weight", "seed", "steps", "guidance", "sampler", "model", "size", "strength")
AXIS_NAMES = ("x", "y", "z")
DEFAULT_MAX_CELLS = 64
SEED_MAX = 2**32 - 1
_MODE_AXES = {"matrix": ("x", "y"), "leave-one-out": ("x",), "add-one": ("x",), "dynamic": ("x",)}
_LABEL_PREFIX = {"seed": "Seed", "steps": "Steps", "guidance": "Guidance", "sampler": "Sampler", "model": "Model",
                 "size": "Size", "strength": "Strength"}
_TEXT_AXES = ("sr", "nsr", "order", "sampler", "model", "size")  # a CSV line of texts; the others take numbers


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
    keyword: str = ""  # weight: the keyword it weighs

    @classmethod
    def parse(cls, text: str, name: str) -> "AxisSpec":
        """``TYPE=VALUES``: ``sr=red,blue,"a, b"`` or ``seed=1-5`` or ``steps=10-30 (+10)`` or ``guidance=3,7.5`` or
        ``sampler=Euler a,DPM++ 2M`` or ``size=512x512,768x512`` or ``weight:KEYWORD=0,0.5,1`` …"""
        head, sep, values = text.partition("=")
        kind, colon, keyword = head.partition(":")
        kind, keyword = kind.strip().lower(), clean(keyword)
        if not sep or kind not in AXIS_TYPES or bool(colon) != (kind == "weight"):
            raise SpecError(f"axis {name} {quoted(text)}: write TYPE=VALUES with TYPE one of {', '.join(AXIS_TYPES)} "
                            "(weight as weight:KEYWORD=0,0.5,1)")
        if kind == "weight" and not keyword:
            raise SpecError(f"axis {name}: name the keyword to weigh, e.g. weight:glowing=0,0.5,1")
        if kind in _TEXT_AXES:
            items = [v.strip() for v in next(csv.reader(io.StringIO(values), skipinitialspace=True), [])]
            items = tuple(v for v in items if v)
            if not items:
                raise SpecError(f"axis {name}: {kind} needs values, e.g. {_EXAMPLES[kind]}")
            if kind == "order" and len(items) < 2:
                raise SpecError(f"axis {name}: order needs two or more parts of the prompt to permute, e.g. {_EXAMPLES[kind]}")
            if kind == "size":
                items = tuple(_size(v, name) for v in items)
            return cls(kind, items)
        parsed = parse_values(values, integer=kind in ("seed", "steps"), what=kind)
        if kind == "seed" and not all(0 <= v <= SEED_MAX for v in parsed):
            raise SpecError(f"axis {name}: seeds must be between 0 and {SEED_MAX}")
        if kind == "steps" and not all(v >= 1 for v in parsed):
            raise SpecError(f"axis {name}: steps must be 1 or more")
        if kind == "guidance" and not all(v >= 0 for v in parsed):
            raise SpecError(f"axis {name}: guidance must be 0 or more")
        if kind == "strength" and (bad := next((v for v in parsed if not 0 < v <= 1), None)) is not None:
            raise SpecError(f"axis {name}: strength {bad:g} is outside (0, 1]: use values above 0 and at most 1")
        return cls(kind, tuple(parsed), keyword)

    @property
    def text(self) -> str:
        """The axis as ``TYPE=VALUES`` again (as a run records it)."""
        head = f"weight:{self.keyword}" if self.kind == "weight" else self.kind
        return f"{head}={','.join(map(_written, self.values))}"


_EXAMPLES = {"sr": "sr=red,blue,green", "nsr": "nsr=blurry,noisy", "order": "order=glowing,pixel art",
             "sampler": "sampler=Euler a,DPM++ 2M Karras", "model": "model=tiny,shapes", "size": "size=512x512,768x512"}


def _size(text: str, name: str) -> str:
    """A size value ``WIDTHxHEIGHT`` in multiples of 8, written as promptism writes sizes."""
    width, sep, height = text.lower().replace("×", "x").partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise SpecError(f"axis {name}: size {quoted(text)}: write WIDTHxHEIGHT, e.g. 512x512")
    w, h = int(width), int(height)
    if w < 8 or h < 8 or w % 8 or h % 8:
        raise SpecError(f"axis {name}: size {quoted(text)} is not in multiples of 8 (at least 8): use e.g. "
                        f"{max(8, w // 8 * 8)}x{max(8, h // 8 * 8)}")
    return f"{w}x{h}"


def _written(value) -> str:
    """A value as an axis's text has it: texts with commas or quotes quoted as in a CSV line, numbers as they are."""
    if not isinstance(value, str):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"') else value


@dataclass(frozen=True)
class GridSpec:
    prompt: Prompt
    mode: str = "plain"
    seeds: tuple[int, ...] = (0,)
    per_cell_seeds: bool = False
    axes: dict[str, AxisSpec] = field(default_factory=dict)
    wildcards: Path | None = None
    max_cells: int = DEFAULT_MAX_CELLS


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
    replace: tuple[str, str] | None = None  # Prompt S/R: key, value (prompt and negative)
    negative_replace: tuple[str, str] | None = None  # S/R on the negative prompt alone
    order: tuple[str, ...] | None = None  # Prompt order: the listed parts, in the order they take
    weight: tuple[int, float] | None = None  # a keyword's index among the enabled ones, and its weight
    seed: int | None = None
    params: tuple[tuple[str, float | int | str], ...] = ()
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
                raise SpecError(f"{found} is dynamic-prompt syntax, which only the dynamic mode expands ("
                                f"{option('mode')} dynamic); in this mode it would reach the model as typed: remove "
                                "it or switch modes")
    axes = _place_axes(spec)
    count = math.prod(len(a.entries) for a in axes.values())
    if count > spec.max_cells:
        raise SpecError(f"the grid has {count} cells, over the cap of {spec.max_cells}: use fewer keywords, values or "
                        f"seeds, or raise the cap with {option('max-cells')}")
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
        raise SpecError(f"sr mode needs a Prompt S/R axis, e.g. {option('x')} \"sr=red,blue,green\"")
    seed_axes = [a for a in spec.axes.values() if a.kind == "seed"]
    if len(spec.seeds) > 1 and seed_axes:
        raise SpecError(f"seeds are given twice ({option('seeds')} and a seed axis): keep one")
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
        raise SpecError(f"{spec.mode} mode needs keywords: add some with {option('keyword')}")
    if spec.mode == "matrix":
        if 2**k > spec.max_cells:
            raise SpecError(f"a prompt matrix of {k} keywords has {2**k} cells, over the cap of {spec.max_cells}: "
                            f"use fewer keywords or raise {option('max-cells')}")
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
                        f"use fewer alternatives or raise {option('max-cells')}")
    entries = []
    for combo in itertools.product(*expansions):
        label = " · ".join(varying_part(choice, options) for choice, options in zip(combo, expansions) if len(options) > 1)
        entries.append(_Entry(labels=(Label(label or combo[0]),), parts=tuple(combo)))
    return Axis("", "variants", tuple(entries))


def _explicit_axis(spec: GridSpec, name: str, axis: AxisSpec) -> Axis:
    if len(set(axis.values)) != len(axis.values):
        raise SpecError(f"axis {name}: a {axis.kind} value is given twice: keep one")
    full = spec.prompt.render()
    if axis.kind in ("sr", "nsr"):
        key, *_ = axis.values
        where = full + spec.prompt.negative if axis.kind == "sr" else spec.prompt.negative
        if key not in where:
            prompt = "prompt" if axis.kind == "sr" else "negative prompt"
            raise SpecError(f"axis {name}: the {axis.kind} key {quoted(key)} is not in the {prompt}; the first value must appear in it")
        if axis.kind == "sr":
            return Axis(name, "replacements", tuple(_Entry(labels=(Label(v),), replace=(key, v)) for v in axis.values))
        return Axis(name, "negative replacements", tuple(_Entry(labels=(Label(v),), negative_replace=(key, v))
                                                         for v in axis.values))
    if axis.kind == "order":
        if missing := next((v for v in axis.values if v not in full), None):
            raise SpecError(f"axis {name}: the order part {quoted(missing)} is not in the prompt; list parts of it")
        if math.factorial(len(axis.values)) > spec.max_cells:
            raise SpecError(f"axis {name}: {len(axis.values)} parts have {math.factorial(len(axis.values))} orders, over "
                            f"the cap of {spec.max_cells}: list fewer parts or raise {option('max-cells')}")
        return Axis(name, "orders", tuple(_Entry(labels=(Label(", ".join(p)),), order=p)
                                          for p in itertools.permutations(axis.values)))
    if axis.kind == "weight":
        enabled = [k.casefold() for k in spec.prompt.enabled]
        if axis.keyword.casefold() not in enabled:
            raise SpecError(f"axis {name}: the weight axis's keyword {quoted(axis.keyword)} is not a keyword of the "
                            f"prompt: add it with {option('keyword')}, or name one that is")
        index = enabled.index(axis.keyword.casefold())
        keyword = spec.prompt.enabled[index]
        return Axis(name, "weights", tuple(_Entry(labels=(Label(f"{keyword}: {v:g}"),), weight=(index, v),
                                                  params=(("weight", v),)) for v in axis.values))
    prefix = _LABEL_PREFIX[axis.kind]
    if axis.kind == "seed":
        return Axis(name, "seeds", tuple(_Entry(labels=(Label(f"{prefix}: {v}", private=False),), seed=v) for v in axis.values))
    return Axis(name, axis.kind, tuple(_Entry(labels=(_setting_label(axis.kind, v),), params=_params(axis.kind, v))
                                       for v in axis.values))


def _setting_label(kind: str, value) -> Label:
    """A setting's label, public (``Sampler: Euler a``) — but a model given as a folder shows its name only, and
    privately (its path is as private as the prompt)."""
    if kind == "model" and Path(value).expanduser().is_dir():
        return Label(f"Model: {Path(value).name}")
    return Label(f"{_LABEL_PREFIX[kind]}: {value:g}" if isinstance(value, float) else f"{_LABEL_PREFIX[kind]}: {value}",
                 private=False)


def _params(kind: str, value) -> tuple:
    """What a setting axis's value sets in a cell's params."""
    if kind == "size":
        width, _, height = value.partition("x")
        return (("width", int(width)), ("height", int(height)))
    return ((kind, value),)


def _reorder(prompt: str, order: tuple[str, ...]) -> str:
    """AUTOMATIC1111's Prompt order: the listed parts, where each first occurs, put back in the slots they took
    (the earliest slot gets the first of ``order``)."""
    slots = sorted(order, key=prompt.find)
    pieces, rest = [], prompt
    for part in slots:
        n = rest.find(part)
        pieces.append(rest[:n])
        rest = rest[n + len(part):]
    return "".join(piece + part for piece, part in zip(pieces, order)) + rest


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
        weight = dict(enumerate(weights)) | dict(e.weight for e in entries if e.weight)
        prompt = p.render([weighted(clean(texts[i]), weight[i]) for i in sorted(active)], base)
        index = len(cells)
        for e in entries:  # x, then y, then z: as A1111 applies its axes
            if e.replace:
                key, value = e.replace
                prompt, negative = prompt.replace(key, value), negative.replace(key, value)
                keywords = [k.replace(key, value) for k in keywords]
            if e.negative_replace:
                negative = negative.replace(*e.negative_replace)
            if e.order:
                if missing := next((part for part in e.order if part not in prompt), None):
                    raise SpecError(f"cell {index}'s prompt has no {quoted(missing)} to put in order (the mode or "
                                    "another axis takes it out): order parts every cell keeps")
                prompt = _reorder(prompt, e.order)
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
