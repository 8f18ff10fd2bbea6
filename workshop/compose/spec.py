"""Grid spec files (TOML) and command-line flags, turned into a GridSpec.

    prompt = "a red circle on a blue background"
    negative = "blurry"
    keywords = ["glowing", "pixel art:1.3", { text = "striped", on = false, weight = 0.8 }]
    keywords_first = false
    mode = "leave-one-out"            # plain | matrix | leave-one-out | add-one | sr | dynamic
    seeds = "1-3"                     # or [1, 2, 3]
    per_cell_seeds = false
    max_cells = 64
    wildcards = "wildcards"           # folder of NAME.txt files, relative to this file
    model = "shapes"
    [params]                          # the run flags' settings (flags win); unknown keys are refused
    steps = 12                        # also guidance, size = "64x64", strength, init_image, max_batch, clip, sampler
    [axes]
    y = "guidance=3,7.5"

Flags given on the command line win over the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from journal.text import quoted

from .errors import SpecError
from .grid import AXIS_NAMES, DEFAULT_MAX_CELLS, AxisSpec, GridSpec
from .params import parse_params
from .prompt import Keyword, Prompt
from .ranges import parse_values

KEYS = {"prompt", "negative", "keywords", "keywords_first", "mode", "seeds", "per_cell_seeds", "max_cells",
        "wildcards", "model", "params", "axes"}


def read_spec_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise SpecError(f"{path}: unknown key {quoted(unknown[0])}; the keys are {', '.join(sorted(KEYS))}")
    here = Path(path).parent  # relative paths in the file are relative to the file
    if isinstance(raw.get("wildcards"), str):
        raw["wildcards"] = str((here / raw["wildcards"]).resolve())
    params = raw.get("params")
    if isinstance(params, dict) and isinstance(params.get("init_image"), str) and not params["init_image"].startswith("#"):
        params["init_image"] = str((here / Path(params["init_image"]).expanduser()).resolve())
    return raw


def spec_from(values: dict[str, Any]) -> GridSpec:
    """A GridSpec from spec-file keys (flags already merged over them)."""
    keywords = tuple(_keyword(k) for k in _typed(values, "keywords", list, []))
    prompt = Prompt(base=_typed(values, "prompt", str, ""), keywords=keywords, negative=_typed(values, "negative", str, ""),
                    keywords_first=_typed(values, "keywords_first", bool, False))
    axes_raw = _typed(values, "axes", dict, {})
    for name in axes_raw:
        if name not in AXIS_NAMES:
            raise SpecError(f"unknown axis {quoted(name)}: use x, y or z")
    axes = {name: AxisSpec.parse(_typed(axes_raw, name, str, ""), name) for name in AXIS_NAMES if name in axes_raw}
    seeds = values.get("seeds", [0])
    if isinstance(seeds, str):
        seeds = parse_values(seeds, integer=True, what="seed")
    elif isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SpecError("seeds must be a whole number, a list of them, or a range such as \"1-9\"")
    if len(set(seeds)) != len(seeds):
        raise SpecError("a seed is given twice: keep one")
    max_cells = _typed(values, "max_cells", int, DEFAULT_MAX_CELLS)
    wildcards = _typed(values, "wildcards", str, None)
    model = _typed(values, "model", str, None)
    if model is not None and not model.strip():
        raise SpecError("model is empty: name one (shapes, tiny, a diffusers folder …) or leave it out")
    default_mode = "sr" if any(a.kind == "sr" for a in axes.values()) else "plain"
    return GridSpec(
        prompt=prompt,
        mode=_typed(values, "mode", str, default_mode),
        seeds=tuple(seeds),
        per_cell_seeds=_typed(values, "per_cell_seeds", bool, False),
        axes=axes,
        wildcards=Path(wildcards) if wildcards else None,
        max_cells=max_cells,
        model=model,
        params=parse_params(values.get("params")),
    )


def _keyword(item) -> Keyword:
    """A keyword from text (``"glowing:1.3"`` carries a weight: ``Keyword.from_text``) or a table; a table's
    ``weight`` is given alone, so its text is taken as it is."""
    if isinstance(item, str):
        return Keyword.from_text(item)
    if isinstance(item, dict) and isinstance(item.get("text"), str) and set(item) <= {"text", "on", "weight"}:
        on = bool(item.get("on", True))
        if "weight" not in item:
            return Keyword.from_text(item["text"], on)
        weight = item["weight"]
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise SpecError(f"the keyword {quoted(item['text'])}: its weight must be a number, such as 1.3, not {quoted(weight)}")
        return Keyword(item["text"], on, float(weight))
    raise SpecError(f"a keyword must be text or {{ text = \"…\", on = true, weight = 1.3 }}, not {quoted(item)}")


def _typed(values: dict, key: str, typ: type, default):
    value = values.get(key, default)
    if value is None:
        return default
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise SpecError(f"{key} must be {_NAMES[typ]}, not {quoted(value)}")
    return value


_NAMES = {str: "text", bool: "true or false", int: "a whole number", list: "a list", dict: "a table"}
