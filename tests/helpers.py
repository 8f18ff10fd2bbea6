"""Helpers shared by the tests: images made with Pillow, git and CLI runners, fresh interpreters, a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import random
import struct
import signal
import subprocess
import sys
import termios
import time
import zlib
from pathlib import Path

from PIL import Image, PngImagePlugin

from journal import ModelInfo, NewExperiment, NewImage
from workshop import paths
from workshop.cli import main

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "promptism")  # the installed command, for tests that need a process of it


def make_png(path: Path, color=(200, 30, 30), size=(64, 64), text: dict[str, str] | None = None, noise: bool = False) -> Path:
    """A PNG of one colour (or seeded noise, which does not compress), with optional text chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    image = Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3)) if noise else Image.new("RGB", size, color)
    image.save(path, pnginfo=info)
    return path


def declared_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width``×``height`` with hardly any data: what a decompression bomb looks like
    to anyone who checks before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def new_experiment(tmp_path: Path, title: str, n_images: int = 1, **kw) -> NewExperiment:
    images = [NewImage(make_png(tmp_path / f"src-{title.encode().hex()[:16]}-{i}.png", (10 * i, 100, 200)), seed=i + 1,
                       prompt=kw.pop("variant", None)) for i in range(n_images)]
    kw.setdefault("model", ModelInfo("test-model", pipeline="StableDiffusionPipeline"))
    return NewExperiment(title=title, images=images, **kw)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, encoding="utf-8").stdout


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def imported_after(*modules: str, watch: tuple[str, ...]) -> list[str]:
    """Which of ``watch`` a fresh interpreter has loaded after importing ``modules``."""
    code = f"import sys, {', '.join(modules)}; print(' '.join(m for m in {watch!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def python(code: str, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the real thing for crash and concurrency tests)."""
    return subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, **kw)


WORKER = """
import sys
from pathlib import Path
from journal import Journal, ModelInfo, NewExperiment, NewImage

jdir, op, *args = sys.argv[1:]
journal = Journal.open(jdir, lock_timeout=float(args.pop()) if op == "loop" else 0.0)

def accept(title, image):
    return journal.accept(NewExperiment(title=title, model=ModelInfo("crash-model"), prompt="SECRET-PROMPT",
                                        images=[NewImage(Path(image), seed=11, prompt="SECRET-VARIANT")]))

if op == "accept":
    print(accept(args[0], args[1]).number, flush=True)
elif op == "loop":
    prefix, image, count = args
    for i in range(int(count)):
        print(accept(f"{prefix} {i}", image).number, flush=True)
elif op == "retitle":
    journal.retitle(int(args[0]), args[1])
elif op == "publish":
    journal.publish([int(args[0])], Path(args[1]))
elif op == "hold":
    with journal._writing():
        print("holding", flush=True)
        sys.stdin.read()
"""


def worker(*args: str, failpoint: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = {"PROMPTISM_FAILPOINT": failpoint} if failpoint else None
    return python(WORKER, *map(str, args), env=env, **kw)


def start_worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_consistent(jdir: Path):
    """The journal's invariants: opens, gap-free numbers, git fsck clean, tree clean, index == files == commits."""
    import json

    from journal import Journal

    journal = Journal.open(jdir)
    exps = journal.list(limit=None)
    numbers = sorted(e.number for e in exps)
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    fsck = subprocess.run(["git", "fsck", "--no-progress"], cwd=jdir, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert git(jdir, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (jdir / ".promptism" / "intent.json").exists()
    leftovers = [str(p.relative_to(jdir)) for p in jdir.rglob("*.tmp")]
    assert leftovers == [], leftovers  # no half-written replacement left anywhere
    assert sorted(p.name for p in (jdir / "experiments").glob("*")) == sorted(e.dir.split("/")[1] for e in exps) if exps else True
    tags = git(jdir, "tag", "--list").split()
    assert tags == [f"exp/{n:04d}" for n in numbers]
    for exp in exps:
        committed = json.loads(git(jdir, "show", f"HEAD:{exp.dir}/experiment.json"))
        assert committed == exp.to_doc()
        added = git(jdir, "log", "--format=%s", "--diff-filter=A", "--", f"experiments/{exp.number:04d}-*/experiment.json").splitlines()
        # the accept, or a batch of accepts "#a–#b: …" (later ones: a retitle moved the folder)
        first, _, last = added[-1].partition(":")[0].partition("–")
        assert added[-1].startswith(f"#{exp.number} ") or last and int(first[1:]) <= exp.number <= int(last[1:])
        assert git(jdir, "log", "-1", "--format=%s", f"exp/{exp.number:04d}").strip() == added[-1]
    assert journal.doctor(repair=False) == []
    return journal


def pty_run(argv: list[str], rows: int = 40, cols: int = 80, pixels: tuple[int, int] = (0, 0), term: str | None = None,
            answers: str | None = None) -> tuple[int, bytes]:
    """Run ``argv`` on a rows × cols pseudo-terminal; return its exit code and everything it wrote. ``answers``, if
    given, is what the "terminal" replies once the program has sent its last query (DA1, ``ESC [ c``)."""
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, *pixels))
        if term:
            os.environ["TERM"] = term
        os.execv(argv[0], argv)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if answers is not None and out.endswith(b"\x1b[c"):
            os.write(fd, answers.encode())
            answers = None
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def on_pty(args: list[str], rows: int = 40, cols: int = 80) -> bytes:
    """Everything ``promptism ARGS`` writes to a rows × cols xterm-like pseudo-terminal (it must succeed)."""
    code, out = pty_run([str(Path(sys.executable).parent / "promptism"), *args], rows, cols, term="xterm-256color")
    assert code == 0, out[-500:]
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of this process counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def poll_until(condition, timeout: float = 180.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def service_pid() -> int | None:
    try:
        return int(paths.pid_file().read_text().strip())
    except (OSError, ValueError):
        return None


def stop_pid(pid: int) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        try:
            poll_until(lambda: not alive(pid), 30, "the service to stop")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)


def generated(capsys, journal: Path, *args: str):
    """The run a successful ``promptism generate ARGS --journal JOURNAL`` (tiny, 2 steps, seed 1, no scorer) made."""
    from journal import Journal
    from workshop.runner.runs import list_runs

    before = {r.id for r in list_runs(Journal.open(journal))} if journal.exists() else set()
    code, _, err = run_cli(capsys, "generate", *args, "--model", "tiny", "--steps", "2", "--seeds", "1", "--clip", "none",
                           "--journal", str(journal))
    assert code == 0, err
    (new,) = [r for r in list_runs(Journal.open(journal)) if r.id not in before]
    return new


def tiny_pipeline():
    """The tiny model's pipeline, a copy of its own (not the warm one a run may have changed)."""
    from diffusers import StableDiffusionPipeline

    from workshop.runner.models import resolve

    pipe = StableDiffusionPipeline.from_pretrained(resolve("tiny").path, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def images_of(run) -> list[bytes]:
    return [run.image(c).read_bytes() for c in run.record.cells]
