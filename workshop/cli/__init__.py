"""The ``promptism`` command line: every command, and the rule that bad input is one line on stderr, never a traceback.

A command's module is imported when that command runs (``LazyGroup``), so ``promptism --version`` or a command sent
to a warm service imports neither the runner nor the journal's git and image libraries unless it uses them."""

from __future__ import annotations

import gc
import os
import sys
from importlib import import_module
from pathlib import Path

import click

from journal import JournalError
from journal.limits import set_pixel_limit
from journal.text import one_line

from ..errors import PromptismError, os_error_line
from ..settings import load_settings
from .journal_option import JOURNAL_HELP, JOURNAL_PATH

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Every command: its module (in this package) and the click command in it.
COMMANDS = {
    **{name: ("journal_commands", f"{name}_cmd") for name in ("init", "log", "show", "retitle", "publish", "unpublish",
                                                             "doctor")},
    **{name: ("run_commands", f"{name}_cmd") for name in ("generate", "runs", "accept", "discard", "rerun", "resume",
                                                         "models", "samplers")},
    "import": ("import_command", "import_cmd"), "grid": ("grid_command", "grid_cmd"),
    "serve": ("service_commands", "serve_cmd"), "tui": ("tui_command", "tui_cmd"),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when one is run (or the help lists them all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        return getattr(import_module(f".{module}", __name__), attribute)


@click.group(cls=LazyGroup, context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(package_name="promptism", prog_name="promptism")
@click.option("--journal", "journal_dir", type=JOURNAL_PATH, default=None, help=JOURNAL_HELP)
@click.pass_context
def cli(ctx: click.Context, journal_dir: Path | None) -> None:
    """promptism — a prompt workshop for text-to-image models with a numbered, git-backed experiment journal.

    Every accepted experiment gets the next number (#1, #2, …), a title and a model credit; its prompt stays private.
    The journal lives in $PROMPTISM_JOURNAL (or your user data directory); every command takes --journal DIR.
    Without a command, promptism opens the workshop (the TUI).
    """
    ctx.obj = {"journal": journal_dir}
    set_pixel_limit(load_settings().max_image_pixels)
    if ctx.invoked_subcommand is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):  # a script or a pipe: the workshop needs a terminal
            click.echo(ctx.get_help())
            click.echo("\n(no terminal here, so the workshop did not open: run `promptism tui` in a terminal)")
            return
        ctx.invoke(cli.get_command(ctx, "tui"))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the CLI, turning every failure into one line on stderr and an exit code."""
    try:
        code = cli.main(args=argv, prog_name="promptism", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "promptism"
        return _fail(f"{where}: {exc.format_message()} (see `{where} --help`)", exc.exit_code)
    except click.ClickException as exc:
        return _fail(f"promptism: {exc.format_message()}", exc.exit_code)
    except (JournalError, PromptismError) as exc:  # the user's problem (every error of ours has that base), not a bug
        return _fail(f"promptism: {exc}", 1)
    except OSError as exc:  # the machine's refusal (disk full, permissions, a missing path); click itself ends a
        # command whose stdout was closed (`| head`) quietly, with exit code 1
        return _fail(f"promptism: {os_error_line(exc)}", 1)
    except (click.Abort, KeyboardInterrupt):
        return _fail("promptism: interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the promise is no traceback, even for our own bugs
        if os.environ.get("PROMPTISM_DEBUG"):
            raise
        return _fail(f"promptism: internal error: {exc.__class__.__name__}: {exc} (set PROMPTISM_DEBUG=1 for details)", 70)


def entry() -> None:
    """The ``promptism`` command as a process: ``main``, then exit without the interpreter's last garbage collection
    (everything still alive is frozen out of it; open files are closed and flushed as usual). That collection walks
    every object the imports made and cost a warm ``generate`` a fifth of its time (tests/bench/cli_start.py)."""
    code = main()
    gc.freeze()
    sys.exit(code)


def _fail(message: str, code: int) -> int:
    click.echo(one_line(message), err=True)
    return code
