import json
import subprocess
import sys

from pathlib import Path

import pytest

from journal import Compute, ExperimentNotFound, InvalidInput, Journal, ModelInfo, NotAJournal
from journal.grid_record import GridRecord
from journal.journal import DB_FILE

from tests.helpers import REPO, git, imported_after, new_experiment

TITLES = ["𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 𝔳𝔦𝔰𝔦𝔬𝔫 🔅", "𝕭𝖆𝖘𝖖𝖚𝖎𝖆𝖙 𝕺𝖚𝖗𝖔𝖇𝖔𝖗𝖔𝖘", "[bold red]x[/]", "#hash start", "çà et là"]


def test_numbers_titles_commits_and_tags(journal, tmp_path):
    for title in TITLES:
        journal.accept(new_experiment(tmp_path, title, prompt="private words"))
    assert [e.number for e in journal.list(limit=None)] == [5, 4, 3, 2, 1]
    reopened = Journal.open(journal.path)
    assert [reopened.get(n).title for n in range(1, 6)] == TITLES
    subjects = git(journal.path, "log", "--format=%s").splitlines()
    assert subjects[:5] == [f"#{n} {t}" for n, t in reversed(list(enumerate(TITLES, 1)))]
    assert git(journal.path, "tag", "--list").split() == [f"exp/{n:04d}" for n in range(1, 6)]
    for n in range(1, 6):  # each tag names the commit that added that experiment, and exactly one commit did
        assert git(journal.path, "log", "-1", "--format=%s", f"exp/{n:04d}").strip() == f"#{n} {TITLES[n - 1]}"
    assert "private words" not in git(journal.path, "log", "--format=%B")
    body = git(journal.path, "log", "-1", "--format=%b", "exp/0001")
    assert "Model: test-model (StableDiffusionPipeline)" in body and "seeds 1" in body


def test_experiment_folder_holds_document_and_images(journal, tmp_path):
    exp = journal.accept(new_experiment(tmp_path, TITLES[0], n_images=3, prompt="p", keywords=["pixel art"],
                                        params={"steps": 4, "guidance": 7.5}, compute=Compute("cpu", 1.5, None)))
    folder = journal.folder(exp)
    assert folder.name == "0001-enchanted-vision"
    doc = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
    assert doc == exp.to_doc() and doc["prompt"] == "p" and doc["keywords"] == ["pixel art"]
    assert sorted(p.name for p in folder.iterdir()) == ["01-s1.png", "02-s2.png", "03-s3.png", "experiment.json"]
    assert git(journal.path, "status", "--porcelain") == ""


def test_get_missing_and_parent_checks(journal, tmp_path):
    with pytest.raises(ExperimentNotFound, match="empty"):
        journal.get(1)
    journal.accept(new_experiment(tmp_path, "one"))
    with pytest.raises(ExperimentNotFound, match="#1 to #1"):
        journal.get(7)
    with pytest.raises(ExperimentNotFound):
        journal.accept(new_experiment(tmp_path, "child", parent=5))
    child = journal.accept(new_experiment(tmp_path, "child", parent=1))
    assert child.parent == 1 and "Parent: #1" in git(journal.path, "log", "-1", "--format=%b")


def test_refuses_missing_model_and_bad_images_without_writing(journal, tmp_path):
    head = git(journal.path, "rev-parse", "HEAD")
    with pytest.raises(InvalidInput, match="model"):
        journal.accept(new_experiment(tmp_path, "t", model=ModelInfo(" ")))
    bad = tmp_path / "not.png"
    bad.write_text("hello")
    good = new_experiment(tmp_path, "t")
    with pytest.raises(InvalidInput, match="not an image"):
        journal.accept(good.__class__(**{**good.__dict__, "images": [*good.images, good.images[0].__class__(bad)]}))
    assert git(journal.path, "rev-parse", "HEAD") == head and len(journal) == 0
    assert not (journal.path / "experiments").exists()


def test_paging_and_search(journal, tmp_path):
    journal.accept(new_experiment(tmp_path, TITLES[0], keywords=["pixel art", "trending on artstation"]))
    journal.accept(new_experiment(tmp_path, TITLES[1], model=ModelInfo("stabilityai/sdxl"), keywords=["in the style of Basquiat"]))
    for i in range(3, 26):
        journal.accept(new_experiment(tmp_path, f"study {i}"))
    assert [e.number for e in journal.list(limit=3)] == [25, 24, 23]
    assert [e.number for e in journal.list(offset=20, limit=10)] == [5, 4, 3, 2, 1]
    assert [e.number for e in journal.search("enchanted")] == [1]
    assert [e.number for e in journal.search("BASQUIAT")] == [2]
    assert [e.number for e in journal.search(model="sdxl")] == [2]
    assert [e.number for e in journal.search("sdxl")] == [2]
    assert [e.number for e in journal.search(keyword="Pixel Art")] == [1]
    assert journal.search(keyword="pixel") == []
    journal.publish([3], journal.path.parent / "site")
    assert [e.number for e in journal.search(status="published")] == [3]
    assert len(journal.search(status="unreleased", limit=None)) == 24
    today = journal.get(1).created[:10]
    assert len(journal.search(since=today, until=today, limit=None)) == 25
    assert journal.search(until="2000-01-01") == []


def test_retitle_publish_unpublish_each_make_one_commit(journal, tmp_path):
    journal.accept(new_experiment(tmp_path, "first"))
    count = lambda: int(git(journal.path, "rev-list", "--count", "HEAD"))  # noqa: E731
    before = count()
    assert journal.retitle(1, TITLES[1]).title == TITLES[1]
    assert count() == before + 1 and git(journal.path, "log", "-1", "--format=%s").strip() == f"#1 {TITLES[1]}"
    assert Journal.open(journal.path).get(1).title == TITLES[1]
    journal.publish([1], tmp_path / "site")
    assert journal.get(1).status == "published" and journal.get(1).published
    assert count() == before + 2
    journal.publish([1], tmp_path / "site")  # already published: gallery rewritten, no empty commit
    assert count() == before + 2
    journal.unpublish([1])
    assert journal.get(1).status == "unreleased" and journal.get(1).published is None and count() == before + 3


def test_missing_index_is_rebuilt_from_git(journal, tmp_path):
    for t in TITLES[:3]:
        journal.accept(new_experiment(tmp_path, t))
    journal.retitle(2, "renamed")
    (journal.path / DB_FILE).unlink()
    again = Journal.open(journal.path)
    assert [e.title for e in again.list()] == [TITLES[2], "renamed", TITLES[0]]


def test_init_refuses_a_non_empty_directory_and_open_refuses_a_non_journal(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(NotAJournal, match="not empty"):
        Journal.init(tmp_path / "stuff")
    with pytest.raises(NotAJournal, match="not a promptism journal"):
        Journal.open(tmp_path / "stuff")
    with pytest.raises(NotAJournal, match="promptism init"):
        Journal.open(tmp_path / "nothing")
    assert Journal.open(tmp_path / "new", create=True).path == tmp_path / "new"
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine"


def test_commits_work_without_a_git_identity(journal, tmp_path):
    journal.accept(new_experiment(tmp_path, "anon"))
    assert git(journal.path, "log", "-1", "--format=%an <%ae>").strip() == "promptism <promptism@localhost>"


def test_journal_never_imports_ui_or_ml_libraries():
    heavy = ("textual", "torch", "diffusers", "transformers", "open_clip", "workshop")
    assert imported_after("journal", "journal.journal", "journal.importing", "journal.publish", watch=heavy) == []


def test_import_linter_contracts_hold():
    lint = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], capture_output=True, text=True, cwd=REPO)
    assert lint.returncode == 0 and "KEPT" in lint.stdout, lint.stdout + lint.stderr


def test_values_the_index_cannot_hold_are_refused_before_anything_is_written(journal, tmp_path, capsys):
    from journal import InvalidInput
    from tests.helpers import make_png, run_cli

    src = make_png(tmp_path / "a.png")
    code, _, err = run_cli(capsys, "import", str(src), "-t", "big", "-m", "m", "--seed", str(2**64), "--journal", str(journal.path))
    assert code == 2 and "--seed" in err
    with pytest.raises(InvalidInput, match="seed"):
        journal.accept(new_experiment(tmp_path, "huge").__class__(
            title="huge", model=ModelInfo("m"), images=[__import__("journal").NewImage(src, seed=2**64)]))
    with pytest.raises(InvalidInput, match="surrogate"):
        journal.accept(new_experiment(tmp_path, "bad text", prompt="lone \udc80 surrogate"))
    with pytest.raises(InvalidInput, match="cannot store"):
        journal.accept(new_experiment(tmp_path, "nan grid", grid=GridRecord.model_validate({"x": float("nan")})))
    assert not (journal.path / ".promptism" / "intent.json").exists() and not (journal.path / "experiments").exists()
    assert journal.accept(new_experiment(tmp_path, "fine")).number == 1


def test_doctor_repairs_a_corrupt_document_with_no_index_and_keeps_staged_files(journal, tmp_path, capsys):
    from tests.helpers import run_cli

    exp = journal.accept(new_experiment(tmp_path, "one"))
    doc = journal.path / exp.dir / "experiment.json"
    doc.write_text("{ not json")
    (journal.path / DB_FILE).unlink()
    staged = journal.path / exp.dir / "notes.txt"
    staged.write_text("my notes")
    git(journal.path, "add", str(staged))
    code, out, err = run_cli(capsys, "doctor", "--journal", str(journal.path))
    assert code == 0, out + err
    assert json.loads(doc.read_text())["title"] == "one" and Journal.open(journal.path).get(1).title == "one"
    kept = list((journal.path / ".promptism" / "orphans").rglob("notes.txt"))
    assert kept and kept[0].read_text() == "my notes"  # moved aside, never deleted
    assert list((journal.path / ".promptism" / "orphans").rglob("experiment.json"))  # the broken one, too
