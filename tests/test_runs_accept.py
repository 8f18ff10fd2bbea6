"""Runs after the fact: what `runs` shows without --reveal-prompt, and which experiments a run became — as the journal
records it, whatever happened to the process that accepted it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import assert_consistent, python, run_cli
from workshop.runner.runs import list_runs

KEYWORDS = ["trending on artstation", "zanzibar glaze"]


@pytest.fixture(autouse=True)
def tiny_by_default():
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")


@pytest.fixture
def scored_run(tmp_path, capsys) -> tuple[str, str]:
    j = str(tmp_path / "j")
    args = ["grid", "-p", "a quiet harbour", *(a for k in KEYWORDS for a in ("-k", k)), "--mode", "leave-one-out",
            "--seeds", "1-2", "--steps", "2", "--clip", "tiny-clip", "--journal", j]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    return j, list_runs(Journal.open(j))[0].id


def test_runs_hide_keyword_effects_unless_revealed(scored_run, capsys):
    j, run_id = scored_run
    for args in (["runs", "--json"], ["runs", run_id, "--json"], ["runs", run_id], ["runs"]):
        code, out, err = run_cli(capsys, *args, "--journal", j)
        assert code == 0, err
        for secret in (*KEYWORDS, "quiet harbour"):
            assert secret not in out + err, (args, secret)
    data = json.loads(run_cli(capsys, "runs", run_id, "--json", "--journal", j)[1])[0]
    assert sorted(e["keyword_index"] for e in data["effects"]) == [1, 2]
    assert all("truncated_keywords" not in c and "labels" not in c for c in data["cells"])
    assert "keyword 1 " in run_cli(capsys, "runs", run_id, "--journal", j)[1]
    revealed = run_cli(capsys, "runs", run_id, "--reveal-prompt", "--journal", j)[1]
    assert "trending on artstation " in revealed
    data = json.loads(run_cli(capsys, "runs", run_id, "--json", "--reveal-prompt", "--journal", j)[1])[0]
    assert {e["keyword"] for e in data["effects"]} == set(KEYWORDS)


ACCEPT = """
import sys
from journal import Journal
from workshop.runner.runs import accept_run, load_run
journal = Journal.open(sys.argv[1])
accept_run(journal, load_run(journal, sys.argv[2]), "Harbour study")
"""


def test_an_accept_completed_by_recovery_is_on_the_run_and_a_second_accept_needs_again(scored_run, capsys):
    j, run_id = scored_run
    killed = python(ACCEPT, j, run_id, env={"PROMPTISM_FAILPOINT": "committed"})
    assert killed.returncode == -signal.SIGKILL
    assert_consistent(Path(j))  # recovery completed the accept: it was committed
    data = json.loads(run_cli(capsys, "runs", "--json", "--journal", j)[1])
    assert data[0]["accepted"] == [1]
    assert "#1" in run_cli(capsys, "runs", "--journal", j)[1]
    code, _, err = run_cli(capsys, "accept", run_id, "--title", "Harbour again", "--journal", j)
    assert code == 1 and err.count("\n") == 1 and "already accepted as #1" in err and "--again" in err
    assert len(Journal.open(j)) == 1
    code, out, err = run_cli(capsys, "accept", run_id, "--title", "Harbour again", "--again", "--journal", j)
    assert code == 0 and out.startswith("#2 "), err
    assert json.loads(run_cli(capsys, "runs", "--json", "--journal", j)[1])[0]["accepted"] == [1, 2]


def test_a_title_holding_a_keyword_is_refused_at_accept(scored_run, capsys):
    j, run_id = scored_run
    code, _, err = run_cli(capsys, "accept", run_id, "--title", "Zanzibar Glaze study", "--journal", j)
    assert code == 1 and "contains its private prompt or one of its keywords" in err and "--allow-title-overlap" in err
    assert "zanzibar" not in err.lower()  # the refusal never repeats the secret … nor the title that holds it
    code, _, err = run_cli(capsys, "accept", run_id, "--title", "Zanzibar Glaze study", "--allow-title-overlap", "--journal", j)
    assert code == 0, err


def test_generate_accept_refuses_a_revealing_title_before_the_run(tmp_path, capsys):
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, "generate", "a quiet harbour", "--accept", "--title", "A Quiet Harbour, study", "--journal", str(j))
    assert code == 1 and "--allow-title-overlap" in err and err.count("\n") == 1
    assert not j.exists()  # refused before anything was made or written
    code, _, err = run_cli(capsys, "generate", "a quiet harbour", "--model", "nope/not-here", "--journal", str(j))
    assert code == 1 and not j.exists()


def test_grid_names_keywords_in_its_effects_only_when_revealed(tmp_path, capsys):
    j = str(tmp_path / "j")
    args = ["grid", "-p", "a quiet harbour", *(a for k in KEYWORDS for a in ("-k", k)), "--mode", "leave-one-out",
            "--seeds", "1", "--steps", "1", "--clip", "tiny-clip", "--journal", j]
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "keyword 1 " in out and "(--reveal-prompt names them)" in out, err
    assert not any(k in out + err for k in KEYWORDS)
    code, out, err = run_cli(capsys, *args, "--reveal-prompt")
    assert code == 0 and "trending on artstation " in out


CLIP_OFFLINE = """
import os, sys
os.environ.pop("HF_HUB_OFFLINE", None)
from workshop.cli import main
sys.exit(main(["generate", "x", "--model", "tiny", "--steps", "1", "--clip", "ViT-B-32:openai", "--journal", sys.argv[1]]))
"""


def test_a_pretrained_clip_tag_stays_offline_unless_downloads_are_allowed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    result = subprocess.run([sys.executable, "-c", CLIP_OFFLINE, str(tmp_path / "j")], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "not in the local Hugging Face cache" in result.stderr and "--allow-download" in result.stderr
    assert not (tmp_path / "j").exists()


def test_old_manifests_list_unknown_fields_survive_and_invalid_ones_are_skipped(tmp_path, capsys):
    """A manifest from before the typed records (no device_type, keys promptism no longer knows) lists and keeps
    what it does not know when rewritten; one that is not a run record is skipped like an unreadable one."""
    j = tmp_path / "j"
    journal = Journal.init(j)
    runs = journal.scratch / "runs"
    old = {"id": "20240101-000000-abcd", "state": "cancelled", "pid": 1, "created_ns": 5, "future_field": {"kept": True},
           "model": {"id": "tiny", "kind": "builtin", "description": "d", "info": {"id": "tiny"}},
           "spec": {"mode": "plain", "prompt": "p", "keywords": []}, "params": {"steps": 2, "width": 64, "height": 64},
           "grid": {"rows": 1, "cols": 1, "subgrids": 1}, "compute": {"device": "CPU (x86_64, 2 threads)", "threads": 2},
           "cells": [{"index": 0, "prompt": "p", "negative": "", "seed": 1, "steps": 2, "guidance": 7.5, "extra": 1}]}
    for name, doc in (("old", old), ("bad", {**old, "id": "bad", "cells": "none"}), ("array", [1, 2])):
        (runs / name).mkdir(parents=True)
        (runs / name / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")
    listed = list_runs(Journal.open(j))
    assert [r.id for r in listed] == [old["id"]]
    run = listed[0]
    assert run.state == "cancelled" and run.record.compute.kind == "cpu" and run.record.cells[0].steps == 2
    run.finish("cancelled")
    doc = json.loads((run.folder / "manifest.json").read_text(encoding="utf-8"))
    assert doc["future_field"] == {"kept": True} and doc["cells"][0]["extra"] == 1 and doc["created_ns"] == 5
    code, out, err = run_cli(capsys, "runs", "--journal", str(j))
    assert code == 0 and old["id"] in out and "0/1" in out, err


def test_a_cell_picked_twice_is_refused_not_accepted_twice(scored_run, capsys):
    j, run_id = scored_run
    code, _, err = run_cli(capsys, "accept", run_id, "--title", "Harbour", "--pick", "0,0", "--journal", j)
    assert code == 2 and err.count("\n") == 1 and "'0,0' picks cell 0 twice" in err, err
    assert len(Journal.open(j)) == 0


def test_the_runs_table_says_what_each_run_sweeps_in_public_words(tmp_path, capsys):
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle", "-k", "glowingsecret", "--mode", "leave-one-out",
                           "--y", "steps=1,2", "--z", "weight:glowingsecret=0.5,1", "--seeds", "1", "--size", "32x32",
                           "--clip", "none", "--journal", j)
    assert code == 0, err
    code, out, err = run_cli(capsys, "runs", "--journal", j)
    assert code == 0 and "sweeps" in out.splitlines()[0] and "leave-one-out · steps × weight" in out, out
    assert "glowingsecret" not in out  # a weight axis's keyword is private


def test_two_runs_of_one_second_that_draw_the_same_id_both_get_a_folder(tmp_path, monkeypatch):
    """A service making small A1111 jobs starts several runs a second; a run id's random part repeating failed one
    with FileExistsError. The second draws again."""
    import workshop.runner.runs as runs
    from workshop.runner.records import RunRecord

    journal = Journal.init(tmp_path / "j")
    drawn = iter(["20261206-220156-d04e", "20261206-220156-d04e", "20261206-220156-0001"])
    monkeypatch.setattr(runs, "new_run_id", lambda: next(drawn))
    first = runs.Run.create(journal, RunRecord(id=""))
    second = runs.Run.create(journal, RunRecord(id=""))
    assert (first.id, second.id) == ("20261206-220156-d04e", "20261206-220156-0001")
    assert sorted(r.id for r in list_runs(journal)) == sorted([first.id, second.id])
