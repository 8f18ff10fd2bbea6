"""Real subprocesses SIGKILLed at every step of a write (and at random moments), then the invariants checked."""

import random
import signal
import time

import pytest

from journal import Journal
from tests.helpers import assert_consistent, git, make_png, start_worker, worker

ACCEPT_STEPS = ["intent-written", "image-written", "files-written", "staged", "ref-moved", "committed", "indexed", "tagged"]
LANDED = {"ref-moved", "committed", "indexed", "tagged"}  # after the commit, the accept is completed on recovery


@pytest.fixture
def image(tmp_path):
    return make_png(tmp_path / "img.png")


@pytest.mark.parametrize("step", ACCEPT_STEPS)
def test_accept_killed_at_each_step(jdir, image, step):
    Journal.init(jdir)
    assert worker(jdir, "accept", "first", image).returncode == 0
    killed = worker(jdir, "accept", "second 𝔳𝔦𝔰𝔦𝔬𝔫", image, failpoint=step)
    assert killed.returncode == -signal.SIGKILL
    assert (jdir / ".promptism" / "intent.json").exists()  # half-finished, until the next open
    journal = assert_consistent(jdir)
    expected = 2 if step in LANDED else 1
    assert len(journal) == expected
    if step in LANDED:
        assert journal.get(2).title == "second 𝔳𝔦𝔰𝔦𝔬𝔫"
    # and the journal goes on: the next accept takes the next number
    assert worker(jdir, "accept", "third", image).stdout.strip() == str(expected + 1)
    assert_consistent(jdir)


@pytest.mark.parametrize("step", ["files-written", "staged", "ref-moved", "committed", "indexed"])
def test_retitle_killed_at_each_step(jdir, image, step):
    Journal.init(jdir)
    worker(jdir, "accept", "old title", image)
    assert worker(jdir, "retitle", "1", "new title", failpoint=step).returncode == -signal.SIGKILL
    journal = assert_consistent(jdir)
    assert journal.get(1).title == ("new title" if step in LANDED else "old title")


@pytest.mark.parametrize("step", ["files-written", "committed"])
def test_publish_killed(jdir, image, tmp_path, step):
    Journal.init(jdir)
    worker(jdir, "accept", "to publish", image)
    assert worker(jdir, "publish", "1", tmp_path / "site", failpoint=step).returncode == -signal.SIGKILL
    assert [p.name[:6] for p in tmp_path.glob(".site.*.tmp")] == [".site."]  # the staged gallery, left behind
    findings = Journal.open(jdir).doctor()
    assert any("cut short; removed 1" in f.problem for f in findings), findings
    assert (step in LANDED) == any("does not show published #1; rewrote it" in f.problem for f in findings), findings
    journal = assert_consistent(jdir)
    assert journal.get(1).status == ("published" if step in LANDED else "unreleased")
    assert not list(tmp_path.glob(".site.*"))
    assert ((tmp_path / "site").exists() and "<b>#1</b>" in (tmp_path / "site" / "index.html").read_text()) == (step in LANDED)


def test_killed_at_random_moments(tmp_path, image):
    """Kills land anywhere, inside git's own commit and ref updates too; every time the invariants hold. Rounds go on
    until four kills have landed in the middle of a write (an intent left behind), however long each write takes on
    this machine; a journal that never leaves one (kills that cannot interrupt it) fails after 48 rounds."""
    rng = random.Random(1234)
    interrupted = rounds = 0
    while interrupted < 4 and rounds < 48:
        jdir = tmp_path / f"journal-{rounds}"
        Journal.init(jdir)
        proc = start_worker(jdir, "loop", f"round {rounds}", image, 1000, 0)
        assert proc.stdout.readline().strip() == "1"  # started and working
        time.sleep(rng.uniform(0.0, 0.3))  # a random moment of its loop (not a measure: any moment will do)
        proc.kill()
        reported = len(proc.communicate()[0].split()) + 1
        interrupted += (jdir / ".promptism" / "intent.json").exists()
        rounds += 1
        journal = assert_consistent(jdir)
        assert len(journal) in (reported, reported + 1)  # all it reported, plus perhaps one it was finishing
        assert int(git(jdir, "rev-list", "--count", "HEAD")) == len(journal) + 1
    assert interrupted >= 4, f"only {interrupted} of {rounds} kills landed in the middle of a write"
