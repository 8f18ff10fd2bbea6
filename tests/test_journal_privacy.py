"""Privacy at rest: the journal's git history holds every prompt, so its repository is the owner's alone — made so by
`init`, checked and fixed by `doctor` for a journal made before — and `doctor --gc` prunes the objects no commit
reaches (a rolled-back write's, which may hold a prompt)."""

import os
import stat
from pathlib import Path

from journal import Journal
from tests.helpers import git, new_experiment, run_cli

SECRET = "SECRET-LIGHTHOUSE-PROMPT"


def readable_by_others(git_dir: Path) -> list[Path]:
    return [p for p in (git_dir, *git_dir.rglob("*")) if not p.is_symlink() and p.stat().st_mode & 0o077]


def test_a_new_journals_history_is_readable_by_its_owner_alone(tmp_path):
    journal = Journal.init(tmp_path / "j")
    journal.accept(new_experiment(tmp_path, "first", prompt=SECRET))
    git_dir = tmp_path / "j" / ".git"
    assert git(tmp_path / "j", "config", "core.sharedRepository").strip() == "0600"
    assert readable_by_others(git_dir) == []
    assert any(p.is_file() for p in (git_dir / "objects").rglob("*"))  # (there is something to protect)


def test_doctor_finds_and_fixes_a_history_others_can_read(tmp_path, capsys):
    j = tmp_path / "j"
    Journal.init(j).accept(new_experiment(tmp_path, "first", prompt=SECRET))
    git(j, "config", "--unset", "core.sharedRepository")  # what a journal made before this looks like
    for path in (j / ".git", *(j / ".git").rglob("*")):
        path.chmod(path.stat().st_mode | (0o055 if path.is_dir() else 0o044))
    code, out, err = run_cli(capsys, "doctor", "--check", "--journal", str(j))
    assert code == 1 and "PROBLEM" in out and "other users can read" in out, out + err
    assert readable_by_others(j / ".git")  # --check changes nothing
    code, out, err = run_cli(capsys, "doctor", "--journal", str(j))
    assert code == 0 and "repaired" in out and "other users can read" in out, out + err
    assert readable_by_others(j / ".git") == [] and git(j, "config", "core.sharedRepository").strip() == "0600"
    Journal.open(j).accept(new_experiment(tmp_path, "second", prompt=SECRET))  # and it stays so
    assert readable_by_others(j / ".git") == []
    code, out, err = run_cli(capsys, "doctor", "--journal", str(j))
    assert code == 0 and "other users" not in out, out


def test_doctor_gc_prunes_objects_no_commit_reaches(tmp_path, capsys):
    j = tmp_path / "j"
    Journal.init(j).accept(new_experiment(tmp_path, "first", prompt="a kept prompt"))
    loose = tmp_path / "rolled-back.json"
    loose.write_text(f'{{"prompt": "{SECRET}"}}', encoding="utf-8")
    sha = git(j, "hash-object", "-w", str(loose)).strip()  # what a write cut short and rolled back leaves
    assert SECRET in git(j, "cat-file", "-p", sha)
    code, out, err = run_cli(capsys, "doctor", "--gc", "--journal", str(j))
    assert code == 0 and "pruned 1 object(s) no commit reaches" in out, out + err
    assert os.system(f"git -C {j} cat-file -e {sha} 2>/dev/null") != 0
    assert Journal.open(j).get(1).prompt == "a kept prompt"  # what commits reach stays
    code, out, err = run_cli(capsys, "doctor", "--gc", "--journal", str(j))
    assert code == 0 and "pruned" not in out, out


def test_gc_goes_with_repairs_not_with_check(tmp_path, capsys):
    Journal.init(tmp_path / "j")
    code, out, err = run_cli(capsys, "doctor", "--check", "--gc", "--journal", str(tmp_path / "j"))
    assert code == 2 and err.count("\n") == 1 and "--gc" in err and "--check" in err, err
    assert stat.S_ISDIR((tmp_path / "j" / ".git").stat().st_mode)
