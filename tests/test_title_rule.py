"""The title rule against evasion: a title may not hold the prompt, a keyword, a part of an imported prompt, a grid's
base prompt, an S/R value or a dynamic choice — however it is spaced, hyphenated, accented or padded with invisible
characters — and may not display as something else or as nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from journal import Journal
from journal.privacy import title_reveals
from tests.helpers import git, make_png, run_cli

PROMPT = "lonely lighthouse"


@pytest.fixture
def j(tmp_path) -> str:
    return str(tmp_path / "j")


@pytest.mark.parametrize("title", ["a lonely light\u200dhouse", "Lonely\u200clighthouse", "LonelyLighthouse", "a  lonely lighthouse", "A-Lonely-Lighthouse",
                                   "a_lonely_lighthouse", "a lonely lìghthouse", "a lonely lighthouse\u0301", "A LONELY LIGHTHOUSE!"])
def test_a_disguised_prompt_is_still_refused(j, tmp_path, capsys, title):
    image = make_png(tmp_path / "a.png")
    code, _, err = run_cli(capsys, "import", str(image), "--title", title, "--prompt", PROMPT, "--model", "m", "--journal", j)
    assert code == 1 and ("contains its private prompt" in err or "invisible" in err), err  # a joiner hides a word break
    assert not Path(j, "experiments").exists() or not list(Path(j, "experiments").iterdir())
    assert title_reveals(title, [PROMPT])  # and the rule itself sees through it


@pytest.mark.parametrize("title", ["Lonely lighthouse", "Best Quality study", "lowres", "Dramatic lighting"])
def test_each_part_of_an_imported_prompt_counts(j, tmp_path, capsys, title):
    infotext = ("masterpiece, best quality, lonely lighthouse, (dramatic lighting:1.2)\nNegative prompt: lowres, bad anatomy\n"
                "Steps: 20, Sampler: Euler, Seed: 1, CFG scale: 7")
    image = make_png(tmp_path / "a.png", text={"parameters": infotext})
    code, _, err = run_cli(capsys, "import", str(image), "--title", title, "--model", "m", "--journal", j)
    assert code == 1 and "contains its private prompt" in err, err


def test_short_and_partial_words_do_not_count(j, tmp_path, capsys):
    image = make_png(tmp_path / "a.png")
    for n, title in enumerate(["Redemption", "A study in light", "Lighthouses"], 1):
        code, out, err = run_cli(capsys, "import", str(image), "--title", title, "--prompt", "red, a, lighthouse at dusk",
                                 "--model", "m", "--journal", j)
        assert code == 0 and out.startswith(f"#{n} "), (title, err)


@pytest.mark.parametrize("args, title", [
    (["-p", "base thing", "-k", "zanzibarquux", "--mode", "leave-one-out"], "Base thing"),
    (["-p", "portrait, {Basquiat|Signorelli}", "--mode", "dynamic"], "Signorelli study"),
    (["-p", "a red widget", "--x", "sr=red,cobalt"], "Cobalt"),
])
def test_a_grids_base_prompt_choices_and_replacements_count_before_the_run(j, capsys, args, title):
    code, _, err = run_cli(capsys, "grid", *args, "--model", "tiny", "--accept", "--title", title, "--journal", j)
    assert code == 1 and "--allow-title-overlap" in err, err
    assert not Path(j).exists()


def test_a_runs_terms_are_kept_private_and_checked_at_accept_and_retitle(j, capsys):
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "grid", "-p", "a red widget", "--x", "sr=red,cobalt", "--steps", "1", "--journal", j)
    assert code == 0, err
    run_id = json.loads(run_cli(capsys, "runs", "--json", "--journal", j)[1])[0]["id"]
    code, _, err = run_cli(capsys, "accept", run_id, "--title", "Cobalt study", "--journal", j)
    assert code == 1 and "contains its private prompt" in err
    code, _, err = run_cli(capsys, "accept", run_id, "--title", "Widgets", "--journal", j)
    assert code == 0, err
    exp = Journal.open(j).get(1)
    assert "cobalt" in exp.terms and "terms" not in exp.public_doc()
    code, _, err = run_cli(capsys, "retitle", "1", "Cobalt", "--journal", j)
    assert code == 1 and "contains its private prompt" in err
    assert "cobalt" not in run_cli(capsys, "show", "1", "--json", "--journal", j)[1]
    assert "cobalt" not in git(Path(j), "log", "--format=%B").lower()


@pytest.mark.parametrize("title", ["\u3164", "\u115f\u1160", "\u2800", "\u200d", "ab\u034f\u034fcd", "x\ufe0f\ufe0f\ufe0fy",
                                   "Nice" + "".join(chr(0xE0000 + ord(c)) for c in "a secret")])
def test_titles_that_show_nothing_or_hide_text_are_refused(j, tmp_path, capsys, title):
    code, _, err = run_cli(capsys, "import", str(make_png(tmp_path / "a.png")), "--title", title, "--model", "m", "--journal", j)
    assert code == 1 and err.count("\n") == 1 and ("shows nothing" in err or "invisible" in err), err


@pytest.mark.parametrize("title", ["❤️ love", "🇫🇷 Paris", "👩\u200d🚀 study", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f Glen"])
def test_emoji_sequences_are_welcome(j, tmp_path, capsys, title):
    code, out, err = run_cli(capsys, "import", str(make_png(tmp_path / "a.png")), "--title", title, "--model", "m", "--journal", j)
    assert code == 0 and title in out, err
