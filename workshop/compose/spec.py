"""Grid specs — spec files (TOML), command-line flags, a job's spec — read as a ``contract.Spec`` and turned into
a GridSpec.

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
    steps = 12                        # also guidance, size = "64x64", strength, init_image, max_batch, clip, sampler,
                                      # mask, mask_blur, mask_blur_y, mask_invert, mask_fill, mask_area, mask_padding, clip_skip,
                                      # emphasis, vae, tiling, variation_seed, variation_strength, hires…, sd_upscale,
                                      # sd_upscale_overlap, sd_upscale_upscaler
    [axes]
    y = "guidance=3,7.5"

Flags given on the command line win over the file. A value of the wrong type or an unknown key is refused in one
line naming it (``spec_values``): the same words for a spec file, flags and a job sent to the service.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from journal.files import read_text
from journal.text import quoted

from ..contract import TEXT_MAX, WANTED, KeywordTable, RunParams, Spec
from .dynamic import wildcards_folder
from .errors import SpecError
from .grid import AXIS_NAMES, DEFAULT_MAX_CELLS, AxisSpec, GridSpec
from .prompt import Keyword, Prompt
from .ranges import parse_values

KEYS = tuple(Spec.model_fields)
PARAMS = tuple(RunParams.model_fields)
MAX_DEPTH = 8  # levels of tables and lists a spec file may nest (a spec's own: 3, keywords = [{ text = … }])


def read_spec_file(path: Path) -> dict[str, Any]:
    """A spec file's table, its relative paths made relative to the file (flags are merged over it, then
    ``spec_values`` checks it). The file is read as ``journal.files.read_text`` reads a user's file: bounded, a FIFO
    or a device refused."""
    text = read_text(path, "spec file", pipe=True)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raw = None
    if raw is None or _deeper(raw, MAX_DEPTH):
        raise SpecError(f"spec file {path} is nested too deeply to be a spec (more than {MAX_DEPTH} levels of tables and "
                        "lists): fix the file")
    if unknown := sorted(set(raw) - set(KEYS)):
        raise SpecError(f"{path}: unknown key {quoted(unknown[0])}; the keys are {', '.join(sorted(KEYS))}")
    here = Path(path).parent  # relative paths in the file are relative to the file
    if isinstance(raw.get("wildcards"), str):
        raw["wildcards"] = str((here / raw["wildcards"]).resolve())
    params = raw.get("params")
    for key in ("init_image", "mask"):
        if isinstance(params, dict) and isinstance(params.get(key), str) and not params[key].startswith("#"):
            params[key] = str((here / Path(params[key]).expanduser()).resolve())
    if isinstance(params, dict) and isinstance(params.get("vae"), str) and (here / Path(params["vae"]).expanduser()).exists():
        params["vae"] = str((here / Path(params["vae"]).expanduser()).resolve())  # (a file beside it; else a VAE's name)
    return raw


def _deeper(value: Any, levels: int) -> bool:
    """Whether ``value`` nests tables or lists more than ``levels`` deep."""
    inner = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if inner is None:
        return False
    return levels == 0 or any(_deeper(v, levels - 1) for v in inner)


def spec_values(values: Mapping[str, Any]) -> Spec:
    """``values`` (a spec file's keys, flags merged over them) as a Spec; SpecError naming the first bad key."""
    try:
        return Spec.model_validate(dict(values))
    except ValidationError as exc:
        raise SpecError(spec_problem(exc, values)) from None


def spec_problem(exc: ValidationError, values: Mapping[str, Any]) -> str:
    """The first problem pydantic found in a spec, in one line that names the key, as a person writes the file."""
    error = exc.errors()[0]
    loc = _path(error["loc"])
    head = loc[0] if loc else ""
    if error["type"] == "extra_forbidden":
        if head == "params":
            return f"[params]: unknown key {quoted(error['loc'][-1])}; the keys are {', '.join(PARAMS)}"
        return f"unknown key {quoted(error['loc'][-1])}; the keys are {', '.join(sorted(KEYS))}"
    if head == "seeds":
        return "seeds must be a whole number, a list of them, or a range such as \"1-9\""
    if head == "keywords" and len(loc) > 1:
        item = values["keywords"][loc[1]]
        weight_wrong = next((e for e in exc.errors() if "weight" in _path(e["loc"])), None)
        if isinstance(item, dict) and isinstance(item.get("text"), str) and weight_wrong:
            wanted = "a finite number" if weight_wrong["type"] == "finite_number" else "a number"
            return f"the keyword {quoted(item['text'])}: its weight must be {wanted}, such as 1.3, not {quoted(item['weight'])}"
        if text_wrong := next((e for e in exc.errors() if e["type"] in ("lone_surrogate", "too_long")), None):
            return f"a keyword must be {WANTED[text_wrong['type']]}, not {quoted(item)[:80]}"
        return f"a keyword must be text or {{ text = \"…\", on = true, weight = 1.3 }}, not {quoted(item)}"
    if head == "axes" and len(loc) > 1:
        head = f"axis {loc[1]}"
    elif head == "params" and len(loc) > 1:
        head = f"[params] {loc[1]}"
    if error["type"] == "blank":
        return f"{head} is empty: give a value or leave it out"
    if error["type"] == "too_long":
        return f"{head} is {len(error['input']):,} characters long; at most {TEXT_MAX:,} are taken: shorten it"
    what = WANTED.get(error["type"], "of another type")
    if head == "params":
        what += " ([params] with steps = 12 …)"
    return f"{head} must be {what}, not {quoted(error.get('input'))}"


def _path(loc: tuple) -> list:
    """A pydantic error's location without the names of union members: ``('keywords', 0, 'KeywordTable', 'weight')``
    → ``['keywords', 0, 'weight']``."""
    path: list = []
    for part in loc:
        if not path or isinstance(part, int) or path == ["axes"] or part in (*PARAMS, *KeywordTable.model_fields):
            path.append(part)
    return path


def spec_from(spec: Spec | Mapping[str, Any]) -> GridSpec:
    """A GridSpec from a Spec (or from the values of one, checked by ``spec_values``)."""
    if not isinstance(spec, Spec):
        spec = spec_values(spec)
    keywords = tuple(keyword(k) for k in spec.keywords)
    prompt = Prompt(base=spec.prompt, keywords=keywords, negative=spec.negative, keywords_first=spec.keywords_first)
    for name in spec.axes:
        if name not in AXIS_NAMES:
            raise SpecError(f"unknown axis {quoted(name)}: use x, y or z")
    axes = {name: AxisSpec.parse(spec.axes[name], name) for name in AXIS_NAMES if name in spec.axes}
    seeds = spec.seeds
    if isinstance(seeds, str):
        seeds = parse_values(seeds, integer=True, what="seed")
    elif isinstance(seeds, int):
        seeds = [seeds]
    if not seeds:
        raise SpecError("seeds must be a whole number, a list of them, or a range such as \"1-9\"")
    if len(set(seeds)) != len(seeds):
        raise SpecError("a seed is given twice: keep one")
    if spec.model is not None and not spec.model.strip():
        raise SpecError("model is empty: name one (shapes, tiny, a diffusers folder …) or leave it out")
    default_mode = "sr" if any(a.kind == "sr" for a in axes.values()) else "plain"
    return GridSpec(
        prompt=prompt,
        mode=spec.mode or default_mode,
        seeds=tuple(seeds),
        per_cell_seeds=spec.per_cell_seeds,
        axes=axes,
        wildcards=wildcards_folder(spec.wildcards) if spec.wildcards else None,
        max_cells=DEFAULT_MAX_CELLS if spec.max_cells is None else spec.max_cells,
    )


def keyword(item: str | KeywordTable) -> Keyword:
    """A keyword from text (``"glowing:1.3"`` carries a weight: ``Keyword.from_text``) or a table; a table's
    ``weight`` is given alone, so its text is taken as it is."""
    if isinstance(item, str):
        return Keyword.from_text(item)
    if item.weight is None:
        return Keyword.from_text(item.text, item.on)
    return Keyword(item.text, item.on, item.weight)
