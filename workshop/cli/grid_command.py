"""``promptism grid``: compose a keyword-ablation grid from a spec file and/or flags, and preview its cells."""

from __future__ import annotations

from pathlib import Path

import click

from ..compose.grid import DEFAULT_MAX_CELLS, MODES, Grid, build_grid
from ..compose.spec import read_spec_file, spec_from, spec_values
from ..compose.tokens import CONTEXT
from ..settings import load_settings
from .output import console, dump_json, literal, print_table
from .run_commands import checked_options, execute_grid, run_options


@click.command("grid")
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--prompt", "-p", help="The base prompt.")
@click.option("--negative", "-n", help="The negative prompt.")
@click.option("--keyword", "-k", "keywords", multiple=True, help="A keyword (repeat for several, in order); "
              "\"KEYWORD:1.3\" weighs it as A1111's (KEYWORD:1.3) does.")
@click.option("--off", "off", multiple=True, help="A keyword listed but switched off (repeat for several).")
@click.option("--keywords-first", is_flag=True, default=None, help="Put the keywords before the base prompt.")
@click.option("--mode", type=click.Choice(MODES), help="How keywords vary (default: plain, or sr with an S/R axis).")
@click.option("--seeds", "-s", help="Seeds: 7, or 1,2,3, or 1-9 (several seeds add an axis).")
@click.option("--per-cell-seeds", is_flag=True, default=None, help="Seed + cell index instead of one shared seed.")
@click.option("--x", "x", help="Column axis TYPE=VALUES: sr=red,blue | nsr=blurry,noisy | order=red,glowing | "
              "weight:KEYWORD=0,0.5,1 | seed=1-3 | steps=10-30 (+10) | guidance=3,7.5 | sampler=Euler a,DDIM | "
              "model=tiny,shapes | size=512x512,768x512 | strength=0.3,0.5")
@click.option("--y", "y", help="Row axis, as --x.")
@click.option("--z", "z", help="Sub-grid axis, as --x.")
@click.option("--wildcards", type=click.Path(file_okay=False, path_type=Path), help="Folder of NAME.txt wildcard files.")
@click.option("--max-cells", type=int, help=f"Refuse grids with more cells than this (default {DEFAULT_MAX_CELLS}).")
@click.option("--dry-run", is_flag=True, help="Show the cells without loading a model.")
@run_options
def grid_cmd(spec_file, prompt, negative, keywords, off, keywords_first, mode, seeds, per_cell_seeds, x, y, z, wildcards,
             max_cells, dry_run, journal_dir, **opts) -> None:
    """Compose a grid of prompt variants × seeds from SPEC_FILE (TOML) and/or flags (flags win), and run it.

    \b
    Modes: matrix (A1111 Prompt matrix), leave-one-out, add-one, sr (Prompt S/R axes), dynamic ({a|b} alternatives).
    Example: promptism grid -p "a red circle" -k glowing -k "pixel art" --mode leave-one-out --seeds 1-3 --dry-run
    """
    values = read_spec_file(spec_file) if spec_file else {}
    flags = {"prompt": prompt, "negative": negative, "mode": mode, "keywords_first": keywords_first, "seeds": seeds,
             "per_cell_seeds": per_cell_seeds, "max_cells": max_cells, "wildcards": wildcards and str(wildcards)}
    values.update({k: v for k, v in flags.items() if v is not None})
    if keywords or off:
        values["keywords"] = [*keywords, *({"text": k, "on": False} for k in off)]
    axes = {name: value for name, value in (("x", x), ("y", y), ("z", z)) if value is not None}
    if axes:
        values["axes"] = {**values.get("axes", {}), **axes}
    if not values.get("prompt") and not values.get("keywords"):
        raise click.UsageError("give a spec file or --prompt TEXT")
    spec = spec_values(values)
    grid = build_grid(spec_from(spec))
    if not dry_run:
        execute_grid(grid, spec, opts, journal_dir)
        return
    given = checked_options(grid, spec, opts)  # refuse now what the real run would refuse: its options…
    from ..runner.models import resolve
    from ..runner.options import grid_models, resolve as resolve_options

    models = grid_models(grid, resolve_options(spec, given, load_settings()))
    for model in models:  # …and a model that is not here
        resolve(model, allow_download=given.allow_download)
    if opts["as_json"]:
        click.echo(dump_json([c.to_json() for c in grid.cells]))
    else:
        from ..runner.models import reads_windows

        _print_grid(grid, windowed=all(map(reads_windows, models)))


def _print_grid(grid: Grid, *, windowed: bool = False) -> None:
    """The cells as a table; ``windowed``: the models read every A1111 window of a long prompt (a count of windows,
    nothing flagged), else what falls past the one window they read is flagged."""
    from ..compose.tokens import clip_bpe, windows

    out = console()
    params = sorted({k for c in grid.cells for k in c.params})
    show_sub = grid.subgrids > 1
    headers = ["#", "row", "col", *(["sub"] if show_sub else []), "seed", *params, "tokens", "prompt"]
    rows = []
    for c in grid.cells:
        if windowed:
            count = windows(c.prompt, clip_bpe())
            tokens = f"{c.tokens}" + (f" ({count} windows)" if count > 1 else f"/{c.token_budget.limit}")
        else:
            tokens = f"{c.tokens}/{c.token_budget.limit}" + (" !" if c.token_budget.over else "")
        rows.append([str(c.index), str(c.row), str(c.col), *([str(c.subgrid)] if show_sub else []), str(c.seed),
                     *(str(c.params.get(p, "")) for p in params), tokens, c.prompt])
    out.print(literal(grid.describe()), style="bold")  # (once every cell is counted: a prompt refused says only so)
    print_table(headers, rows)
    for c in grid.cells:
        if c.truncated_keywords and not windowed:
            out.print(literal(f"! cell {c.index}: past the {CONTEXT}-token limit: " + ", ".join(repr(k) for k in c.truncated_keywords)))
