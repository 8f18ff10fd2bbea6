"""Journal commands: init, log, show, retitle, publish, unpublish, doctor (import: import_command)."""

from __future__ import annotations

from pathlib import Path

import click

from journal import Experiment, Journal
from journal.grid_record import per_image_names, varying
from journal.model import STATUSES

from ..tui import GRAPHICS
from .journal_option import journal_option, json_option
from .output import console, dump_json, literal, print_table, say

NUMBER = click.IntRange(min=1)
DATE = click.DateTime(formats=["%Y-%m-%d"])


def _dump(data) -> None:
    click.echo(dump_json(data))


@click.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@journal_option
def init_cmd(directory: Path | None, journal_dir: Path) -> None:
    """Create a journal in DIRECTORY (default: the --journal directory)."""
    journal = Journal.init(directory or journal_dir)
    say(f"journal ready at {journal.path} ({len(journal)} experiments)")


@click.command("log")
@click.option("--search", "-s", "text", help="Only titles or models containing this (case and letter style ignored).")
@click.option("--model", help="Only experiments whose model id contains this.")
@click.option("--keyword", help="Only experiments that used this keyword.")
@click.option("--status", type=click.Choice(STATUSES), help="Only unreleased or published experiments.")
@click.option("--since", type=DATE, help="Only experiments created on or after this date (YYYY-MM-DD, UTC).")
@click.option("--until", type=DATE, help="Only experiments created on or before this date (YYYY-MM-DD, UTC).")
@click.option("--limit", "-l", type=click.IntRange(min=1), default=20, show_default=True, help="How many to show.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many newest matches first (paging).")
@json_option
@journal_option
def log_cmd(text, model, keyword, status, since, until, limit, offset, as_json, journal_dir: Path) -> None:
    """List experiments, newest first."""
    journal = Journal.open(journal_dir)
    found = journal.search(text, model=model, keyword=keyword, status=status, offset=offset, limit=limit,
                           since=since and since.date().isoformat(), until=until and until.date().isoformat())
    if as_json:
        _dump([e.public_doc() for e in found])
        return
    if not found:
        say("no experiments match" if (text or model or keyword or status or since or until) else
            f"the journal at {journal.path} is empty — record images with `promptism import`")
        return
    print_table(["#", "title", "model", "created", "status", "images"],
                [[str(e.number), e.title, e.credit, e.created[:10], e.status, str(len(e.images))] for e in found])


@click.command("show")
@click.argument("number", type=NUMBER)
@click.option("--reveal-prompt", is_flag=True, help="Also show the private prompt, negative prompt and keywords.")
@click.option("--image", "show_image", is_flag=True, help="Draw the images in the terminal (sixel, kitty or half-blocks).")
@click.option("--graphics", type=click.Choice(GRAPHICS), default="auto", show_default=True,
              help="How --image draws (auto: ask the terminal, as the workshop does).")
@json_option
@journal_option
def show_cmd(number: int, reveal_prompt: bool, show_image: bool, graphics: str, as_json: bool, journal_dir: Path) -> None:
    """Show experiment NUMBER. The prompt stays hidden unless --reveal-prompt."""
    journal = Journal.open(journal_dir)
    exp = journal.get(number)
    if as_json:
        doc = exp.to_doc() if reveal_prompt else exp.public_doc()
        doc["path"] = str(journal.folder(exp))
        for image, settings in zip(doc["images"], exp.image_settings()):  # each image's own (an axis grid's)
            image["settings"] = settings.model_dump(exclude_none=True)
        _dump(doc)
        return
    rows = _describe(exp, journal, reveal_prompt)
    out = console()
    out.print(literal(f"#{exp.number} {exp.title}"), style="bold")
    for label, value in rows:
        out.print(literal(f"{label:<11}{value}"))
    if show_image:
        from .output import draw_images

        draw_images([journal.image_path(exp, image) for image in exp.images], graphics)


def _describe(exp: Experiment, journal: Journal, reveal: bool) -> list[tuple[str, str]]:
    m = exp.model
    rows = [("Model", exp.credit + "".join(f" · {x}" for x in (m.pipeline, m.scheduler, m.revision, m.hash) if x)),
            ("Status", exp.status + (f" ({exp.published[:10]})" if exp.published else "")),
            ("Created", exp.created.replace("T", " ").replace("Z", " UTC"))]
    settings = exp.image_settings()
    apart = varying(settings)
    if shared := [f"{k}={v}" for k, v in exp.params.items() if k not in apart]:
        per_image = f"  (per image: {', '.join(per_image_names(apart))})" if apart else ""
        rows.append(("Parameters", " ".join(shared) + per_image))
    if exp.parent:
        rows.append(("Parent", f"#{exp.parent}"))
    if exp.compute:
        c = exp.compute
        rows.append(("Compute", " · ".join(x for x in (c.device, c.seconds is not None and f"{c.seconds:.1f} s",
                                                       c.energy_wh is not None and f"{c.energy_wh:.3f} Wh",
                                                       c.co2_g is not None and f"≈ {c.co2_g:.2f} g CO2") if x)))
    for place, (image, own) in enumerate(zip(exp.images, settings), 1):  # numbered as --init-image '#N:K' picks them
        extras = (f"  seed {image.seed}" if image.seed is not None else "") + (f"  {own.line(apart)}" if apart else "") \
            + (f"  score {image.score:.3f}" if image.score is not None else "")
        rows.append((f"Image {place}", f"{journal.image_path(exp, image)}  {image.width}×{image.height}{extras}"))
        if reveal and image.prompt:  # a grid's images each have their own prompt
            rows.append(("  prompt", image.prompt))
    if reveal:
        rows += [("Prompt", exp.prompt), ("Negative", exp.negative_prompt), ("Keywords", ", ".join(exp.keywords))]
    else:
        rows.append(("Prompt", "(private — add --reveal-prompt to see it)"))
    return rows


@click.command("retitle")
@click.argument("number", type=NUMBER)
@click.argument("title")
@click.option("--allow-title-overlap", is_flag=True, help="Keep a title that contains the prompt or a keyword.")
@journal_option
def retitle_cmd(number: int, title: str, allow_title_overlap: bool, journal_dir: Path) -> None:
    """Give experiment NUMBER a new TITLE (one commit; its folder is renamed to match)."""
    journal = Journal.open(journal_dir)
    exp = journal.retitle(number, title, allow_title_overlap=allow_title_overlap)
    say(f"#{exp.number} {exp.title}")
    if exp.status == "published":
        gallery = journal.gallery or "GALLERY"
        say(f"#{exp.number} is published: `promptism publish --out {gallery}` shows the new title there")


@click.command("publish")
@click.argument("numbers", nargs=-1, type=NUMBER)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Gallery directory to (re)write.")
@click.option("--allow-title-overlap", is_flag=True, help="Publish even if a title contains its prompt or a keyword.")
@journal_option
def publish_cmd(numbers, out: Path, allow_title_overlap: bool, journal_dir: Path) -> None:
    """Mark NUMBERS published and write a static gallery of all published experiments to --out (no NUMBERS: just
    rewrite it, e.g. after an unpublish).

    The gallery shows number, title, "Generated with <model>" and date; images are re-encoded with no metadata.
    No prompt, negative prompt or keyword is written anywhere in it.
    """
    published = Journal.open(journal_dir).publish(numbers, out, allow_title_overlap=allow_title_overlap)
    what = f"published {', '.join(f'#{e.number}' for e in published)}" if published else "rewrote the gallery"
    say(f"{what} — {out.absolute() / 'index.html'}")


@click.command("unpublish")
@click.argument("numbers", nargs=-1, required=True, type=NUMBER)
@journal_option
def unpublish_cmd(numbers, journal_dir: Path) -> None:
    """Mark NUMBERS unreleased again (re-run publish to rewrite a gallery without them)."""
    journal = Journal.open(journal_dir)
    was = {n for n in numbers if journal.get(n).status == "published"}
    done = journal.unpublish(numbers)
    if changed := [e.number for e in done if e.number in was]:
        click.echo(f"unpublished {', '.join(f'#{n}' for n in changed)}")
    if untouched := [e.number for e in done if e.number not in was]:
        click.echo(f"{', '.join(f'#{n}' for n in untouched)} {'was' if len(untouched) == 1 else 'were'} not published")


@click.command("doctor")
@click.option("--check", is_flag=True, help="Only report; change nothing.")
@click.option("--gc", is_flag=True, help="Also prune the git objects no commit reaches (writes that were rolled back "
              "leave them, and they may hold a prompt).")
@journal_option
def doctor_cmd(check: bool, gc: bool, journal_dir: Path) -> None:
    """Check the index against the files and git history, and that the history (it holds every prompt) is yours alone;
    repair what can be repaired without losing anything."""
    if check and gc:
        raise click.UsageError("--gc changes the journal and --check changes nothing: give one of them")
    journal = Journal.open(journal_dir, recover=False)  # doctor recovers (and repairs) itself, reporting what it did
    findings = journal.doctor(repair=not check, gc=gc)
    for f in findings:
        mark = {True: "repaired", False: "PROBLEM", None: "note"}[f.repaired]
        console().print(literal(f"{mark:>8}  {f.problem}"))
    broken = [f for f in findings if f.repaired is False]
    if not broken:
        say(f"journal at {journal.path} is healthy ({len(journal)} experiments)")
    else:
        raise click.ClickException(f"{len(broken)} problem(s) remain in {journal.path}")

