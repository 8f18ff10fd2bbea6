"""``promptism import``: images made elsewhere (AUTOMATIC1111, ComfyUI, Fooocus, InvokeAI, NovelAI) as experiments —
some files as one experiment, or whole folders (an experiment per image or per generation batch) with a progress
bar and a summary. The journal's copies carry pixels only; prompts are never printed unless --reveal-prompt."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from journal import InvalidInput, Journal, is_journal
from journal.files import read_text
from journal.importing import (FolderOptions, FolderResult, Overrides, Planned, experiment_from_sources, folder_files,
                               import_folder, left_out, read_source)
from journal.text import visible
from journal.wording import as_flag, worded

from .journal_option import journal_option
from .output import console, literal, say, stderr_console


@click.command("import")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--title", "-t", help="Title of the new experiment; for a folder, titles are TITLE 1, TITLE 2 … (any "
              "Unicode; it is published).")
@click.option("--titles", "titles_file", type=click.Path(dir_okay=False, path_type=Path),
              help='For a folder: a TOML file of titles, "file name" = "title" (a name relative to the folder).')
@click.option("--model", "-m", help="Model that made the images that do not name one (the model an image names is the one credited).")
@click.option("--seed", type=click.IntRange(min=0, max=2**64 - 1), help="Seed of the images (overrides metadata).")
@click.option("--prompt", "-p", help="The private prompt (overrides metadata).")
@click.option("--prompt-file", type=click.Path(path_type=Path), help="Read the private prompt from a file (UTF-8), a pipe (<(pass show NAME): never in your shell history) or - (the standard input).")
@click.option("--negative", "-n", help="The private negative prompt (overrides metadata).")
@click.option("--recursive", "-r", is_flag=True, help="For a folder: its subfolders too.")
@click.option("--group", is_flag=True, help="For a folder: one experiment per generation batch (same prompt and "
              "settings, consecutive seeds), not one per image.")
@click.option("--dry-run", is_flag=True, help="For a folder: list what would be imported, import nothing.")
@click.option("--reveal-prompt", is_flag=True, help="With --dry-run: show the prompts too.")
@click.option("--allow-title-overlap", is_flag=True, help="Keep a title that contains the prompt or a keyword.")
@journal_option
def import_cmd(images, title, titles_file, model, seed, prompt, prompt_file, negative, recursive, group, dry_run,
               reveal_prompt, allow_title_overlap, journal_dir: Path) -> int:
    """Record IMAGES made elsewhere as the next numbered experiment — or, given a folder, every image in it.

    Prompt, negative prompt, seed, steps, guidance, sampler, size and every model are read from AUTOMATIC1111 (PNG,
    JPEG, stealth PNG info), ComfyUI, Fooocus, InvokeAI or NovelAI metadata when the image carries it; flags
    override it. The journal's copies carry no metadata at all. A folder is imported in a few commits under one
    lock; images already in the journal are skipped, so running it again completes an interrupted import.
    """
    if prompt is not None and prompt_file is not None:
        raise click.UsageError("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        prompt = read_text(prompt_file, "prompt file", pipe=True).strip()
    _outside(images, journal_dir)
    given = Overrides(model=model, seed=seed, prompt=prompt, negative_prompt=negative, name_of_hash=checkpoint_named)
    if any(path.is_dir() for path in images):
        _import_folders(list(images), given, title, titles_file, recursive, group, dry_run, reveal_prompt,
                        allow_title_overlap, journal_dir)
        return 0
    for flag, used in (("--titles", titles_file), ("--recursive", recursive), ("--group", group), ("--dry-run", dry_run)):
        if used:
            raise click.UsageError(f"{flag} is for a folder; name one, or leave {flag} out")
    if title is None:
        raise click.UsageError("give the experiment a --title (any text; it is published)")
    sources = [read_source(path) for path in images]
    new = experiment_from_sources(sources, title, given)
    journal = Journal.open(journal_dir, create=True)
    exp = journal.accept(new, allow_title_overlap=allow_title_overlap)
    say(f"#{exp.number} {exp.title} — {len(exp.images)} image(s) by {exp.credit} in {journal.folder(exp)}")
    for source in sources:
        if note := left_out(source, given):
            say(f"note: {source.path}: {worded(note, as_flag)}", err=True)
    return 0


def _import_folders(roots: list[Path], given: Overrides, title, titles_file, recursive, group, dry_run, reveal_prompt,
                    allow_title_overlap, journal_dir: Path) -> None:
    """The summary; then InvalidInput (exit status 1) when nothing was imported, nor was in the journal already."""
    if title is None and titles_file is None:
        if not dry_run:
            raise click.UsageError("give --title TITLE (experiments become TITLE 1, TITLE 2 …) or --titles FILE")
        title = "untitled"  # a dry run only shows the plan: its experiments are numbered so
    if reveal_prompt and not dry_run:
        raise click.UsageError("--reveal-prompt goes with --dry-run (an import prints no prompt)")
    options = FolderOptions(given=given, group=group, title=title, titles=_titles(titles_file) if titles_file else {},
                            allow_title_overlap=allow_title_overlap)
    files = folder_files(roots, recursive)
    if not files:
        raise InvalidInput(f"no files in {visible(str(roots[0]), keep_newlines=False)}"
                           + ("" if recursive else " (--recursive reads its subfolders)"))
    journal = Journal.open(journal_dir, create=True) if not dry_run or is_journal(journal_dir) else None
    with _Progress(len(files)) as advance:
        result = import_folder(journal, files, options, dry_run=dry_run, on_file=advance)
    if dry_run:
        _print_plan(result.planned, reveal_prompt)
    _print_summary(result, dry_run)
    if not (result.imported or result.planned or result.present):
        raise InvalidInput(f"nothing imported: {len(result.failed)} image(s) failed (said above)" if result.failed else
                           f"nothing imported: none of the {len(files)} file(s) is a PNG, JPEG or WebP image"
                           + ("" if recursive else " (--recursive reads the subfolders)"))


def _outside(paths, journal_dir: Path) -> None:
    """InvalidInput for a path in the journal itself: its images are the journal's own."""
    if not is_journal(journal_dir):
        return
    home = journal_dir.resolve()
    for path in paths:
        if (found := path.resolve()) == home or home in found.parents:
            raise InvalidInput(f"{visible(str(path), keep_newlines=False)} is in the journal {home}: its images are the "
                               "journal's own (a run's become an experiment with `promptism accept RUN`); import "
                               "images made elsewhere")


def _titles(path: Path) -> dict[str, str]:
    shown = visible(str(path), keep_newlines=False)
    fix = 'write one line per image: "file.png" = "title"'
    try:
        table = tomllib.loads(read_text(path, "titles file", pipe=True))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"--titles {shown} is not TOML ({exc}); {fix}") from None
    except RecursionError:
        raise InvalidInput(f"--titles {shown} is nested too deeply to be a titles file; {fix}") from None
    if bad := next((k for k, v in table.items() if not isinstance(v, str)), None):
        raise InvalidInput(f"--titles {shown}: the title of {visible(bad)} is not a string; quote it: \"file.png\" = \"title\"")
    return table


class _Progress:
    """A progress bar on stderr while the folder is read (on a terminal only), as a callable advancing it."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def __enter__(self):
        if stderr_console().is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=stderr_console(), transient=True)
            self.task = self.bar.add_task("import", total=self.total)
            self.bar.start()
        return self.advance

    def advance(self, path: Path) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


def _print_plan(planned: list[Planned], reveal: bool) -> None:
    out = console()
    for item in planned:
        new, info = item.new, item.sources[0].info
        p = new.params
        seeds = [i.seed for i in new.images if i.seed is not None]
        fields = [
            f"{len(new.images)} image(s)",
            p.get("imported_from", "no metadata"),
            " + ".join(m.id for m in (new.model, *new.extra_models)),
            f"seed {seeds[0]}" + (f"–{seeds[-1]}" if len(seeds) > 1 else "") if seeds else "no seed",
            *(f"{label} {p[key]}" for key, label in (("steps", "steps"), ("guidance", "cfg")) if key in p),
            p.get("sampler") or "no sampler",
            f"{p['width']}x{p['height']}",
        ]
        prompt = (f"prompt {new.prompt!r}, negative {new.negative_prompt!r}" if reveal
                  else f"prompt hidden ({len(new.keywords)} keywords; --reveal-prompt shows it)" if new.prompt else "no prompt")
        out.print(literal(f"{new.title}: {item.sources[0].path.name}" + (f" … {item.sources[-1].path.name}" if len(item.sources) > 1 else "")))
        out.print(literal("    " + " · ".join(fields) + " · " + prompt))
        if info.problem:
            out.print(literal(f"    ({info.problem})"))


def _print_summary(result: FolderResult, dry_run: bool) -> None:
    images = sum(len(e.images) for e in result.imported) if not dry_run else sum(len(p.sources) for p in result.planned)
    experiments = len(result.imported) if not dry_run else len(result.planned)
    numbers = f" (#{result.imported[0].number}–#{result.imported[-1].number}, {result.commits} commit(s))" if result.imported else ""
    say(f"{'would import' if dry_run else 'imported'} {images} image(s) as {experiments} experiment(s){numbers}; "
        f"skipped {len(result.skipped)}; failed {len(result.failed)}")
    for label, entries in (("noted", result.noted), ("skipped", result.skipped), ("failed", result.failed)):
        for path, why in entries[:20]:  # a reason that names the file already (the journal's own messages) as it is
            why = worded(why, as_flag)  # (a note may name an option)
            say(f"  {label} " + (why if str(path) in why else f"{path}: {why}"), err=label == "failed")
        if len(entries) > 20:
            say(f"  … and {len(entries) - 20} more {label}", err=label == "failed")


def checkpoint_named(short: str) -> str | None:
    """The name of the checkpoint in the A1111 / ComfyUI installs config.toml names whose hash is ``short`` (an
    infotext's ``Model hash:``), or None."""
    from ..runner.model_files import find_all
    from ..settings import load_settings

    found = find_all(load_settings(), "checkpoint", short)
    return found[0].name if len(found) == 1 else None
