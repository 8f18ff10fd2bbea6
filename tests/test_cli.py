"""The command line as a user meets it: help everywhere, one-line errors, literal titles, the default journal."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import make_png, new_experiment, on_pty, run_cli

COMMANDS = ["init", "import", "log", "show", "retitle", "publish", "unpublish", "doctor"]


@pytest.fixture
def jpath(tmp_path, capsys):
    src = make_png(tmp_path / "a.png")
    j = tmp_path / "j"
    assert run_cli(capsys, "import", str(src), "-t", "first", "-m", "shapes", "-p", "a red \x1b[2J circle", "--journal", str(j))[0] == 0
    return j


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command, capsys):
    code, out, _ = run_cli(capsys, *([command] if command else []), "--help")
    assert code == 0 and "Usage: promptism" in out
    if command:
        assert "--journal" in out


def test_console_script_runs():
    exe = Path(sys.executable).parent / "promptism"
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "promptism" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["show", "0"], "NUMBER"),
    (["show", "x"], "NUMBER"),
    (["show", "5"], "no experiment #5"),
    (["log", "--status", "bogus"], "--status"),
    (["log", "--since", "yesterday"], "--since"),
    (["log", "--limit", "0"], "--limit"),
    (["import", "/no/such.png", "-t", "x", "-m", "m"], "no such file"),
    (["import", "{notimage}", "-t", "x", "-m", "m"], "not an image"),
    (["import", "{image}", "-m", "m"], "--title"),
    (["import", "{image}", "-t", "two\nlines", "-m", "m"], "single line"),
    (["import", "{image}", "-t", "x", "-m", "m", "-p", "a", "--prompt-file", "{image}"], "not both"),
    (["import", "{image}", "-t", "x", "-m", "m", "--seed", "-1"], "--seed"),
    (["retitle", "1", ""], "the title is empty"),
    (["publish", "1", "--out", "{notempty}"], "not a promptism gallery"),
    (["publish", "1"], "--out"),
    (["frobnicate"], "No such command"),
])
def test_bad_input_is_one_line_and_nonzero(args, fragment, jpath, tmp_path, capsys):
    notempty = tmp_path / "notempty"
    notempty.mkdir()
    (notempty / "keep.txt").write_text("x")
    (tmp_path / "notimage.png").write_text("text")
    subs = {"{image}": str(make_png(tmp_path / "b.png")), "{notimage}": str(tmp_path / "notimage.png"), "{notempty}": str(notempty)}
    args = [subs.get(a, a) for a in args]
    code, out, err = run_cli(capsys, *args, "--journal", str(jpath)) if args[0] != "frobnicate" else run_cli(capsys, *args)
    assert code != 0
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err, err
    assert len(Journal.open(jpath)) == 1  # nothing half-written


def test_commands_on_a_directory_that_is_not_a_journal(tmp_path, capsys):
    code, _, err = run_cli(capsys, "log", "--journal", str(tmp_path / "missing"))
    assert code == 1 and "promptism init" in err and err.count("\n") == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    for args in (["log"], ["init", str(tmp_path / "other")]):
        code, _, err = run_cli(capsys, *args, "--journal", str(tmp_path / "other"))
        assert code == 1 and err.count("\n") == 1


def test_default_journal_location(tmp_path, capsys, monkeypatch):
    src = str(make_png(tmp_path / "a.png"))
    assert run_cli(capsys, "import", src, "-t", "in the data dir", "-m", "m")[0] == 0
    default = Path.home() / "data" / "promptism" / "journal"  # $XDG_DATA_HOME/promptism/journal
    assert Journal.open(default).get(1).title == "in the data dir"
    monkeypatch.setenv("PROMPTISM_JOURNAL", str(tmp_path / "env-journal"))
    assert run_cli(capsys, "import", src, "-t", "via env", "-m", "m")[0] == 0
    assert Journal.open(tmp_path / "env-journal").get(1).title == "via env"


def test_hostile_titles_print_literally(jpath, capsys):
    hostile = "[bold red]x[/][link=http://e.vil]y[/link]"
    assert run_cli(capsys, "retitle", "1", hostile, "--journal", str(jpath))[0] == 0
    for args in (["log"], ["show", "1"]):
        code, out, _ = run_cli(capsys, *args, "--journal", str(jpath))
        assert hostile in out and "\x1b" not in out


def test_revealed_prompt_cannot_drive_the_terminal(jpath, capsys):
    code, out, _ = run_cli(capsys, "show", "1", "--reveal-prompt", "--journal", str(jpath))
    assert code == 0 and "\x1b" not in out and "a red ␛[2J circle" in out
    _, out, _ = run_cli(capsys, "show", "1", "--journal", str(jpath))
    assert "circle" not in out and "--reveal-prompt" in out


def test_log_json_and_paging(jpath, tmp_path, capsys):
    src = str(make_png(tmp_path / "c.png"))
    for i in range(2, 6):
        run_cli(capsys, "import", src, "-t", f"study {i}", "-m", "m", "--journal", str(jpath))
    code, out, _ = run_cli(capsys, "log", "--json", "--limit", "2", "--offset", "1", "--journal", str(jpath))
    rows = json.loads(out)
    assert [r["number"] for r in rows] == [4, 3] and all("prompt" not in r for r in rows)
    code, out, _ = run_cli(capsys, "log", "--search", "FIRST", "--journal", str(jpath))
    assert "first" in out and "study" not in out


def test_doctor_reports_and_repairs(jpath, capsys):
    exp = Journal.open(jpath).get(1)
    image = jpath / exp.dir / exp.images[0].file
    good = image.read_bytes()
    image.write_bytes(b"corrupted")
    (jpath / "experiments" / "stray.txt").write_text("left here")
    code, out, err = run_cli(capsys, "doctor", "--check", "--journal", str(jpath))
    assert code == 1 and "PROBLEM" in out and "differs" in out and "stray.txt" in out
    code, out, err = run_cli(capsys, "doctor", "--journal", str(jpath))
    assert code == 0 and "restored from git" in out and "healthy" in out
    assert image.read_bytes() == good
    assert list((jpath / ".promptism" / "orphans").rglob("stray.txt"))  # moved aside, never deleted
    code, out, _ = run_cli(capsys, "doctor", "--journal", str(jpath))
    assert code == 0 and out.strip().endswith("healthy (1 experiments)")


def test_show_image_draws_on_a_terminal(jpath):
    """On a real (pseudo-)terminal the image is drawn with term-image's coloured blocks; piped, it is left out."""
    out = on_pty(["show", "1", "--image", "--journal", str(jpath)], rows=24, cols=80)
    assert b"#1 first" in out and b"\x1b[48;2;200;30;30m" in out  # the image's red, as 24-bit block colour


def test_show_image_on_a_terminal_that_says_it_has_no_size_says_so(jpath):
    """A 0×0 terminal (what some serial consoles and odd multiplexers report) was an internal error."""
    from tests.helpers import pty_run

    code, out = pty_run([str(Path(sys.executable).parent / "promptism"), "show", "1", "--image", "--journal", str(jpath)],
                        rows=0, cols=0, term="xterm-256color")
    assert code == 0 and b"#1 first" in out and b"(cannot draw " in out and b"internal error" not in out, out[-500:]


def test_no_command_without_a_terminal_prints_help_instead_of_opening_the_tui():
    exe = str(Path(sys.executable).parent / "promptism")
    result = subprocess.run([exe], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0 and "Usage: promptism" in result.stdout and "promptism tui" in result.stdout


def test_journal_option_before_the_command(jpath, capsys):
    code, out, err = run_cli(capsys, "--journal", str(jpath), "log")
    assert code == 0 and out.count("\n") == 2, err  # a header and #1
    code, out, err = run_cli(capsys, "--journal", "/nonexistent/elsewhere", "log", "--journal", str(jpath))
    assert code == 0, err  # the command's own option wins


def test_log_keyword_finds_imported_experiments_by_prompt_part(tmp_path, capsys):
    j = str(tmp_path / "j")
    source = make_png(tmp_path / "a.png", text={"parameters": "a lighthouse at dusk, trending on artstation\nSteps: 4, Sampler: Euler, Seed: 9, CFG scale: 5"})
    assert run_cli(capsys, "import", str(source), "--title", "Coast", "--model", "m", "--journal", j)[0] == 0
    code, out, _ = run_cli(capsys, "log", "--keyword", "Trending on ArtStation", "--journal", j)
    assert code == 0 and "Coast" in out
    code, out, _ = run_cli(capsys, "log", "--keyword", "trending", "--journal", j)
    assert "no experiments match" in out  # a whole part, not a substring


def test_show_reveal_prompt_shows_each_images_own_prompt(tmp_path, capsys):
    journal = Journal.init(tmp_path / "j")
    new = new_experiment(tmp_path, "Study", n_images=2, prompt="a circle", keywords=["red", "glowing"])
    prompts = ["a circle, red", "a circle, glowing"]
    journal.accept(dataclasses.replace(new, images=[dataclasses.replace(i, prompt=p) for i, p in zip(new.images, prompts)]))
    code, out, _ = run_cli(capsys, "show", "1", "--reveal-prompt", "--journal", str(journal.path))
    assert code == 0 and out.index("seed 1") < out.index("a circle, red") < out.index("seed 2") < out.index("a circle, glowing")
    code, out, _ = run_cli(capsys, "show", "1", "--journal", str(journal.path))
    assert "a circle" not in out


def test_retitle_of_a_published_experiment_points_at_its_gallery_and_unpublish_says_what_it_did(jpath, tmp_path, capsys):
    j = str(jpath)
    assert run_cli(capsys, "publish", "1", "--out", str(tmp_path / "site"), "--journal", j)[0] == 0
    code, out, _ = run_cli(capsys, "retitle", "1", "Renamed", "--journal", j)
    assert code == 0 and f"promptism publish --out {tmp_path / 'site'}" in out
    assert run_cli(capsys, "unpublish", "1", "--journal", j)[1] == "unpublished #1\n"
    assert run_cli(capsys, "unpublish", "1", "--journal", j)[1] == "#1 was not published\n"


def test_model_names_are_bounded(jpath, tmp_path, capsys):
    code, _, err = run_cli(capsys, "import", str(make_png(tmp_path / "x.png")), "-t", "x", "-m", "m" * 1000, "--journal", str(jpath))
    assert code == 1 and "keep it under 300" in err
