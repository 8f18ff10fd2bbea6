"""The journal against outside interference: foreign staged changes, tampered or fake documents, a corrupt index,
a journal it may read but not write — each write commits only its own paths, and doctor names and repairs the rest."""

from __future__ import annotations

import json
import os

import pytest

from journal import Journal
from tests.helpers import assert_consistent, git, make_png, new_experiment, python, run_cli


@pytest.fixture
def three(journal, tmp_path) -> Journal:
    for title in ("one", "two", "three"):
        journal.accept(new_experiment(tmp_path, title, prompt="a quiet harbour"))
    return journal


def test_a_write_commits_only_its_own_paths_whatever_else_is_staged(three, tmp_path, capsys):
    j = three.path
    doc = j / three.get(1).dir / "experiment.json"
    tampered = json.loads(doc.read_text())
    tampered["title"] = "tampered"
    doc.write_text(json.dumps(tampered))
    fake = j / "experiments" / "0009-fake" / "experiment.json"
    fake.parent.mkdir()
    fake.write_text("{}")
    git(j, "add", "experiments")
    exp = three.accept(new_experiment(tmp_path, "four", prompt="a quiet harbour"))
    changed = git(j, "show", "--name-only", "--format=", "HEAD").split()
    assert changed == [f"{exp.dir}/{f}" for f in ("01-s1.png", "experiment.json")]
    assert json.loads(git(j, "show", f"HEAD:{three.get(1).dir}/experiment.json"))["title"] == "one"
    staged = git(j, "diff", "--cached", "--name-only").split()
    assert staged == [f"{three.get(1).dir}/experiment.json", "experiments/0009-fake/experiment.json"]  # still the user's

    code, out, err = run_cli(capsys, "doctor", "--check", "--journal", str(j))
    assert code == 1 and "experiments/0009-fake/experiment.json is not part of any committed experiment" in out
    assert f"{three.get(1).dir}/experiment.json differs from the committed version" in out
    code, out, err = run_cli(capsys, "doctor", "--journal", str(j))
    assert code == 0, out + err
    assert "moved to .promptism/orphans/" in out and "restored from git" in out
    kept = list((j / ".promptism" / "orphans").rglob("0009-fake/experiment.json"))
    assert len(kept) == 1 and kept[0].read_text() == "{}"  # nothing is lost
    assert three.get(1).title == "one"
    assert_consistent(j)


def test_doctor_restores_a_committed_bad_document_from_history_and_removes_a_committed_fake(three, capsys):
    j = three.path
    doc = j / three.get(2).dir / "experiment.json"
    doc.write_text('{"title": "no number"}')
    fake = j / "experiments" / "0009-fake" / "experiment.json"
    fake.parent.mkdir()
    fake.write_text("{}")
    git(j, "add", "experiments")
    git(j, "commit", "-q", "-m", "someone else's commit")
    (j / "journal.json").unlink()  # so that every command has to rebuild from the tree
    code, _, err = run_cli(capsys, "log", "--journal", str(j))
    assert code == 1 and err.count("\n") == 1 and "0002-two/experiment.json is not a valid experiment document" in err
    assert "run `promptism doctor`" in err
    code, out, err = run_cli(capsys, "doctor", "--journal", str(j))
    assert code == 0, out + err
    assert "0002-two/experiment.json was not a valid experiment document; restored the version of commit" in out
    assert "experiments/0009-fake never held a valid experiment document; moved to .promptism/orphans/" in out
    assert three.get(2).title == "two" and not (j / "experiments" / "0009-fake").exists()
    assert git(j, "log", "-2", "--format=%s").split("\n")[:2] == ["Remove experiments/0009-fake", "#2 repaired"]
    assert_consistent(j)


@pytest.mark.parametrize("content", [b"", b"garbage{", b"null", b"[]", b'{"experiments": []}', b'{"experiments": {"1": "x"}}',
                                     b'{"experiments": {"7": {"number": 1}}}'])
def test_an_unreadable_index_is_set_aside_and_rebuilt_by_any_command(three, capsys, content):
    j = three.path
    (j / "journal.json").write_bytes(content)
    code, out, err = run_cli(capsys, "log", "--journal", str(j))
    assert code == 0 and err == "" and out.count("\n") == 4, out + err  # a header and the three experiments
    kept = list((j / ".promptism" / "orphans").rglob("journal.json"))
    assert [k.read_bytes() for k in kept] == [content]
    assert_consistent(j)


@pytest.mark.parametrize("content", [b"", b"null", b'{"experiments": {"1": "x"}}'])
def test_doctor_reports_and_rebuilds_an_unreadable_index(three, capsys, content):
    j = three.path
    (j / "journal.json").write_bytes(content)
    code, out, _ = run_cli(capsys, "doctor", "--check", "--journal", str(j))
    assert code == 1 and "journal.json is unreadable" in out and "doctor without --check rebuilds it" in out
    code, out, err = run_cli(capsys, "doctor", "--journal", str(j))
    assert code == 0 and "journal.json was unreadable" in out and "healthy (3 experiments)" in out, out + err
    assert_consistent(j)


def test_a_deleted_image_is_called_missing_and_restored(three, capsys):
    j = three.path
    image = j / three.get(3).dir / "01-s1.png"
    image.unlink()
    code, out, _ = run_cli(capsys, "doctor", "--check", "--journal", str(j))
    assert code == 1 and f"{three.get(3).dir}/01-s1.png is missing" in out and "differs" not in out
    code, out, _ = run_cli(capsys, "doctor", "--journal", str(j))
    assert code == 0 and "is missing; restored from git" in out and image.exists()


FULL_DISK = """
import resource, signal, sys
from workshop.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk (ENOSPC)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.exit(main(sys.argv[2:]))
"""


def promptism_with_full_disk(limit: int, *args: str):
    return python(FULL_DISK, str(limit), *args)


def test_a_write_that_runs_out_of_disk_is_one_line_and_readers_still_read(three, tmp_path):
    j = str(three.path)
    big = make_png(tmp_path / "big.png", size=(256, 256), noise=True)
    failed = promptism_with_full_disk(4096, "import", str(big), "--title", "four", "--model", "m", "--journal", j)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert "File too large" in failed.stderr and "internal error" not in failed.stderr
    assert (three.path / ".promptism" / "intent.json").exists()  # the write was cut short
    reader = promptism_with_full_disk(4096, "log", "--journal", j)  # still no space: recovery cannot run, reading can
    assert reader.returncode == 0 and "three" in reader.stdout and "four" not in reader.stdout, reader.stderr
    journal = assert_consistent(three.path)  # space again: the next open rolls the cut-short write back
    assert len(journal) == 3


def test_retitle_renames_the_folder_in_its_commit(three, tmp_path):
    j = three.path
    before = three.get(1).dir
    exp = three.retitle(1, "Coastal study")
    assert exp.dir == "experiments/0001-coastal-study" and exp.slug == "coastal-study"
    assert (j / exp.dir / "experiment.json").exists() and not (j / before).exists()
    assert git(j, "show", "--name-status", "--format=%s", "HEAD").split("\n")[0] == "#1 Coastal study"
    assert git(j, "tag", "--points-at", "exp/0001") == git(j, "tag", "--points-at", git(j, "rev-list", "-1", "exp/0001").strip())
    assert "0001-coastal-study" in Journal.open(j).get(1).dir
    assert_consistent(j)


def test_init_in_an_impossible_place_is_one_line(capsys):
    code, _, err = run_cli(capsys, "init", "/proc/nonexistent/x")
    assert code == 1 and err.count("\n") == 1 and "cannot create a journal at /proc/nonexistent/x" in err, err


def test_another_users_journal_reads_and_refuses_writes_in_one_line(three, tmp_path, capsys):
    """As root (CI): the journal given to another user, so git's ownership check refuses it. As anyone else: a
    journal whose scratch area they may not write. Either way reading works and a write is one clear line."""
    j = three.path
    if os.geteuid() == 0:
        for path in [j, *j.rglob("*")]:
            os.chown(path, 65534, 65534, follow_symlinks=False)
        expected = "git refuses to work in"
    else:
        os.chmod(j / ".promptism", 0o555)
        (j / ".promptism" / "lock").unlink(missing_ok=True)
        expected = "is not writable by you"
    code, out, err = run_cli(capsys, "log", "--journal", str(j))
    assert code == 0 and "three" in out, err
    for args in (["retitle", "1", "Coastal study"], ["import", str(make_png(tmp_path / "x.png")), "--title", "x", "--model", "m"]):
        code, _, err = run_cli(capsys, *args, "--journal", str(j))
        assert code == 1 and err.count("\n") == 1 and expected in err, err
    os.chmod(j / ".promptism", 0o755)
    assert sorted((j / "experiments").iterdir()) == [j / e.dir for e in reversed(three.list())]  # nothing written


@pytest.mark.parametrize("content", [b"{}", b'{"_default": {}}', b'{"experiments": {"1": {"number": 1}}}'])
def test_an_index_of_the_wrong_shape_is_rebuilt_not_read_as_empty(three, capsys, content):
    (three.path / "journal.json").write_bytes(content)
    code, out, err = run_cli(capsys, "show", "2", "--journal", str(three.path))
    assert code == 0 and "#2 two" in out, err
    assert_consistent(three.path)


def test_a_write_refuses_to_overwrite_an_uncommitted_edit_of_its_folder(three, tmp_path, capsys):
    doc = three.path / three.get(1).dir / "experiment.json"
    edited = doc.read_text().replace('"one"', '"edited by hand"')
    doc.write_text(edited)
    for args in (["publish", "1", "--out", str(tmp_path / "site")], ["retitle", "1", "Harbour"]):
        code, _, err = run_cli(capsys, *args, "--journal", str(three.path))
        assert code == 1 and "has changes git does not have; run `promptism doctor` first" in err, err
        assert doc.read_text() == edited  # nothing lost
    code, out, _ = run_cli(capsys, "doctor", "--journal", str(three.path))
    kept = list((three.path / ".promptism" / "orphans").rglob("experiment.json"))
    assert code == 0 and [k.read_text() for k in kept] == [edited]
    assert run_cli(capsys, "retitle", "1", "Harbour", "--journal", str(three.path))[0] == 0


def test_doctor_check_on_another_users_journal_is_one_line(three, capsys):
    if os.geteuid() != 0:
        os.chmod(three.path / ".git", 0o000)  # git cannot read it: the same path through a different refusal
    else:
        for path in [three.path, *three.path.rglob("*")]:
            os.chown(path, 65534, 65534, follow_symlinks=False)
    try:
        code, _, err = run_cli(capsys, "doctor", "--check", "--journal", str(three.path))
    finally:
        os.chmod(three.path / ".git", 0o755)
    assert code == 1 and err.count("\n") == 1 and "internal error" not in err and "git" in err, err


def test_git_running_out_of_disk_says_so_and_what_to_do(three):
    import git as gitpython

    from journal.gitrepo import GitRepo

    failure = gitpython.GitCommandError(["git", "write-tree"], 128, stderr="fatal: unable to write loose object file: No space left on device")
    message = str(GitRepo(three.path)._error("write-tree", failure))
    assert "the disk is full; free some space and try again" in message and "nothing is lost" in message


def test_a_missing_image_at_publish_names_the_fix(three, tmp_path, capsys):
    (three.path / three.get(2).dir / "01-s1.png").unlink()
    code, _, err = run_cli(capsys, "publish", "2", "--out", str(tmp_path / "site"), "--journal", str(three.path))
    assert code == 1 and "01-s1.png is missing" in err and "promptism doctor" in err
    code, out, _ = run_cli(capsys, "doctor", "--check", "--journal", str(three.path))
    assert out.count("01-s1.png is missing") == 1  # once, not again as "not in git history"


def test_doctor_check_says_a_cut_short_write_once(three):
    killed = python("import sys\nfrom journal import Journal\nJournal.open(sys.argv[1]).retitle(1, 'Moved title')",
                    str(three.path), env={"PROMPTISM_FAILPOINT": "ref-moved"})
    assert killed.returncode == -9
    findings = Journal.open(three.path, recover=False).doctor(repair=False)
    assert len(findings) == 1 and "a write was cut short" in findings[0].problem, findings
    assert_consistent(three.path)  # opening it finished the write


def test_an_emptied_index_is_rebuilt_when_experiments_exist(three, capsys):
    (three.path / "journal.json").write_bytes(b'{"experiments": {}}')
    code, out, _ = run_cli(capsys, "log", "--journal", str(three.path))
    assert code == 0 and "three" in out
