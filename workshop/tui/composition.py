"""The composer's state as one typed record: what the workshop keeps per journal (restored on the next start), what
"load settings" takes from a run or an experiment, and what a job that outlived a workshop is restored from.

The journal's copy lives in its git-ignored ``.promptism/composer.json``, written atomically and readable by the user
alone (0600): it holds the prompt, which is private and never committed. Number fields are kept as typed (text), so a
half-typed value comes back as it was.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from journal import Experiment
from journal.grid_record import GridRecord
from journal.journal import SCRATCH

from ..compose.emphasis import escape
from ..compose.grid import AXIS_NAMES
from ..compose.prompt import Keyword
from ..compose.spec import keyword
from ..contract import GivenOptions, Spec
from ..paths import write_private

FILE = "composer.json"
DEFAULT_MODE = "leave-one-out"


class CompositionError(ValueError):
    """A saved composition that cannot be read back (hand-edited, truncated, from another program)."""


@dataclass(frozen=True)
class Composition:
    prompt: str = ""
    negative: str = ""
    keywords: tuple[Keyword, ...] = ()
    mode: str = DEFAULT_MODE
    seeds: str = "1-4"
    axes: dict[str, str] = field(default_factory=dict)  # x / y / z → TYPE=VALUES, as the CLI's --x takes it
    steps: str = ""
    guidance: str = ""
    size: str = ""  # WIDTHxHEIGHT
    init: str = ""  # a path, #N or #N:K
    strength: str = ""
    model: str | None = None  # None: the workshop's model
    sampler: str | None = None  # an A1111 sampler name; None: the model's own scheduler

    def to_json(self) -> dict:
        return {**asdict(self), "keywords": [asdict(k) for k in self.keywords]}

    @classmethod
    def from_json(cls, data) -> "Composition":
        """The composition ``data`` holds; CompositionError naming what is wrong."""
        if not isinstance(data, dict):
            raise CompositionError("not a JSON object")
        texts = ("prompt", "negative", "mode", "seeds", "steps", "guidance", "size", "init", "strength")
        values = {}
        for key, value in data.items():
            if key in texts:
                if not isinstance(value, str):
                    raise CompositionError(f"{key} is not text")
            elif key in ("model", "sampler"):
                if value is not None and not isinstance(value, str):
                    raise CompositionError(f"{key} is not text")
            elif key == "axes":
                if not isinstance(value, dict) or not all(k in AXIS_NAMES and isinstance(v, str) for k, v in value.items()):
                    raise CompositionError("axes is not a table of x, y, z to text")
            elif key == "keywords":
                value = tuple(_keyword(k) for k in (value if isinstance(value, list) else [None]))
            else:
                continue  # a newer workshop's field: ignored
            values[key] = value
        return cls(**values)


def _keyword(item) -> Keyword:
    if not (isinstance(item, dict) and isinstance(item.get("text"), str) and isinstance(item.get("on", True), bool)
            and isinstance(item.get("weight", 1.0), (int, float)) and not isinstance(item.get("weight"), bool)
            and math.isfinite(item.get("weight", 1.0))):
        raise CompositionError("a keyword is not {text, on, weight}")
    return Keyword(item["text"], item.get("on", True), float(item.get("weight", 1.0)))


def composition_file(journal_dir: Path) -> Path:
    return journal_dir / SCRATCH / FILE


def save_composition(journal_dir: Path, composition: Composition) -> None:
    """Keep ``composition`` in the journal's private, git-ignored scratch folder (atomically, 0600)."""
    write_private(composition_file(journal_dir), json.dumps(composition.to_json(), ensure_ascii=False).encode())


def load_composition(journal_dir: Path) -> Composition | None:
    """The journal's saved composition; None when there is none; CompositionError when it cannot be read."""
    path = composition_file(journal_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CompositionError(f"cannot read it ({exc.__class__.__name__})") from None
    try:
        return Composition.from_json(json.loads(text))
    except json.JSONDecodeError:
        raise CompositionError("it is not valid JSON") from None


def keyword_weight(prompt: str, text: str) -> float:
    """The weight ``text`` carries in ``prompt`` as A1111 emphasis, ``(text:1.2)`` (as ``compose.emphasis.weighted``
    writes it); 1 where it has none."""
    found = re.search(r"\(" + re.escape(escape(text)) + r":([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\)", prompt)
    return float(found[1]) if found else 1.0


def seeds_text(seeds: list[int]) -> str:
    """Seeds as the seeds field takes them: ``3-6`` for consecutive ones, else a list."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _text(value) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _settings(params: dict) -> dict:
    """The composer's setting fields from a run's or an experiment's flat parameters."""
    width, height = params.get("width"), params.get("height")
    return {"steps": _text(params.get("steps")), "guidance": _text(params.get("guidance")),
            "size": f"{width}x{height}" if width and height else "", "init": _text(params.get("init_image")),
            "strength": _text(params.get("strength")) if params.get("init_image") else "",
            "sampler": params.get("sampler") or None}


def from_recorded(prompt: str, base: str | None, negative: str, keywords: list[str], mode: str, seeds: list[int],
                  axes: dict[str, str], params: dict, model: str) -> Composition:
    """What a run or an experiment was composed from: its base and keywords (with the weights its prompt gave them) —
    or, with no base recorded (an imported image), its whole prompt — its mode, seeds, axes, settings and model."""
    words = tuple(Keyword(k, True, keyword_weight(prompt, k)) for k in keywords) if base is not None else ()
    return Composition(prompt=prompt if base is None else base, negative=negative, keywords=words,
                       mode=mode if base is not None else "plain", seeds=seeds_text(seeds) or "0", axes=dict(axes),
                       model=model, **_settings(params))


def from_run(run) -> Composition:
    from ..runner.runs import model_source

    r = run.record
    seeds = r.spec.seeds or sorted({c.seed for c in r.cells})
    return from_recorded(r.spec.prompt, r.spec.base, r.spec.negative, r.spec.keywords, r.spec.mode, seeds,
                         r.spec.axes, r.params.dump(), model_source(r.model) or r.model.id)


def from_experiment(exp: Experiment) -> Composition:
    grid = exp.grid or GridRecord()
    seeds = grid.seeds or sorted({i.seed for i in exp.images if i.seed is not None})
    return from_recorded(exp.prompt, grid.base, exp.negative_prompt, list(exp.keywords), grid.mode, seeds, grid.axes,
                         exp.params, grid.model_source or exp.model.id)


def from_job(spec: Spec, options: GivenOptions) -> Composition:
    """A service job's composition: the spec the composer sent and the run options it gave."""
    seeds = spec.seeds
    keywords = tuple(keyword(k) for k in spec.keywords)  # as the grid read them
    size = options.size
    return replace(Composition(), prompt=spec.prompt, negative=spec.negative, keywords=keywords,
                   mode=spec.mode or "plain",
                   seeds=seeds if isinstance(seeds, str) else seeds_text(seeds if isinstance(seeds, list) else [seeds]),
                   axes=dict(spec.axes), steps=_text(options.steps), guidance=_text(options.guidance),
                   size=f"{size[0]}x{size[1]}" if size else "", init=_text(options.init_image),
                   strength=_text(options.strength), model=options.model, sampler=options.sampler)
