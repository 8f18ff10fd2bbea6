"""``promptism tui`` (and plain ``promptism``): the Textual workshop."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..tui import GRAPHICS
from .journal_option import journal_option



@click.command("tui")
@click.option("--model", "-m", help="Model to start with (default: the configured one, else shapes).")
@click.option("--graphics", type=click.Choice(GRAPHICS), default="auto", show_default=True,
              help="How images are drawn: kitty, sixel, half-block cells, or not at all (auto asks the terminal; "
                   "inside tmux, sixel and kitty need `set -g allow-passthrough on`).")
@click.option("--truecolor/--no-truecolor", default=None,
              help="Draw 24-bit colours, or at most 256 (default: ask the terminal; $COLORTERM, which ssh does not "
                   "forward, decides where it is set).")
@click.option("--local", is_flag=True, help="Run in this process, not in the service (runs then end with the workshop).")
@journal_option
def tui_cmd(model: str | None, graphics: str, truecolor: bool | None, local: bool, journal_dir: Path) -> None:
    """Open the workshop: compose, run grids, accept, browse the journal (F1 lists the keys). Runs go to the
    service (started when none runs), so they outlive the workshop and a lost SSH session; the next workshop
    re-attaches to them."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):  # (it would draw into the pipe and wait for keys forever)
        raise click.ClickException("the workshop needs a terminal, and stdin or stdout is not one here; run "
                                   "`promptism tui` in a terminal (every command of it is a CLI command too: --help)")
    from ..tui.app import create_app

    app = create_app(journal_dir, model, graphics, truecolor, local)
    app.run()
    if job := app.left_running:
        click.echo(f"job {job.id} runs on in the service" + (f" (run {job.run}: `promptism runs {job.run} --follow` "
                   "watches it)" if job.run else "") + "; `promptism` again shows it", err=True)
