"""Text files a user names — a grid's spec file, `import --prompt-file` and `--titles`, the files of a `--wildcards`
folder — are read only when they are regular files and only up to a bound: a FIFO (a read waits for a writer), a
device (/dev/zero never ends) or a file past 4 MB is one line naming it, and nothing is written."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest

from journal.files import TEXT_MAX_BYTES
from tests.helpers import EXE, make_png, run_cli

MEMORY = 4 * 2**30  # the address space of a command under test: reading /dev/zero whole fails fast, not the machine


def commands(tmp_path, path):
    """Each place a user names a text file: (its name in messages, the command reading ``path`` there)."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    image = make_png(folder / "a.png")
    journal = ["--journal", str(tmp_path / "j")]
    return {
        "spec file": ["grid", str(path), "--dry-run"],
        "prompt file": ["import", str(image), "-t", "t", "-m", "m", "--prompt-file", str(path), *journal],
        "titles file": ["import", str(folder), "--titles", str(path), *journal],
        "wildcard file": ["grid", "-p", "a __colour__ circle", "--mode", "dynamic", "--dry-run", "--wildcards",
                          str(path.parent)],
    }


def named(tmp_path, what: str):
    """Where the file of ``what`` is put: a wildcard file in a wildcards folder, the others anywhere."""
    if what != "wildcard file":
        return tmp_path / "named.txt"
    (tmp_path / "wc").mkdir()
    return tmp_path / "wc" / "colour.txt"


WHATS = ["spec file", "prompt file", "titles file", "wildcard file"]


@pytest.mark.parametrize("what", WHATS)
@pytest.mark.parametrize("kind", ["FIFO", "device"])
def test_a_fifo_or_a_device_is_refused_at_once_never_read(what, kind, tmp_path):
    """In a process of its own, under a time limit and a memory limit: before, the FIFO's read waited for ever and
    /dev/zero's filled the memory."""
    path = named(tmp_path, what)
    if kind == "FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    done = subprocess.run([EXE, *commands(tmp_path, path)[what]], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY)))
    assert done.returncode != 0 and done.stderr.count("\n") == 1, done.stderr
    said = f"{path} is a FIFO no one writes to, not {what}" if kind == "FIFO" and what != "wildcard file" else \
        f"{path} is a {kind}, not a {what}; pass a file"  # (a pipe someone writes to is read: below)
    assert said in done.stderr, done.stderr
    assert not (tmp_path / "j").exists()


@pytest.mark.parametrize("what", ["spec file", "prompt file"])
def test_a_pipe_that_is_written_to_is_read_as_cat_reads_it(what, tmp_path):
    """`--prompt-file <(pass show prompt)` keeps a prompt out of the shell's history: bash hands the command a pipe
    whose writer is there (here: a FIFO a writer opened before the command), or `-`, the standard input."""
    import threading

    path = tmp_path / "named.txt"
    os.mkfifo(path)
    text = 'prompt = "a red circle"\n' if what == "spec file" else "a lighthouse at dusk\n"

    def writer():
        with open(path, "w", encoding="utf-8") as pipe:  # (blocks until the command opens it to read)
            pipe.write(text)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        command = commands(tmp_path, path)[what]
        done = subprocess.run([EXE, *command], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    finally:
        if thread.is_alive():  # the command never opened it: let the writer go
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        thread.join()
    assert done.returncode == 0, done.stderr
    command = commands(tmp_path, Path("-"))[what]
    done = subprocess.run([EXE, *command], capture_output=True, text=True, timeout=300, input=text)
    assert done.returncode == 0, done.stderr
    if what == "spec file":
        assert "a red circle" in done.stdout


@pytest.mark.parametrize("what", WHATS)
def test_a_file_past_the_bound_is_refused_naming_it(what, tmp_path, capsys):
    path = named(tmp_path, what)
    path.write_bytes(b"# " + b"x" * (TEXT_MAX_BYTES - 2) + b"\n")  # a comment line: read whole, it would be no error
    code, _, err = run_cli(capsys, *commands(tmp_path, path)[what])
    assert code != 0 and err.count("\n") == 1, err
    assert f"{path} is larger than 4 MB, more than any {what} holds; pass the right file" in err, err
    assert not (tmp_path / "j").exists()


def test_a_spec_file_of_exactly_the_bound_is_read_and_one_byte_more_is_not(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    text = 'prompt = "a red circle"\n#'
    path.write_text(text + "x" * (TEXT_MAX_BYTES - len(text)), encoding="utf-8")
    code, out, err = run_cli(capsys, "grid", str(path), "--dry-run")
    assert code == 0 and "a red circle" in out, err
    with path.open("a") as file:
        file.write("x")
    code, out, err = run_cli(capsys, "grid", str(path), "--dry-run")
    assert code == 1 and "is larger than 4 MB" in err, err
