"""Two writers at once, and readers during writes — with real processes."""

import subprocess
import sys

import pytest

from journal import Journal, JournalLocked
from tests.helpers import assert_consistent, make_png, new_experiment, run_cli, start_worker

READER = """
import json, sys
from pathlib import Path
from journal import Journal
jdir, stop = Path(sys.argv[1]), Path(sys.argv[2])
journal, reads, seen, last = Journal.open(jdir), 0, 0, False
while not last:                                       # until told to stop (the writer is done), then once more
    last = stop.exists()
    for exp in journal.list(limit=None):            # every listed experiment is whole: document and images on disk
        assert json.loads((jdir / exp.dir / "experiment.json").read_text())["number"] == exp.number
        assert all((jdir / exp.dir / i.file).stat().st_size > 0 for i in exp.images)
        seen = max(seen, exp.number)
    reads += 1
    if reads == 1:
        print("reading", flush=True)
print(reads, seen)
"""


def test_second_writer_gets_one_line_naming_the_holder(jdir, tmp_path, capsys):
    Journal.init(jdir)
    holder = start_worker(jdir, "hold")
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(JournalLocked, match=f"pid {holder.pid}"):
            Journal.open(jdir).accept(new_experiment(tmp_path, "blocked"))
        code, out, err = run_cli(capsys, "retitle", "1", "x", "--journal", str(jdir))
        assert code != 0 and err.count("\n") == 1 and f"pid {holder.pid}" in err and "try again" in err
    finally:
        holder.communicate("")
    assert Journal.open(jdir).accept(new_experiment(tmp_path, "after")).number == 1


def test_two_processes_writing_at_once_both_land_gap_free(jdir, tmp_path):
    Journal.init(jdir)
    image = make_png(tmp_path / "i.png")
    a = start_worker(jdir, "loop", "alpha", image, 8, 60)
    b = start_worker(jdir, "loop", "beta", image, 8, 60)
    out_a, err_a = a.communicate(timeout=120)
    out_b, err_b = b.communicate(timeout=120)
    assert a.returncode == b.returncode == 0, err_a + err_b
    numbers = sorted(int(n) for n in (out_a + out_b).split())
    assert numbers == list(range(1, 17))
    journal = assert_consistent(jdir)
    assert sorted(e.title for e in journal.list(limit=None)) == sorted([f"alpha {i}" for i in range(8)] + [f"beta {i}" for i in range(8)])


def test_readers_never_see_a_torn_state(jdir, tmp_path):
    Journal.init(jdir)
    image = make_png(tmp_path / "i.png")
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(jdir), str(stop)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "reading"  # it reads from before the writer starts to after it ends
    writer = start_worker(jdir, "loop", "w", image, 30, 10)
    writer.communicate(timeout=300)
    stop.touch()
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    reads, seen = map(int, out.split())
    assert reads >= 2 and seen == 30  # the last read, after the writer, saw every experiment whole
    assert len(assert_consistent(jdir)) == 30
