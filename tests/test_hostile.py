"""Input that can hurt, from a user or from a file: decompression bombs, terminal escapes, text that reorders itself.
Everything is refused in one line or shown through the one escaping path — on the terminal, in git and in the gallery."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from journal import Journal
from journal.images import open_image
from journal.limits import DEFAULT_MAX_PIXELS, set_pixel_limit
from journal.text import visible
from tests.helpers import declared_png, git, make_png, new_experiment, run_cli

ESCAPES = "\x1b]52;c;aGFjaw==\x07\x1b[2J\x9b31m"  # an OSC 52 clipboard write, a screen clear, a C1 CSI


@pytest.fixture
def journal(jdir):
    return Journal.init(jdir)


@pytest.mark.parametrize("size", [(20000, 20000), (9000, 8000)])  # far past Pillow's own limit, and in its warn-only band
def test_a_decompression_bomb_is_refused_in_one_line_before_it_is_decoded(journal, tmp_path, capsys, size):
    bomb = declared_png(tmp_path / "bomb.png", *size)
    code, out, err = run_cli(capsys, "import", str(bomb), "--title", "bomb", "--model", "m", "--journal", str(journal.path))
    assert code == 1 and err.count("\n") == 1, err
    assert f"declares {size[0]}×{size[1]} pixels, over the limit of 64 megapixels" in err and "max_image_pixels" in err
    assert len(Journal.open(journal.path)) == 0 and git(journal.path, "rev-list", "--count", "HEAD").strip() == "1"


def test_the_pixel_limit_is_a_setting(journal, tmp_path, capsys, isolated_env):
    Path(isolated_env / "config.toml").write_text("max_image_pixels = 1000\n", encoding="utf-8")
    image = make_png(tmp_path / "big.png", size=(40, 40))  # 1,600 pixels
    try:
        code, _, err = run_cli(capsys, "import", str(image), "--title", "t", "--model", "m", "--journal", str(journal.path))
        assert code == 1 and "declares 40×40 pixels" in err
        set_pixel_limit(DEFAULT_MAX_PIXELS)
        assert open_image(image).size == (40, 40)
    finally:
        set_pixel_limit(DEFAULT_MAX_PIXELS)


def test_a_model_name_with_terminal_escapes_from_metadata_is_refused(journal, tmp_path, capsys):
    source = make_png(tmp_path / "x.png", text={"parameters": f"a cat\nSteps: 4, Sampler: Euler, Seed: 9, Model: sd{ESCAPES}"})
    code, out, err = run_cli(capsys, "import", str(source), "--title", "Cat", "--journal", str(journal.path))
    assert code == 1 and "control or invisible characters" in err and "--model" in err
    assert "\x1b" not in out + err and "\x07" not in out + err and "\x9b" not in out + err
    code, out, err = run_cli(capsys, "import", str(source), "--title", "Cat", "--model", f"m{ESCAPES}", "--journal", str(journal.path))
    assert code == 1 and "\x1b" not in err
    code, out, err = run_cli(capsys, "import", str(source), "--title", "Cat", "--model", "sd-1.5", "--journal", str(journal.path))
    assert code == 0 and out.startswith("#1 Cat — 1 image(s) by sd-1.5"), err


def test_error_messages_show_paths_through_the_escaping_path(journal, tmp_path, capsys):
    code, _, err = run_cli(capsys, "import", str(tmp_path / f"no{ESCAPES}such.png"), "--title", "t", "--model", "m",
                           "--journal", str(journal.path))
    assert code == 1 and "\x1b" not in err and "␛]52;c;" in err and "\x9b" not in err and "\x07" not in err
    code, _, err = run_cli(capsys, "log", "--journal", str(tmp_path / f"j{ESCAPES}"))
    assert code == 1 and "\x1b" not in err and "␛[2J" in err


@pytest.mark.parametrize("title", ["rtl \u202egnp.exe", "zero\u200bwidth", "isolate \u2066x\u2069"])
def test_titles_that_display_as_something_else_are_refused(journal, tmp_path, capsys, title):
    code, _, err = run_cli(capsys, "import", str(make_png(tmp_path / "a.png")), "--title", title, "--model", "m",
                           "--journal", str(journal.path))
    assert code == 1 and "invisible or text-reversing character" in err and "\u202e" not in err


def test_a_stored_reversing_title_is_shown_visibly_everywhere(journal, tmp_path, capsys):
    """A title from before the rule (or written by hand) still loads, and shows its override as ⟨U+202E⟩."""
    journal.accept(new_experiment(tmp_path, "plain"))
    doc_file = journal.path / journal.get(1).dir / "experiment.json"
    doc = json.loads(doc_file.read_text())
    doc["title"] = "rtl \u202egnp.exe"
    doc_file.write_text(json.dumps(doc))
    git(journal.path, "commit", "-qam", "hand edit")
    (journal.path / "journal.json").unlink()
    j = str(journal.path)
    for args in (["log"], ["show", "1"], ["log", "--json"], ["show", "1", "--json"]):
        code, out, err = run_cli(capsys, *args, "--journal", j)
        assert code == 0 and "\u202e" not in out, (args, out, err)
    assert "rtl ⟨U+202E⟩gnp.exe" in run_cli(capsys, "show", "1", "--journal", j)[1]
    assert "rtl \\u202egnp.exe" in run_cli(capsys, "show", "1", "--json", "--journal", j)[1]  # JSON keeps the value exact
    Journal.open(j).publish([1], tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert "\u202e" not in page and "rtl ⟨U+202E⟩gnp.exe" in page


def test_visible_keeps_emoji_joiners_and_shows_what_hides():
    assert visible("👩\u200d🚀 study 🔅") == "👩\u200d🚀 study 🔅"
    assert visible("a\u200bb\u202ec\x1b\x9bd") == "a⟨U+200B⟩b⟨U+202E⟩c␛⟨U+009B⟩d"


def test_names_in_messages_go_through_the_one_escaping_path(journal, capsys):
    for args, shown in ((["generate", "x", "--model", "sd\x1b[2J"], "unknown model 'sd␛[2J'"),
                        (["runs", "abc\x1b[2J"], "no run 'abc␛[2J'")):
        code, _, err = run_cli(capsys, *args, "--journal", str(journal.path))
        assert code == 1 and shown in err and "\\x1b" not in err, err


def test_a_killed_writes_private_git_index_lock_does_not_block_later_writes(journal, tmp_path, capsys):
    lock = journal.path / ".promptism" / "commit-index.lock"
    lock.write_text("")
    code, out, _ = run_cli(capsys, "doctor", "--check", "--journal", str(journal.path))
    assert code == 1 and "commit-index.lock was left by a write that was cut short" in out
    code, out, err = run_cli(capsys, "import", str(make_png(tmp_path / "a.png")), "--title", "After", "--model", "m",
                             "--journal", str(journal.path))
    assert code == 0 and out.startswith("#1 After"), err
    assert not lock.exists()


def test_a_text_chunk_bomb_is_named_as_such(journal, tmp_path, capsys):
    image = make_png(tmp_path / "z.png")
    data = image.read_bytes()
    ztxt = b"Comment\0\0" + zlib.compress(b"\0" * 4_000_000)  # inflates past what Pillow reads
    chunk = struct.pack(">I", len(ztxt)) + b"zTXt" + ztxt + struct.pack(">I", zlib.crc32(b"zTXt" + ztxt))
    image.write_bytes(data[:33] + chunk + data[33:])  # after IHDR
    code, _, err = run_cli(capsys, "import", str(image), "--title", "t", "--model", "m", "--journal", str(journal.path))
    assert code == 1 and "metadata chunk too large" in err, err
