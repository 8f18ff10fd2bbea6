"""Tally how promptism answers hostile or malformed input, on the command line and over the service's HTTP API.

    PYTHONPATH=$PWD .venv/bin/python tests/bench/bad_input_tally.py [--part cli|http|all] [--only TEXT] [--keep]
                                                                    [--timeout 60] [--json-out FILE]

A measurement, not a test: nothing is asserted; it prints a table of outcomes and every case that was not answered
cleanly. Everything happens in a throwaway sandbox under /tmp (HOME, the XDG folders, PROMPTISM_RUNTIME / _STATE /
_CACHE, journals): the user's own journal, config and service are never touched. The subprocesses get this checkout
first on PYTHONPATH. It takes some minutes (a few dozen cases load a model: ``--model shapes`` / ``tiny``,
``--steps 1``, on the CPU); ``--only TEXT`` runs the cases whose name contains TEXT.

CLI part: several hundred bad invocations of every command (invalid UTF-8 and lone-surrogate bytes in arguments,
control characters and ESC sequences, NaN / inf / 1e309 / huge / negative / zero numbers, empty strings, unknown
models and samplers, malformed seeds, sizes, axes and spec files, FIFOs, directories, /dev/zero, missing files, a
journal that is a file, bad environment variables and config files, stdout closed or full …), almost all with
``PROMPTISM_SERVICE=off``, a few with the service on (it is stopped at the end: ``serve stop``, then its pid). Each
case runs in a fresh copy of a small journal (two experiments, two runs), under a per-case timeout. Outcomes:

  CLEAN      exit != 0, stderr exactly one line, no traceback, no "internal error"
  OK         exit 0 on input that is acceptable (the case says why)
  ACCEPTED   exit 0 on input listed as bad, with no replaced value found (for a person to judge)
  SILENT     exit 0, but the run's record differs from what was asked (a value replaced or dropped)
  TRACEBACK  "Traceback" (or "Exception ignored", an exception dump at exit) in the output
  INTERNAL   "internal error" in the output
  MULTILINE  exit != 0 with an error of several stderr lines
  NO_MESSAGE exit != 0 with nothing on stderr
  HANG       the case ran past its timeout (it was killed)
  LEFTOVER   a failing command left a run folder, a journal change, a commit or an --out folder behind
  DAMAGE     a file the command had no business removing (the user's file in a --out folder) is gone
  PROMPT_IN_LOG  (service-on cases) the marker prompt reached the service's log

HTTP part: a service (``promptism serve --journal J --listen 127.0.0.1:PORT``) in its own throwaway HOME; 150+
malformed requests to every route the FastAPI app lists (bodies as raw bytes: NaN, 1e309, "\\ud800", 1 MB strings,
deep nesting, wrong types, missing and unknown fields, bad base64 images, huge sizes; bad paths and queries; bad
Authorization headers on the TCP port). After each request: the service's log since the request, the listing routes
(``GET /v1/jobs`` and ``/v1/status`` without the journal, ``/sdapi/v1/progress``, the TCP ``/v1/jobs``) searched for
the marker prompt, and whether the service is still alive (restarted if not). Outcomes: CLEAN (4xx, a JSON error
body), OK (2xx on acceptable input), ACCEPTED (2xx on input listed as bad; a submitted job's end is said), SILENT
(an A1111 answer whose applied values differ from the request), REFUSED_LATE (a /v1/jobs submit answered 201 whose
job then failed with the request's own fault, cleanly: refused when run, not when sent), UNSTRUCTURED (4xx without a
JSON error), DROPPED (the connection was closed with no HTTP answer), 5XX,
TRACEBACK (in the service log), INTERNAL (a job failed as an internal error), PROMPT_IN_LOG (the marker in the log or
in a listing it should not reach), DIED (the service process ended), HANG. At the end: does the service still run a
small job (shapes, 1 step, over /sdapi and over /v1/jobs); then it is stopped by its pid (always, in a finally).

Memory: the script caps its address space (and so every child's) at --memory-gb (default 8) so that a case that
reads /dev/zero or allocates a huge image fails with MemoryError instead of pressing on the machine.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
CMD = [PY, "-m", "workshop.cli"]
MARK = "qzxvmarker"  # in every prompt: a log or a listing that shows it shows a prompt
PROMPT = f"{MARK} a red circle"

CLI_ORDER = ["CLEAN", "OK", "ACCEPTED", "SILENT", "TRACEBACK", "INTERNAL", "MULTILINE", "NO_MESSAGE", "HANG",
             "LEFTOVER", "DAMAGE", "PROMPT_IN_LOG"]
HTTP_ORDER = ["CLEAN", "OK", "REFUSED_LATE", "ACCEPTED", "SILENT", "UNSTRUCTURED", "DROPPED", "5XX", "TRACEBACK",
              "INTERNAL", "PROMPT_IN_LOG", "DIED", "HANG"]


# ------------------------------------------------------------------ sandbox


class Sandbox:
    def __init__(self, root: Path):
        self.root = root
        self.cache = root / "cache"  # shared: the tiny model is built once
        self.fx = root / "fx"
        self.cases = root / "cases"
        for d in (self.cache, self.fx, self.cases):
            d.mkdir(parents=True, exist_ok=True)

    def env(self, name: str, service: bool = False) -> dict[str, str]:
        home = self.root / f"h-{name}"
        for sub in ("config", "data", "cache", "state", "hf"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PROMPTISM_", "XDG_", "HF_", "RAY_")) and k not in ("PYTHONPATH", "COLORTERM")}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"),
                   XDG_CACHE_HOME=str(home / "cache"), XDG_STATE_HOME=str(home / "state"),
                   PROMPTISM_RUNTIME=str(self.root / f"rt-{name}"), PROMPTISM_STATE=str(home / "state" / "p"),
                   PROMPTISM_CACHE=str(self.cache), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1",
                   PYTHONPATH=str(REPO), TERM="xterm", COLUMNS="160", PYTHONDONTWRITEBYTECODE="1")
        if not service:
            env["PROMPTISM_SERVICE"] = "off"
        return env


def run(args, env, cwd=None, timeout=300, input_bytes=None) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, timeout=timeout, capture_output=True, input=input_bytes)


def png_bytes(size=(32, 32), text: dict[str, str] | None = None, color=(200, 30, 30)) -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height pixels, with a tiny (wrong) image stream: a decompression bomb's
    shape."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def a1111_text(prompt: str, seed: int = 1234) -> str:
    return f"{prompt}\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: 32x32, Model: sd-test"


def make_fixtures(sb: Sandbox) -> dict[str, str]:
    """Files every case may name, as {NAME} placeholders."""
    fx = sb.fx
    os.mkfifo(fx / "fifo")
    (fx / "emptydir").mkdir()
    (fx / "file.txt").write_text("not an image\n")
    (fx / "empty.png").write_bytes(b"")
    good = png_bytes()
    (fx / "good.png").write_bytes(good)
    (fx / "trunc.png").write_bytes(good[: len(good) // 2])
    (fx / "bomb.png").write_bytes(declared_png(100_000, 100_000))
    (fx / "meta.png").write_bytes(png_bytes(text={"parameters": a1111_text(PROMPT)}))
    (fx / "meta_escape.png").write_bytes(png_bytes(text={"parameters": a1111_text(PROMPT).replace(
        "sd-test", "sd\x1b]52;c;aGk=\x07\x1b[2J")}))
    (fx / "meta_nan.png").write_bytes(png_bytes(text={"parameters": f"{PROMPT}\nSteps: nan, Sampler: Euler a, "
                                                                     "CFG scale: nan, Seed: 1e309, Size: 0x0"}))
    (fx / "unreadable.png").write_bytes(good)
    (fx / "unreadable.png").chmod(0)
    os.symlink("/dev/zero", fx / "zero_link.png")
    (fx / "badutf8.txt").write_bytes(b"caf\xe9 " + MARK.encode() + b" \xff\xfe")
    (fx / "surrogate.txt").write_bytes(MARK.encode() + b" \xed\xa0\x80")
    (fx / "prompt.txt").write_text(PROMPT + "\n")
    (fx / "bytesname").mkdir()
    (fx / "bytesname" / os.fsdecode(b"caf\xe9.png")).write_bytes(good)
    (fx / "onedir").mkdir()
    (fx / "onedir" / "a.png").write_bytes(good)
    (fx / "onedir_fifo").mkdir()
    (fx / "onedir_fifo" / "a.png").write_bytes(good)
    os.mkfifo(fx / "onedir_fifo" / "b.png")
    # wildcard folders
    (fx / "wc_fifo").mkdir()
    os.mkfifo(fx / "wc_fifo" / "color.txt")
    (fx / "wc_zero").mkdir()
    os.symlink("/dev/zero", fx / "wc_zero" / "color.txt")
    (fx / "wc_bad").mkdir()
    (fx / "wc_bad" / "color.txt").write_bytes(b"red\n\xff\xfe\n")
    (fx / "wc_ok").mkdir()
    (fx / "wc_ok" / "color.txt").write_text("red\nblue\n")
    (fx / "wc_empty").mkdir()
    (fx / "wc_empty" / "color.txt").write_text("")
    (fx / "wc_self").mkdir()
    (fx / "wc_self" / "color.txt").write_text("__color__\n")
    # spec files (TOML)
    specs = {
        "empty": "",
        "invalid": "prompt = \n[[[",
        "badutf8": None,
        "bom": "\ufeffprompt = \"x\"\n",
        "unknown": f'prompt = "{PROMPT}"\nbogus = 1\n',
        "seeds_text": f'prompt = "{PROMPT}"\nseeds = "abc"\n',
        "seeds_float": f'prompt = "{PROMPT}"\nseeds = [1.5]\n',
        "seeds_nan": f'prompt = "{PROMPT}"\nseeds = [nan]\n',
        "seeds_huge": f'prompt = "{PROMPT}"\nseeds = [99999999999999999999]\n',
        "steps_text": f'prompt = "{PROMPT}"\n[params]\nsteps = "1"\n',
        "steps_nan": f'prompt = "{PROMPT}"\n[params]\nsteps = nan\n',
        "steps_bool": f'prompt = "{PROMPT}"\n[params]\nsteps = true\n',
        "guidance_inf": f'prompt = "{PROMPT}"\n[params]\nguidance = inf\n',
        "guidance_nan": f'prompt = "{PROMPT}"\n[params]\nguidance = nan\n',
        "params_unknown": f'prompt = "{PROMPT}"\n[params]\nbogus = 1\n',
        "params_not_table": f'prompt = "{PROMPT}"\nparams = 3\n',
        "keywords_int": f'prompt = "{PROMPT}"\nkeywords = [1]\n',
        "keyword_table_bad": f'prompt = "{PROMPT}"\nkeywords = [{{ text = "a", weight = nan }}]\n',
        "axes_int": f'prompt = "{PROMPT}"\n[axes]\nx = 1\n',
        "axes_w": f'prompt = "{PROMPT}"\n[axes]\nw = "steps=1,2"\n',
        "mode_bogus": f'prompt = "{PROMPT}"\nmode = "bogus"\n',
        "prompt_int": "prompt = 1\n",
        "deep_array": "seeds = " + "[" * 3000 + "1" + "]" * 3000 + "\n",
        "deep_table": "prompt = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
        "surrogate_escape": 'prompt = "\\ud800"\n',
        "wildcards_zero": f'prompt = "{PROMPT} __color__"\nmode = "dynamic"\nwildcards = "/dev/zero"\n',
        "size_bad": f'prompt = "{PROMPT}"\n[params]\nsize = "0x0"\n',
        "init_fifo": f'prompt = "{PROMPT}"\n[params]\ninit_image = "{fx / "fifo"}"\n',
        "ok": f'prompt = "{PROMPT}"\nseeds = [1]\n',
    }
    (fx / "specs").mkdir()
    for name, text in specs.items():
        path = fx / "specs" / f"{name}.toml"
        if text is None:
            path.write_bytes(b'prompt = "caf\xe9 \xff"\n')
        else:
            path.write_text(text, encoding="utf-8")
    # config files
    configs = {
        "max_batch_text": 'max_batch = "8"\n', "service_text": 'service = "yes"\n', "model_int": "model = 1\n",
        "sampler_bogus": 'sampler = "bogus"\n', "unknown": "bogus = 1\n", "invalid": "model = \n",
        "model_paths_int": "model_paths = [1]\n", "idle_nan": "idle_timeout = nan\n",
        "pixels_zero": "max_image_pixels = 0\n", "co2_neg_inf": "co2_g_per_kwh = -inf\n",
        "max_queue_huge": "max_queue = 99999999999999999999\n", "ray_space": 'ray = "a b"\n',
        "model_empty": 'model = ""\n', "clip_bogus": 'clip = "bogus"\n', "model_nosuch": 'model = "nosuch"\n',
        "max_batch_zero": "max_batch = 0\n",
    }
    (fx / "configs").mkdir()
    for name, text in configs.items():
        (fx / "configs" / f"{name}.toml").write_text(text, encoding="utf-8")
    (fx / "configs" / "badutf8.toml").write_bytes(b'model = "caf\xe9"\n')
    # titles files for a folder import
    (fx / "titles_bad.toml").write_text('"a.png" = 1\n')
    (fx / "titles_invalid.toml").write_text('"a.png" = \n')
    # a gallery folder holding a file of the user's
    return {"FIFO": str(fx / "fifo"), "DIR": str(fx / "emptydir"), "TXT": str(fx / "file.txt"),
            "EMPTYF": str(fx / "empty.png"), "PNG": str(fx / "good.png"), "TRUNC": str(fx / "trunc.png"),
            "BOMB": str(fx / "bomb.png"), "META": str(fx / "meta.png"), "META_ESC": str(fx / "meta_escape.png"),
            "META_NAN": str(fx / "meta_nan.png"), "UNREADABLE": str(fx / "unreadable.png"),
            "ZERO_LINK": str(fx / "zero_link.png"), "BADUTF8": str(fx / "badutf8.txt"),
            "SURR": str(fx / "surrogate.txt"), "PROMPTFILE": str(fx / "prompt.txt"),
            "BYTESDIR": str(fx / "bytesname"), "ONEDIR": str(fx / "onedir"), "ONEDIR_FIFO": str(fx / "onedir_fifo"),
            "MISSING": str(fx / "no-such-file.png"), "SPEC": str(fx / "specs"), "CONF": str(fx / "configs"),
            "FX": str(fx)}


def make_base_journal(sb: Sandbox, fixtures: dict[str, str]) -> dict[str, str]:
    """A small journal: #1 (accepted from run A, shapes, 2 images, published), run B (tiny, not accepted), #2
    (imported, model sd-test)."""
    env = sb.env("base")
    j = sb.root / "base" / "j"
    j.parent.mkdir(parents=True)
    env["PROMPTISM_JOURNAL"] = str(j)

    def call(*args):
        proc = run(CMD + list(args), env, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"setup failed: promptism {args[0]}: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode()

    call("init", str(j))
    out = call("generate", PROMPT, "--model", "shapes", "--steps", "1", "--seeds", "1-2")
    run_a = re.search(r"run (\S+) ·", out).group(1)
    call("accept", run_a, "--title", "Alpha star")
    out = call("generate", f"{MARK} a blue square", "--model", "tiny", "--steps", "1")
    run_b = re.search(r"run (\S+) ·", out).group(1)
    call("import", fixtures["META"], "--title", "Beta import", "--model", "sd-test")
    call("publish", "1", "--out", str(sb.root / "base" / "gallery"))
    return {"BASE_J": str(j), "RUN_A": run_a, "RUN_B": run_b}


# ------------------------------------------------------------------ journal snapshots


def snapshot(root: Path) -> dict[str, Any] | None:
    """What a failing command must not change: every file (by content) and folder outside .git; in .git, the refs,
    HEAD and any lock file (the index, the reflogs and the object store are left out; new loose objects are
    counted)."""
    if not os.path.lexists(root):
        return None
    if not root.is_dir():
        return {"": _digest(root)}
    files: dict[str, Any] = {}
    objects = 0
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel + "/"
        if rel.startswith(".git/objects/"):
            objects += len(filenames)
            continue
        if rel.startswith(".git/logs/"):
            continue
        files[rel] = "dir"
        for name in filenames:
            path = rel + name
            if path in (".git/index", ".git/ORIG_HEAD", ".git/FETCH_HEAD", ".git/COMMIT_EDITMSG"):
                continue
            files[path] = _digest(Path(dirpath) / name)
    return {"files": files, "objects": objects}


def _digest(path: Path) -> str:
    info = os.lstat(path)
    if stat.S_ISREG(info.st_mode):
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest()
    return f"mode {stat.S_IFMT(info.st_mode):o}"


def changes(before, after) -> list[str]:
    if before == after:
        return []
    if before is None or after is None:
        return ["created" if before is None else "removed"]
    if "files" not in before or "files" not in after:
        return ["changed"]
    b, a = before["files"], after["files"]
    said = []
    added = sorted(set(a) - set(b))
    removed = sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    for word, names in (("added", added), ("removed", removed), ("changed", changed)):
        if names:
            said.append(f"{word} {len(names)}: {', '.join(names[:3])}{' …' if len(names) > 3 else ''}")
    return said


def finished_runs(journal: Path, before, after) -> list[str]:
    """New run folders whose manifest says finished (a whole run, not a half-written one)."""
    done = []
    for run_id in new_runs(before, after):
        try:
            state = json.loads((journal / ".promptism" / "runs" / run_id / "manifest.json").read_text()).get("state")
        except (OSError, ValueError):
            continue
        if state == "finished":
            done.append(run_id)
    return done


def drop(snap, run_ids: list[str]):
    """``snap`` without the folders of ``run_ids``."""
    if not snap or "files" not in snap or not run_ids:
        return snap
    prefixes = tuple(f".promptism/runs/{r}/" for r in run_ids)
    return {**snap, "files": {k: v for k, v in snap["files"].items() if not k.startswith(prefixes)}}


def settle(env_b: dict, timeout: float = 180) -> None:
    """Wait until the service (if one runs) has no queued or running job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(CMD + ["serve", "status", "--json"], env=env_b, capture_output=True, timeout=60)
        if proc.returncode != 0:
            return
        try:
            jobs = json.loads(proc.stdout).get("jobs", [])
        except ValueError:
            return
        if all(j.get("state") not in ("queued", "running") for j in jobs):
            return
        time.sleep(1)


def new_runs(before, after) -> list[str]:
    if not before or not after or "files" not in before or "files" not in after:
        return []
    pat = re.compile(r"^\.promptism/runs/([^/]+)/manifest\.json$")
    return sorted(m.group(1) for k in set(after["files"]) - set(before["files"]) if (m := pat.match(k)))


# ------------------------------------------------------------------ CLI cases


@dataclass
class Case:
    name: str  # prompt-free description
    args: list  # str (with {PLACEHOLDERS}) or bytes
    expect: str = "bad"  # "bad", or "ok: why it is acceptable"
    env: dict = field(default_factory=dict)
    want: dict = field(default_factory=dict)  # on exit 0: what the new run must record (SILENT otherwise)
    timeout: float | None = None
    stdout: str = "pipe"  # "pipe", "closed" (read end closed: EPIPE), "full" (/dev/full)
    shell: str | None = None  # run through bash: the command line, {P} for promptism
    feed: dict = field(default_factory=dict)  # {PLACEHOLDER: bytes}: a per-case FIFO a thread writes once opened
    watch: list = field(default_factory=list)  # paths (placeholders) a failing command must not create or change
    service: bool = False  # with the service on (the CLI starts one in the "svc" home)
    journal: str | None = None  # the journal the case writes (default: its copy of the base journal)
    keep: list = field(default_factory=list)  # files that must still be there afterwards, whatever the exit code
    note: str = ""  # said beside the outcome


B = bytes  # marks argument values given as raw bytes (invalid UTF-8 …)
INVALID = b"\xff\xfe"
SURROGATE = b"\xed\xa0\x80"  # U+D800 as (CESU) UTF-8 bytes: Python reads it as three escaped bytes
ESC = "\x1b]52;c;aGk=\x07\x1b[2J\x1b[31m"
RLO = "\u202eevil"
GEN = ["generate", PROMPT, "--model", "shapes", "--steps", "1"]
GRID = ["grid", "-p", PROMPT, "--dry-run", "--json"]
SHAPES = {"model": "shapes"}


def ok(why: str) -> str:
    return "ok: " + why


def cli_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append

    # --- generate: integer options
    int_values = ["", "abc", "nan", "inf", "1e309", "-1", "0", "99999999999999999999999", "1.5", B(INVALID),
                  "\uff11"]
    for opt in ("--steps", "--seed", "--max-batch", "--max-cells"):
        for v in int_values:
            base = [a for a in GEN if not (opt == "--steps" and a in ("--steps", "1"))]
            expect = "bad"
            want = dict(SHAPES)
            if opt == "--seed" and v == "0":
                expect, want = ok("seed 0 is a seed"), {"seeds": [0], "model": "shapes"}
            if v == "\uff11":
                expect = ok("fullwidth digit one: Python reads it as 1") if opt != "--seed" else ok("read as seed 1")
                want = {"steps": 1} if opt == "--steps" else {"seeds": [1]} if opt == "--seed" else want
            if opt in ("--max-batch", "--max-cells") and v == "99999999999999999999999":
                expect = ok("a huge cap is still a cap (one image is made)")
            add(Case(f"generate {opt} {_show(v)}", base + [opt, v], expect, want=want))
    # --- generate: float options
    float_values = ["", "abc", "nan", "-inf", "1e309", "0x10", B(INVALID), "1_0", "1e-320", "-5"]
    for opt in ("--guidance", "--strength", "--lr", "--tv"):
        for v in float_values if opt in ("--guidance", "--strength") else ["nan", "1e309", "abc"]:
            expect, want = "bad", dict(SHAPES)
            if opt == "--guidance" and v == "1_0":
                expect, want = ok("Python float syntax: read as 10"), {"guidance": 10.0}
            if opt == "--guidance" and v == "-5":
                expect, want = ok("a negative guidance is a number the pipeline takes"), {"guidance": -5.0}
            if opt == "--guidance" and v == "1e-320":
                expect, want = ok("a subnormal guidance is a finite number"), {"guidance": 1e-320}
            add(Case(f"generate {opt} {_show(v)}", GEN + [opt, v], expect, want=want))
    add(Case("generate --strength 0.5 without --init-image", GEN + ["--strength", "0.5"], "bad"))
    add(Case("generate --lr 0.5 on shapes (a vqgan-clip option)", GEN + ["--lr", "0.5"], "bad"))
    add(Case("generate --cutouts 3 on shapes (a vqgan-clip option)", GEN + ["--cutouts", "3"], "bad"))
    add(Case("generate --no-quantize on shapes", GEN + ["--no-quantize"], "bad"))
    add(Case("generate --animate 2 on shapes", GEN + ["--animate", "2"], "bad"))
    add(Case("generate --tf32 on the CPU", GEN + ["--tf32"], ok("a speed-up flag that does nothing on a CPU"),
             want=SHAPES))
    # --- generate: sizes
    for v in ["", "0x0", "abc", "64x", "x64", "-8x-8", "8x8", "33x33", "99999x99999", "64X64", " 64x64 ",
              "64x64x64", "1e309x8", "nanxnan", "\uff16\uff14x\uff16\uff14", B(b"64x\xff"), "64*64", "64 x 64"]:
        expect, want = "bad", dict(SHAPES)
        if v in ("8x8",):
            expect, want = ok("8x8 is a multiple of 8"), {"size": (8, 8)}
        if v in ("64X64", " 64x64 ", "64 x 64", "\uff16\uff14x\uff16\uff14"):
            expect, want = ok("a lenient spelling of 64x64"), {"size": (64, 64)}
        add(Case(f"generate --size {_show(v)}", GEN + ["--size", v], expect, want=want))
    # --- seeds
    for v in ["1,,2", "99999999999999999999999", "", ",", "1-", "-1", "3-1", "1-99999", "1-4294967296", "a-b", "1;2",
              " 1 , 2 ", "1,1", "1-3,2", "nan", "0x10", "1e3", B(INVALID), "4294967295", "\uff11", "1--2", "1-2-3"]:
        expect, want = "bad", dict(SHAPES)
        if v == " 1 , 2 ":
            expect, want = ok("spaces around seeds"), {"seeds": [1, 2]}
        if v == "4294967295":
            expect, want = ok("the largest seed"), {"seeds": [4294967295]}
        if v == "\uff11":
            expect, want = ok("fullwidth digit one"), {"seeds": [1]}
        if v in ("1,1", "1-3,2"):
            want = {"seeds": [1, 1] if v == "1,1" else [1, 2, 3, 2]}
        add(Case(f"generate --seeds {_show(v)}", GEN + ["--seeds", v], expect, want=want))
    add(Case("generate --seed 5 --seeds 1-2 (both)", GEN + ["--seed", "5", "--seeds", "1-2"], "bad",
             want={"seeds": [5]}))
    add(Case("generate --seed 4294967296", GEN + ["--seed", "4294967296"]))
    # --- sampler, model, clip
    for v in ["", "bogus", "Euler a\x1b[2J", B(INVALID), "euler a", "DEFAULT", "LCM", "dpm++ 2m karras", "Euler a "]:
        expect, want = "bad", dict(SHAPES)
        if v in ("euler a", "Euler a "):
            expect, want = ok("a sampler name in other case / with a space"), {"sampler": "Euler a"}
        if v == "dpm++ 2m karras":
            expect, want = ok("a sampler name in lower case"), {"sampler": "DPM++ 2M Karras"}
        if v == "DEFAULT":
            expect, want = ok("'default' asks for the model's own scheduler"), {"sampler": None}
        if v == "LCM":
            expect, want = ok("a listed sampler"), {"sampler": "LCM"}
        add(Case(f"generate --sampler {_show(v)}", GEN + ["--sampler", v], expect, want=want))
    for v in ["", " ", "nosuch", "../../etc", "/dev/zero", "{FIFO}", "{DIR}", "tiny\x1b[31m", B(INVALID),
              B(SURROGATE), "vqgan-clip:bogus+bogus", "x" * 5000, "org/repo/extra", "{TXT}", "\u202etiny"]:
        add(Case(f"generate --model {_show(v)}", ["generate", PROMPT, "--steps", "1", "--model", v]))
    for v in ["", "bogus", "ViT-B-32:/dev/zero", "ViT-B-32:{FIFO}", "a:b:c", B(INVALID), "none", "tiny-clip"]:
        expect, want = "bad", dict(SHAPES)
        if v in ("none", "tiny-clip"):
            expect = ok(f"--clip {v} is a listed scorer")
        add(Case(f"generate --clip {_show(v)}", GEN + ["--clip", v], expect, want=want))
    # --- init image
    for v in ["", "{FIFO}", "{DIR}", "{MISSING}", "{TXT}", "{TRUNC}", "{EMPTYF}", "{BOMB}", "{ZERO_LINK}", "#0",
              "#999", "#1:0", "#1:99", "#-1", "#", "#1:", "#abc", "#99999999999999999999999", "#1:1e309", "#2",
              B(b"/tmp/\xff.png"), "{UNREADABLE}", "#1:1"]:
        expect, want = "bad", dict(SHAPES)
        if v == "{UNREADABLE}":
            expect, want = ok("mode 000, but this runs as root, which reads it"), {"strength": 0.75}
        if v == "#1:1":
            expect, want = ok("experiment 1's first image"), {"strength": 0.75}
        add(Case(f"generate --init-image {_show(v)}", GEN + ["--init-image", v], expect, want=want))
    # --- out
    for v in ["", "/dev/zero", "{TXT}", "{FIFO}", "/proc/version", B(b"{D}/out-\xff")]:
        expect = "bad"
        if isinstance(v, bytes):
            expect = ok("a folder name of non-UTF-8 bytes is a valid Linux path")
        add(Case(f"generate --out {_show(v)}", GEN + ["--out", v], expect, want=SHAPES))
    add(Case("generate --out NEWDIR with --steps 0", ["generate", PROMPT, "--steps", "0", "--out", "{D}/newout"],
             watch=["{D}/newout"]))
    add(Case("generate --out NEWDIR with an unknown model", ["generate", PROMPT, "--model", "nosuch", "--out",
                                                            "{D}/newout2"], watch=["{D}/newout2"]))
    # --- prompt, negative, title
    for v in ["", " ", B(INVALID), B(MARK.encode() + SURROGATE), f"{MARK}{ESC}", "x" * 70000 + MARK, f"{MARK}\n\n",
              f"{MARK}\u202e"]:
        expect, want = "bad", dict(SHAPES)
        if v == f"{MARK}{ESC}" or v == f"{MARK}\n\n" or v == f"{MARK}\u202e":
            expect, want = ok("a prompt is private text; control characters do no harm there"), {"prompt": v}
        if isinstance(v, bytes):
            want = {"prompt": v.decode("utf-8", "surrogateescape")}
        add(Case(f"generate PROMPT={_show(v)}", ["generate", v, "--model", "shapes", "--steps", "1"], expect,
                 want=want))
    add(Case("generate --negative invalid UTF-8", GEN + ["--negative", B(INVALID)], "bad"))
    add(Case("generate --negative 70000 chars", GEN + ["--negative", "n" * 70000], "bad"))
    add(Case("generate --accept without --title", GEN + ["--accept"]))
    for v in ["", " ", B(INVALID), B(SURROGATE), f"T{ESC}", RLO, "t" * 10000, "a red circle", "line\nbreak",
              "\u200b", "Ok \u00e9t\u00e9 \U0001f600"]:
        expect = "bad"
        if v == "Ok \u00e9t\u00e9 \U0001f600":
            expect = ok("any Unicode title")
        add(Case(f"generate --accept --title {_show(v)}", GEN + ["--accept", "--title", v], expect, want=SHAPES))
    add(Case("generate --title without --accept", GEN + ["--title", "T"], "bad"))
    add(Case("generate --journal pointing to a file", GEN + ["--journal", "{TXT}"]))
    add(Case("generate --journal /dev/zero", GEN + ["--journal", "/dev/zero"]))
    add(Case("generate --journal ''", GEN + ["--journal", ""]))
    add(Case("generate --journal FIFO", GEN + ["--journal", "{FIFO}"]))
    add(Case("generate --max-cells 1 --seeds 1-3", GEN + ["--max-cells", "1", "--seeds", "1-3"]))
    add(Case("generate --json with stdout closed", GEN + ["--json"], "bad", stdout="closed",
             note="a closed stdout ends a command quietly with exit 1 (cli/__init__.py)"))
    add(Case("generate unknown option --bogus", GEN + ["--bogus"]))
    add(Case("generate two prompts", GEN + ["extra"]))

    # --- grid (dry runs: nothing is loaded)
    for v in ["kw:nan", "kw:inf", "kw:1e309", "kw:", ":1.3", "", "(" * 500 + "kw" + ")" * 500, "kw:-1", B(INVALID),
              "kw\x1b[2J", "kw:1:2", "[" * 2000 + "kw" + "]" * 2000, "kw:0x10"]:
        expect = "bad"
        if v == "kw:-1":
            expect = ok("a negative weight is an A1111 weight")
        add(Case(f"grid -k {_show(v)}", GRID + ["-k", v], expect))
    add(Case("grid --mode bogus", GRID + ["--mode", "bogus"]))
    axes = ["", "=", "bogus=1", "steps=", "steps=0", "steps=10-30 (+0)", "steps=30-10 (+10)", "steps=10-30 (+-10)",
            "steps=1-99999999999 (+1)", "seed=1-99999999999", "guidance=nan,1", "guidance=1e309", "size=0x0",
            "sampler=bogus", "model=nosuch", "weight:nokw=1", "weight:kw=nan", "sr=", "strength=2", "order=",
            "steps=1,,2", "steps=" + ",".join(["1"] * 5000), "size=abc", "steps=nan", "seed=-1", B(b"sr=\xff"),
            "steps=1e309", "guidance=1-1e9 (+1e-9)", "steps=99999999999999999999999", "sampler=Euler a,Euler a"]
    for v in axes:
        expect = ok("a repeated axis value is a column") if v == "sampler=Euler a,Euler a" else "bad"
        add(Case(f"grid --x {_show(v)}", GRID + ["-k", "kw", "--x", v], expect))
    add(Case("grid --x and --y the same axis type", GRID + ["--x", "steps=1,2", "--y", "steps=3,4"]))
    add(Case("grid --z without --x", GRID + ["--z", "steps=1,2"]))
    add(Case("grid --seeds 1,,2", GRID + ["--seeds", "1,,2"]))
    add(Case("grid --seeds 4294967295 --per-cell-seeds with 2 keywords", GRID + ["-k", "a", "-k", "b", "--mode",
                                                                               "matrix", "--seeds", "4294967295",
                                                                               "--per-cell-seeds"]))
    add(Case("grid --max-cells 0", GRID + ["--max-cells", "0"]))
    add(Case("grid --max-cells -1", GRID + ["--max-cells", "-1"]))
    add(Case("grid dynamic {a|b} x20 (2^20 combinations)", ["grid", "-p", MARK + " " + "{a|b} " * 20, "--mode",
                                                             "dynamic", "--dry-run", "--json"]))
    add(Case("grid dynamic nested braces 1000 deep", ["grid", "-p", MARK + " " + "{a|" * 1000 + "b" + "}" * 1000,
                                                      "--mode", "dynamic", "--dry-run", "--json"]))
    add(Case("grid dynamic unbalanced brace", ["grid", "-p", MARK + " {a|b", "--mode", "dynamic", "--dry-run"]))
    add(Case("grid dynamic unknown wildcard", ["grid", "-p", MARK + " __nosuch__", "--mode", "dynamic",
                                               "--wildcards", "{FX}/wc_ok", "--dry-run"]))
    for d, expect in (("wc_fifo", "bad"), ("wc_zero", "bad"), ("wc_bad", "bad"), ("wc_empty", "bad"),
                      ("wc_self", "bad"), ("wc_ok", ok("two wildcard values"))):
        add(Case(f"grid --wildcards folder {d}", ["grid", "-p", MARK + " __color__", "--mode", "dynamic",
                                                  "--wildcards", "{FX}/" + d, "--dry-run", "--json"], expect))
    add(Case("grid --wildcards a file", GRID + ["--wildcards", "{TXT}"]))
    add(Case("grid --wildcards missing", GRID + ["--wildcards", "{MISSING}"]))
    add(Case("grid --wildcards FIFO", GRID + ["--wildcards", "{FIFO}"]))
    for v in ["{MISSING}", "{DIR}", "{FIFO}", "/dev/zero", "{TXT}"]:
        add(Case(f"grid SPEC_FILE={_show(v)}", ["grid", v, "--dry-run"], timeout=None))
    for name in ["empty", "invalid", "badutf8", "bom", "unknown", "seeds_text", "seeds_float", "seeds_nan",
                 "seeds_huge", "steps_text", "steps_nan", "steps_bool", "guidance_inf", "guidance_nan",
                 "params_unknown", "params_not_table", "keywords_int", "keyword_table_bad", "axes_int", "axes_w",
                 "mode_bogus", "prompt_int", "deep_array", "deep_table", "surrogate_escape", "wildcards_zero",
                 "size_bad", "init_fifo"]:
        expect = ok("an empty spec is a grid of one empty prompt") if name == "empty" else "bad"
        add(Case(f"grid spec file: {name}", ["grid", "{SPEC}/" + name + ".toml", "--dry-run"], expect))
    add(Case("grid spec file through a FIFO with a writer", ["grid", "{FEED}", "--dry-run"],
             ok("a spec piped in, as <(cat spec.toml) does"), feed={"FEED": f'prompt = "{PROMPT}"\n'.encode()}))
    add(Case("grid spec init_fifo (not dry-run)", ["grid", "{SPEC}/init_fifo.toml", "--model", "shapes", "--steps",
                                                  "1"]))
    add(Case("grid -k with --steps 0 (not dry-run)", ["grid", "-p", PROMPT, "-k", "kw", "--model", "shapes",
                                                      "--steps", "0"]))
    add(Case("grid --x steps=1,2 with shapes (runs)", ["grid", "-p", PROMPT, "--model", "shapes", "--x", "steps=1,2",
                                                       "--steps", "1"], ok("a two-column steps grid"),
             want={"model": "shapes"}))
    add(Case("grid --x model=shapes,nosuch (runs)", ["grid", "-p", PROMPT, "--x", "model=shapes,nosuch",
                                                     "--steps", "1"]))
    add(Case("grid --x size=32x32,0x0 (runs)", ["grid", "-p", PROMPT, "--model", "shapes", "--x",
                                                "size=32x32,0x0", "--steps", "1"]))

    # --- import
    for v in ["{MISSING}", "{FIFO}", "/dev/zero", "{TXT}", "{TRUNC}", "{EMPTYF}", "{BOMB}", "{ZERO_LINK}", "{DIR}",
              "{META_NAN}", "{ONEDIR_FIFO}"]:
        expect = "bad"
        if v == "{META_NAN}":
            expect = ok("metadata with nan steps is ignored field by field") 
        if v == "{ONEDIR_FIFO}":
            expect = ok("a folder import of its one image; a FIFO in it is not an image (to be skipped)")
        add(Case(f"import {_show(v)}", ["import", v, "--title", "Imp", "--model", "m"], expect))
    add(Case("import META_ESC (model name with ESC in metadata)", ["import", "{META_ESC}", "--title", "Imp"]))
    add(Case("import a folder holding a non-UTF-8 file name", ["import", "{BYTESDIR}", "--title", "Imp", "--model",
                                                              "m"], ok("a file name of raw bytes is a valid path")))
    add(Case("import a file named with non-UTF-8 bytes (missing)", ["import", B(b"/tmp/caf\xe9-none.png"),
                                                                    "--title", "Imp", "--model", "m"]))
    add(Case("import a path with ESC in its name (missing)", ["import", f"/tmp/x{ESC}.png", "--title", "Imp",
                                                              "--model", "m"]))
    add(Case("import {UNREADABLE} (mode 000)", ["import", "{UNREADABLE}", "--title", "Imp", "--model", "m"],
             ok("mode 000, but this runs as root, which reads it")))
    for v in ["", " ", B(INVALID), B(SURROGATE), f"T{ESC}", RLO, "t" * 10000, "a red circle", "\u200b"]:
        add(Case(f"import --title {_show(v)}", ["import", "{META}", "--title", v, "--model", "m"]))
    add(Case("import without --title", ["import", "{PNG}", "--model", "m"]))
    for v in ["", f"m{ESC}", B(INVALID), "x" * 5000]:
        add(Case(f"import --model {_show(v)}", ["import", "{PNG}", "--title", "Imp", "--model", v]))
    for v in ["-1", "18446744073709551616", "nan", "", "18446744073709551615"]:
        expect = ok("the largest 64-bit seed") if v == "18446744073709551615" else "bad"
        add(Case(f"import --seed {_show(v)}", ["import", "{PNG}", "--title", "Imp", "--model", "m", "--seed", v],
                 expect))
    add(Case("import --prompt invalid UTF-8", ["import", "{PNG}", "--title", "Imp", "--model", "m", "--prompt",
                                               B(MARK.encode() + INVALID)]))
    add(Case("import --prompt lone surrogate bytes", ["import", "{PNG}", "--title", "Imp", "--model", "m",
                                                      "--prompt", B(MARK.encode() + SURROGATE)]))
    for v, expect in (("{MISSING}", "bad"), ("{DIR}", "bad"), ("{FIFO}", "bad"), ("/dev/zero", "bad"),
                      ("{BADUTF8}", "bad"), ("{SURR}", "bad"), ("{PROMPTFILE}", ok("a prompt file"))):
        add(Case(f"import --prompt-file {_show(v)}", ["import", "{PNG}", "--title", "Imp", "--model", "m",
                                                      "--prompt-file", v], expect))
    add(Case("import --prompt-file FIFO with a writer", ["import", "{PNG}", "--title", "Imp", "--model", "m",
                                                         "--prompt-file", "{FEED}"],
             ok("a prompt piped in, as <(pass show x) does"), feed={"FEED": PROMPT.encode()}))
    for v in ["{MISSING}", "{FIFO}", "{DIR}", "{FX}/titles_bad.toml", "{FX}/titles_invalid.toml", "/dev/zero"]:
        add(Case(f"import folder --titles {_show(v)}", ["import", "{ONEDIR}", "--titles", v, "--model", "m"]))
    add(Case("import a file with --recursive --group", ["import", "{PNG}", "--title", "Imp", "--model", "m",
                                                        "--recursive", "--group"], ok("folder options on a file")))
    add(Case("import the journal's own folder", ["import", "{J}", "--title", "Imp", "--model", "m"]))

    # --- show / log / retitle / publish / unpublish
    for v in ["0", "-1", "abc", "", "1e309", "99999999999999999999999", "\uff11", "1.0", B(INVALID), "999", " 1",
              "#1"]:
        expect = ok("fullwidth digit one") if v == "\uff11" else "bad"
        add(Case(f"show {_show(v)}", ["show", v], expect))
    add(Case("show 1 --graphics bogus", ["show", "1", "--graphics", "bogus"]))
    add(Case("show 1 --image --graphics sixel to a pipe", ["show", "1", "--image", "--graphics", "sixel"],
             ok("an image asked for on a pipe")))
    add(Case("show 1 --json to /dev/full", ["show", "1", "--json"], stdout="full"))
    add(Case("show 1 --journal a file", ["show", "1", "--journal", "{TXT}"]))
    add(Case("show 1 --journal missing", ["show", "1", "--journal", "{MISSING}"]))
    add(Case("show 1 --journal an empty folder", ["show", "1", "--journal", "{DIR}"]))
    for opt, v in [("--limit", "0"), ("--limit", "-1"), ("--limit", "abc"), ("--limit", "1e309"),
                   ("--limit", "99999999999999999999999"), ("--offset", "-1"), ("--offset", "99999999999999999999999"),
                   ("--since", "2026-13-45"), ("--since", ""), ("--since", "abc"), ("--since", "9999-12-31"),
                   ("--until", "0000-01-01"), ("--status", "bogus"), ("--search", B(INVALID)),
                   ("--search", ESC), ("--search", "s" * 100000), ("--model", ""), ("--keyword", B(SURROGATE))]:
        expect = "bad"
        if (opt, v) in (("--limit", "99999999999999999999999"), ("--offset", "99999999999999999999999"),
                        ("--since", "9999-12-31"), ("--search", ESC), ("--search", "s" * 100000), ("--model", "")):
            expect = ok("a filter that matches nothing (or everything)")
        add(Case(f"log {opt} {_show(v)}", ["log", opt, v], expect))
    closed = "by design, cli/__init__.py: a closed stdout (`| head`) ends a command quietly with exit 1"
    add(Case("log with stdout closed", ["log"], stdout="closed", note=closed))
    add(Case("log --json with stdout closed", ["log", "--json"], stdout="closed", note=closed))
    add(Case("log to /dev/full", ["log"], stdout="full"))
    add(Case("log --journal a file", ["log", "--journal", "{TXT}"]))
    add(Case("log --journal /dev/zero", ["log", "--journal", "/dev/zero"]))
    add(Case("log --journal FIFO", ["log", "--journal", "{FIFO}"]))
    add(Case("log --journal non-UTF-8 missing path", ["log", "--journal", B(b"/tmp/\xff-none")]))
    add(Case("log with PYTHONIOENCODING=ascii and a non-ASCII title", ["log"], env={"PYTHONIOENCODING": "ascii"},
             expect=ok("titles are ASCII here")))
    for n, t in [("0", "T"), ("999", "T"), ("abc", "T"), ("1", ""), ("1", " "), ("1", B(INVALID)), ("1", B(SURROGATE)),
                 ("1", f"T{ESC}"), ("1", RLO), ("1", "line\nbreak"), ("1", "t" * 100000), ("1", "a red circle"),
                 ("1", "\u200b"), ("-1", "T"), ("1", "Alpha star"), ("2", "Alpha star")]:
        expect = "bad"
        if (n, t) == ("1", "Alpha star"):
            expect = ok("the same title again (nothing to change)")
        add(Case(f"retitle {_show(n)} {_show(t)}", ["retitle", n, t], expect))
    add(Case("publish without --out", ["publish", "1"]))
    for v in ["", "/dev/zero", "{TXT}", "{FIFO}", "/proc/version/x"]:
        add(Case(f"publish 1 --out {_show(v)}", ["publish", "1", "--out", v]))
    for v in ["0", "abc", "999", "-1", "1e309", B(INVALID)]:
        add(Case(f"publish {_show(v)}", ["publish", v, "--out", "{D}/gallery"], watch=["{D}/gallery"]))
    add(Case("publish 1 1 (twice)", ["publish", "1", "1", "--out", "{D}/gallery"], ok("a number named twice")))
    add(Case("publish 1 --out a folder holding a file of the user's", ["publish", "1", "--out", "{D}/mine"],
             expect="bad", keep=["{D}/mine/keep.txt"]))
    for v in ["0", "abc", "999", "2"]:
        add(Case(f"unpublish {_show(v)}", ["unpublish", v]))
    add(Case("unpublish (no numbers)", ["unpublish"]))

    # --- runs / resume / rerun / accept / discard
    for v in ["", "..", ".", "../..", "nosuch", B(INVALID), "x" * 300, "*", "{RUN_A}/../..", "/etc/passwd",
              "{RUN_A}\x1b[2J", "-1"]:
        add(Case(f"runs {_show(v)}", ["runs", v]))
    add(Case("runs --follow RUN_A with the service off", ["runs", "{RUN_A}", "--follow"]))
    add(Case("runs --json to /dev/full", ["runs", "--json"], stdout="full"))
    for v in ["", "..", "nosuch", B(INVALID), "{RUN_A}", "/etc"]:
        add(Case(f"resume {_show(v)}", ["resume", v]))
    for v in ["0", "-1", "abc", "999", "2", "99999999999999999999999"]:
        add(Case(f"rerun {_show(v)}", ["rerun", v]))
    add(Case("rerun 1 --model nosuch", ["rerun", "1", "--model", "nosuch"]))
    add(Case("rerun 1 --sampler bogus", ["rerun", "1", "--sampler", "bogus"]))
    add(Case("rerun 2 --model ''", ["rerun", "2", "--model", ""]))
    add(Case("rerun 2 --sampler bogus", ["rerun", "2", "--sampler", "bogus", "--model", "shapes"]))
    add(Case("rerun 1 --verify", ["rerun", "1", "--verify"], ok("experiment 1 made again")))
    for v in ["", "..", "nosuch", B(INVALID), "/etc"]:
        add(Case(f"accept {_show(v)} --title T", ["accept", v, "--title", "T"]))
    add(Case("accept RUN_B without --title", ["accept", "{RUN_B}"]))
    for v in ["", "0,,2", "99", "-1", "a", "0,0", "1e309", "0-1"]:
        add(Case(f"accept RUN_B --pick {_show(v)}", ["accept", "{RUN_B}", "--title", "Gamma", "--pick", v]))
    add(Case("accept RUN_A again without --again", ["accept", "{RUN_A}", "--title", "Gamma"]))
    for v in ["", " ", B(INVALID), f"T{ESC}", RLO, "a red circle", "a blue square"]:
        add(Case(f"accept RUN_B --title {_show(v)}", ["accept", "{RUN_B}", "--title", v]))
    for v in ["", "..", ".", "nosuch", "../..", B(INVALID), "/", "{RUN_A}/..", "*"]:
        add(Case(f"discard {_show(v)}", ["discard", v]))

    # --- doctor / init
    for v in ["{TXT}", "{MISSING}", "/dev/zero", "{FIFO}", "{DIR}", ""]:
        add(Case(f"doctor --journal {_show(v)}", ["doctor", "--check", "--journal", v]))
    add(Case("doctor --check", ["doctor", "--check"], ok("a healthy journal")))
    add(Case("doctor --gc", ["doctor", "--gc"], ok("a healthy journal")))
    for v in ["{TXT}", "/dev/zero", "{J}", "{D}/mine", "", "{FIFO}", B(b"{D}/new-\xff")]:
        expect = ok("a new folder named with raw bytes") if isinstance(v, bytes) else "bad"
        add(Case(f"init {_show(v)}", ["init", v], expect))

    # --- serve (only its refusals: a serve that starts hangs until the timeout and is killed)
    for v in ["bogus", "0.0.0.0:7860", "127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:-1", "[::1]:x", "", "localhost:abc",
              "256.1.1.1:80", B(INVALID)]:
        add(Case(f"serve --listen {_show(v)}", ["serve", "--listen", v], timeout=45))
    for v in ["0", "-1", "nan", "inf", "abc", "1e309"]:
        add(Case(f"serve --idle-timeout {_show(v)}", ["serve", "--idle-timeout", v], timeout=45))
    add(Case("serve --ray bogus", ["serve", "--ray", "bogus"], timeout=45))
    add(Case("serve --journal a file", ["serve", "--journal", "{TXT}"], timeout=45))
    add(Case("serve bogus-subcommand", ["serve", "bogus"], timeout=45))
    add(Case("serve status (none running)", ["serve", "status"], timeout=45))
    add(Case("serve stop (none running)", ["serve", "stop"], ok("stopping what is not running"), timeout=45))
    add(Case("serve with PROMPTISM_RUNTIME a file", ["serve", "status"], env={"PROMPTISM_RUNTIME": "{TXT}"}))
    add(Case("serve status with PROMPTISM_STATE /dev/null", ["serve", "status"], env={"PROMPTISM_STATE": "/dev/null"}))

    # --- tui
    add(Case("tui </dev/null | cat", [], shell="{P} tui </dev/null | cat; exit ${PIPESTATUS[0]}"))
    add(Case("tui --graphics bogus", ["tui", "--graphics", "bogus"]))
    add(Case("tui --model nosuch (no terminal)", ["tui", "--model", "nosuch"]))
    add(Case("tui with TERM=dumb", ["tui"], env={"TERM": "dumb"}))
    add(Case("no command, no terminal", [], ok("prints the help")))

    # --- environment and config
    for v in ["/nonexistent", "{DIR}", "/dev/zero", "{FIFO}", "", B(b"/tmp/\xff")]:
        expect = ok("an empty PROMPTISM_CONFIG is unset") if v == "" else "bad"
        add(Case(f"log with PROMPTISM_CONFIG={_show(v)}", ["log"], expect, env={"PROMPTISM_CONFIG": v}))
    for name in ["max_batch_text", "service_text", "model_int", "sampler_bogus", "unknown", "invalid",
                 "model_paths_int", "idle_nan", "pixels_zero", "co2_neg_inf", "max_queue_huge", "ray_space",
                 "model_empty", "badutf8"]:
        add(Case(f"log with config {name}", ["log"], env={"PROMPTISM_CONFIG": "{CONF}/" + name + ".toml"}))
    add(Case("generate with config clip = bogus", GEN, env={"PROMPTISM_CONFIG": "{CONF}/clip_bogus.toml"}))
    add(Case("generate (no --model) with config model = nosuch", ["generate", PROMPT, "--steps", "1"],
             env={"PROMPTISM_CONFIG": "{CONF}/model_nosuch.toml"}))
    add(Case("generate with config max_batch = 0", GEN, env={"PROMPTISM_CONFIG": "{CONF}/max_batch_zero.toml"}))
    for v in ["bogus", "", "OFF", "2", B(INVALID)]:
        e = {"PROMPTISM_SERVICE": v}
        add(Case(f"generate --steps 0 with PROMPTISM_SERVICE={_show(v)}", ["generate", PROMPT, "--steps", "0"],
                 "bad", env=e, service=v in ("",)))
        if v == "bogus":
            add(Case("log with PROMPTISM_SERVICE=bogus", ["log"], ok("log does not use the service"), env=e))
    for v in ["{TXT}", "/dev/null", "{FIFO}", B(b"/tmp/\xff-none")]:
        add(Case(f"log with PROMPTISM_JOURNAL={_show(v)}", ["log"], env={"PROMPTISM_JOURNAL": v}))
    add(Case("generate with PROMPTISM_JOURNAL a file", GEN, env={"PROMPTISM_JOURNAL": "{TXT}"}))
    add(Case("generate tiny with PROMPTISM_CACHE=/dev/null", ["generate", PROMPT, "--model", "tiny", "--steps", "1"],
             env={"PROMPTISM_CACHE": "/dev/null"}))
    add(Case("models with PROMPTISM_CACHE a file", ["models"], env={"PROMPTISM_CACHE": "{TXT}"},
             expect=ok("listing models needs no cache")))
    add(Case("models with config model_paths missing folder", ["models"],
             env={"PROMPTISM_CONFIG": "{CONF}/model_paths_int.toml"}))
    add(Case("samplers --json to a closed stdout", ["samplers", "--json"], stdout="closed", note=closed))
    add(Case("generate with HOME unset", GEN, env={"HOME": None, "XDG_DATA_HOME": None},
             expect=ok("the journal is named by PROMPTISM_JOURNAL"), want=SHAPES))
    add(Case("unknown command", ["bogus"]))
    add(Case("top-level --journal with invalid bytes then log", ["--journal", B(b"/tmp/\xff-none"), "log"]))
    add(Case("--version with extra args", ["--version", "extra"], ok("--version wins")))

    # --- with the service on (one is started by the first; all use the "svc" home)
    add(Case("service: generate --steps 0", ["generate", PROMPT, "--steps", "0"], service=True))
    add(Case("service: generate tiny 1 step", ["generate", PROMPT, "--model", "tiny", "--steps", "1"],
             ok("a valid run through the service"), want={"model": "tiny", "steps": 1}, service=True, timeout=300))
    add(Case("service: generate --model nosuch", ["generate", PROMPT, "--model", "nosuch", "--steps", "1"],
             service=True))
    add(Case("service: generate --init-image FIFO", GEN + ["--init-image", "{FIFO}"], service=True))
    add(Case("service: generate --size 8x8 shapes", GEN + ["--size", "8x8"], ok("8x8 is a multiple of 8"),
             want={"size": (8, 8)}, service=True))
    add(Case("service: generate --sampler bogus", GEN + ["--sampler", "bogus"], service=True))
    add(Case("service: grid --x model=shapes,nosuch", ["grid", "-p", PROMPT, "--x", "model=shapes,nosuch", "--steps",
                                                       "1"], service=True))
    add(Case("service: generate --journal a file", GEN + ["--journal", "{TXT}"], service=True))
    add(Case("service: resume nosuch", ["resume", "nosuch"], service=True))
    add(Case("service: runs --follow RUN_A", ["runs", "{RUN_A}", "--follow"], ok("a finished run: nothing to follow"),
             service=True))
    add(Case("service: rerun 999", ["rerun", "999"], service=True))
    add(Case("service: generate with stdout closed", GEN + ["--json"], service=True, stdout="closed",
             note="a closed stdout ends a command quietly with exit 1 (cli/__init__.py)"))
    return cases


def _show(value) -> str:
    """A value as a case's name shows it: prompt-free, control characters escaped, long ones cut."""
    if isinstance(value, bytes):
        text = repr(value.replace(MARK.encode(), b"<prompt>"))
    else:
        text = value.replace(MARK, "<prompt>")
        text = ascii(text) if (not text.isprintable() or text != text.strip() or not text) else text
    if len(text) > 50:
        text = f"{text[:30]}…({len(value)} {'bytes' if isinstance(value, bytes) else 'chars'})"
    return text


def expand(value, subst: dict[str, str]):
    if isinstance(value, bytes):
        for k, v in subst.items():
            value = value.replace(("{" + k + "}").encode(), os.fsencode(v))
        return value
    for k, v in subst.items():
        value = value.replace("{" + k + "}", v)
    return value


def feeder(path: Path, data: bytes, stop: threading.Event) -> None:
    """Write ``data`` into the FIFO at ``path`` once a reader opens it (polling, so that no thread is left blocked)."""
    while not stop.is_set():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            time.sleep(0.05)
            continue
        try:
            os.set_blocking(fd, True)
            os.write(fd, data)
        except OSError:
            pass
        finally:
            os.close(fd)
        return


@dataclass
class Result:
    case: str
    category: str
    rc: int | None
    seconds: float
    first_line: str
    detail: str = ""
    expect: str = ""


def exc_summary(text: str, mask: list[tuple[str, str]]) -> str:
    """The last exception a traceback in ``text`` names (its type and the line after it)."""
    lines = text.splitlines()
    at = [i for i, x in enumerate(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", x)]
    if not at:
        return ""
    i = at[-1]
    more = lines[i + 1].strip() if i + 1 < len(lines) and not lines[i].rstrip().endswith(")") else ""
    return first_line(lines[i] + (" / " + more if more and not more.startswith("File ") else ""), mask)


def first_line(text: str, mask: list[tuple[str, str]]) -> str:
    for line in text.splitlines():
        if line.strip():
            for a, b in mask:
                line = line.replace(a, b)
            line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)
            return line[:220] + ("…" if len(line) > 220 else "")
    return ""


def run_cli_case(i: int, case: Case, sb: Sandbox, fixtures: dict, base: dict, args) -> Result:
    d = sb.cases / f"c{i:03d}"
    d.mkdir()
    j = d / "j"
    shutil.copytree(base["BASE_J"], j, symlinks=True)
    (d / "mine").mkdir()
    (d / "mine" / "keep.txt").write_text("the user's own file\n")
    subst = {**fixtures, **base, "J": str(j), "D": str(d)}
    stop = threading.Event()
    threads = []
    for key, data in case.feed.items():
        fifo = d / f"feed-{key.lower()}"
        os.mkfifo(fifo)
        subst[key] = str(fifo)
        t = threading.Thread(target=feeder, args=(fifo, data, stop), daemon=True)
        t.start()
        threads.append(t)
    env = sb.env("svc" if case.service else "cli", service=case.service)
    env["PROMPTISM_JOURNAL"] = str(j)
    if case.args[:1] == ["serve"]:
        env["PROMPTISM_RUNTIME"] = str(d / "rt")  # each its own: no stale socket from the one before
    for k, v in case.env.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = os.fsdecode(expand(v, subst)) if isinstance(v, bytes) else expand(v, subst)
    env_b = {k.encode(): (os.fsencode(v) if isinstance(v, str) else v) for k, v in env.items()}
    if case.shell:
        argv = ["bash", "-c", case.shell.replace("{P}", " ".join(f"'{a}'" for a in CMD))]
    else:
        argv = CMD + [expand(a, subst) for a in case.args]
    journal = Path(expand(case.journal, subst)) if case.journal else j
    watched = [Path(os.fsdecode(expand(w, subst))) for w in case.watch]
    before = snapshot(journal)
    watch_before = [snapshot(w) for w in watched]
    log_file = Path(env["PROMPTISM_STATE"]) / "service.log"
    log_at = log_file.stat().st_size if log_file.exists() else 0
    stdout_target: Any = subprocess.PIPE
    closer = None
    if case.stdout == "closed":
        r, w = os.pipe()
        os.close(r)
        stdout_target, closer = w, w
    elif case.stdout == "full":
        stdout_target = closer = os.open("/dev/full", os.O_WRONLY)
    timeout = case.timeout or args.timeout
    if case.expect != "bad" or case.service:
        timeout = max(timeout, args.run_timeout)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout_target, stderr=subprocess.PIPE, env=env_b,
                            cwd=d, start_new_session=True)
    if closer is not None:
        os.close(closer)
    hung = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    seconds = time.monotonic() - started
    rc = None if hung else proc.returncode
    stop.set()
    out_t = (out or b"").decode("utf-8", "replace")
    err_t = (err or b"").decode("utf-8", "replace")
    both = out_t + "\n" + err_t
    detail: list[str] = []
    if case.service:
        settle(env_b)  # the service may still be running the case's job after the client has gone
    after = snapshot(journal)
    finished = finished_runs(journal, before, after)
    changed = changes(drop(before, finished), drop(after, finished))
    if finished and rc != 0:
        detail.append(f"{len(finished)} complete run(s) made before the failure (not counted as leftovers)")
    for run_id in sorted(set(new_runs(before, after)) - set(finished)) if rc != 0 else []:
        try:
            m = json.loads((journal / ".promptism" / "runs" / run_id / "manifest.json").read_text())
            made = sum(1 for c in m.get("cells", [])
                       if c.get("file") and (journal / ".promptism" / "runs" / run_id / c["file"]).exists())
            detail.append(f"run left {m.get('state')}, {made}/{len(m.get('cells', []))} images")
        except (OSError, ValueError, KeyError):
            pass
    watch_changed = [f"{w.name}: {', '.join(changes(b, snapshot(w)))}" for w, b in zip(watched, watch_before)
                     if changes(b, snapshot(w))]
    mask = [(MARK, "<prompt>"), (str(sb.root), "$T")]
    line = first_line(err_t, mask) or first_line(out_t, mask)
    log_tail = ""
    if case.service and log_file.exists():
        with open(log_file, "rb") as f:
            f.seek(log_at)
            log_tail = f.read().decode("utf-8", "replace")
    err_lines = [x for x in err_t.splitlines() if x.strip()]
    if hung and re.search(r"promptism service \(pid \d+\) on", err_t):
        cat = "ACCEPTED"
        detail.append(f"the service started (the value was taken); killed after {timeout:.0f} s")
    elif hung:
        cat = "HANG"
        detail.append(f"killed after {timeout:.0f} s")
        if "{FIFO}" in case.args:
            detail.append("a FIFO no one writes to: a read blocks, as `cat FIFO` does (pipes are also how <(…) "
                          "passes a file)")
    elif "Traceback" in both or "Exception ignored" in both:
        cat = "TRACEBACK"
        detail.append("exception: " + exc_summary(both, mask))
    elif "internal error" in both.lower():
        cat = "INTERNAL"
    elif MARK in log_tail:
        cat = "PROMPT_IN_LOG"
    elif [k for k in case.keep if not os.path.exists(expand(k, subst))]:
        cat = "DAMAGE"
        detail.append("removed: " + ", ".join(Path(expand(k, subst)).name for k in case.keep
                                              if not os.path.exists(expand(k, subst))))
    elif rc != 0 and (changed or watch_changed):
        cat = "LEFTOVER"
        detail += changed + watch_changed
    elif rc != 0:
        cat = "CLEAN" if len(err_lines) == 1 else "MULTILINE" if err_lines else "NO_MESSAGE"
        if len(err_lines) > 1:
            detail.append(f"{len(err_lines)} stderr lines, the last: {first_line(err_lines[-1], mask)}")
    else:
        diffs = silent_diffs(case, journal, before, after)
        if diffs:
            cat = "SILENT"
            detail += diffs
        else:
            cat = "ACCEPTED" if case.expect == "bad" else "OK"
            if cat == "ACCEPTED" and changed:
                detail.append("journal: " + "; ".join(changed))
    if "Traceback" in log_tail:
        detail.append("Traceback in the service log: " + exc_summary(log_tail, mask))
    if rc not in (None, 0) and not hung and cat in ("CLEAN", "MULTILINE") and before and after \
            and before.get("objects") != after.get("objects"):
        detail.append(f"{after['objects'] - before['objects']} new loose git objects")
    if case.note:
        detail.append(case.note)
    for t in threads:
        t.join(timeout=1)
    if cat in ("CLEAN", "OK") and not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return Result(case.name, cat, rc, seconds, line, "; ".join(detail), case.expect)


def silent_diffs(case: Case, journal: Path, before, after) -> list[str]:
    """What the new run recorded that differs from what the case asked for."""
    if not case.want:
        return []
    runs = new_runs(before, after)
    if not runs:
        return []  # (a command that makes no run: nothing to compare)
    manifest = json.loads((journal / ".promptism" / "runs" / runs[-1] / "manifest.json").read_text())
    params, spec = manifest.get("params", {}), manifest.get("spec", {})
    got = {"steps": params.get("steps"), "guidance": params.get("guidance"),
           "size": (params.get("width"), params.get("height")), "seeds": spec.get("seeds"),
           "prompt": spec.get("prompt"), "negative": spec.get("negative"), "sampler": params.get("sampler"),
           "model": manifest.get("model", {}).get("id"), "strength": params.get("strength")}
    said = []
    for key, wanted in case.want.items():
        have = got.get(key)
        if key == "size":
            have = tuple(have) if have else have
        if have != wanted:
            if key == "prompt":
                said.append("prompt recorded differs from the one given")
            else:
                said.append(f"{key}: asked {wanted!r}, recorded {have!r}")
    return said


# ------------------------------------------------------------------ HTTP


@dataclass
class Req:
    name: str
    method: str
    path: str
    body: bytes | None = None
    expect: str = "bad"
    headers: dict = field(default_factory=dict)
    via: str = "uds"  # or "tcp" (headers then carry the token unless auth is given)
    auth: Any = "token"  # "token", None (no header), or a raw header value (bytes)
    want: dict = field(default_factory=dict)  # A1111: what info must say
    wait_job: bool = True


def jb(obj) -> bytes:
    return json.dumps(obj).encode()


def http_cases(j: str, tcp_token: str) -> list[Req]:
    cases: list[Req] = []
    add = cases.append
    valid = {"kind": "grid", "journal": j, "spec": {"prompt": PROMPT, "seeds": [1]},
             "options": {"model": "shapes", "steps": 1}}

    def with_(path: list, value, base=None):
        body = json.loads(json.dumps(base or valid))
        node = body
        for k in path[:-1]:
            node = node.setdefault(k, {})
        if value is _DEL:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
        return body

    raw_bodies = [(b"", "empty body"), (b"{", "truncated JSON"), (b"NaN", "bare NaN"), (b"null", "null"), (b"[]", "[]"),
                  (b"1e309", "bare 1e309"), (b'"x"', "a string"), (b"\xff\xfe", "invalid UTF-8 bytes"),
                  (b"[" * 100000 + b"]" * 100000, "array nested 100000 deep"),
                  (b'{"a":' * 50000 + b"1" + b"}" * 50000, "object nested 50000 deep"),
                  (b'{"kind": "grid", "kind": "rerun"}', "duplicate keys"),
                  (b'\xef\xbb\xbf' + jb(valid), "a UTF-8 BOM before valid JSON")]
    for route in ("/v1/jobs", "/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
        for body, what in raw_bodies:
            expect = ok("JSON may start with a BOM (json.loads of bytes takes it)") if "BOM" in what else "bad"
            add(Req(f"POST {route}: {what}", "POST", route, body, expect))
    # /v1/jobs: typed fields
    vraw = jb(valid).decode()
    raw_jobs = [
        ('"steps": 1', '"steps": NaN', "options.steps NaN"), ('"steps": 1', '"steps": 1e309', "options.steps 1e309"),
        ('"steps": 1', '"steps": Infinity', "options.steps Infinity"),
        ('"seeds": [1]', '"seeds": [NaN]', "spec.seeds [NaN]"), ('"seeds": [1]', '"seeds": 1e309', "spec.seeds 1e309"),
        (f'"prompt": "{PROMPT}"', f'"prompt": "{PROMPT} \\ud800"', "spec.prompt with a lone surrogate"),
        (f'"prompt": "{PROMPT}"', f'"prompt": "{PROMPT} \\udfff\\ud800"', "spec.prompt reversed surrogate pair"),
        ('"model": "shapes"', '"model": "\\ud800"', "options.model lone surrogate"),
        (f'"journal": "{j}"', '"journal": "\\ud800"', "journal lone surrogate"),
        (f'"journal": "{j}"', f'"journal": "{j}\\u0000"', "journal with a NUL"),
        (f'"prompt": "{PROMPT}"', f'"prompt": "{PROMPT}\\u0000"', "spec.prompt with a NUL"),
    ]
    for old, new, what in raw_jobs:
        assert old in vraw, old
        expect = ok("a NUL is a Unicode character; a prompt may hold it") if what == "spec.prompt with a NUL" else "bad"
        add(Req(f"POST /v1/jobs: {what}", "POST", "/v1/jobs", vraw.replace(old, new).encode(), expect))
    typed = [
        (["kind"], 1), (["kind"], "bogus"), (["kind"], _DEL), (["journal"], 1), (["journal"], ""), (["journal"], "j"),
        (["journal"], "/nonexistent/j"), (["journal"], "/dev/zero"), (["journal"], "FIFO"), (["spec"], "x"),
        (["spec"], None), (["spec", "prompt"], 1), (["spec", "prompt"], MARK + "p" * 1_000_000),
        (["spec", "negative"], "n" * 1_000_000), (["spec", "seeds"], "abc"), (["spec", "seeds"], [1.5]),
        (["spec", "seeds"], "1-100000000"), (["spec", "seeds"], 10**30), (["spec", "seeds"], [-1]),
        (["spec", "seeds"], True), (["spec", "mode"], "bogus"),
        (["spec", "keywords"], [1]), (["spec", "keywords"], [{"text": "a", "weight": "x"}]),
        (["spec", "axes"], {"x": "steps=1-99999999999 (+1)"}), (["spec", "axes"], {"x": "steps=10-30 (+0)"}),
        (["spec", "axes"], {"w": "steps=1"}), (["spec", "wildcards"], "/dev/zero"), (["spec", "wildcards"], "FIFO"),
        (["spec", "params"], {"steps": "1"}), (["spec", "params"], {"steps": True}),
        (["spec", "params"], {"guidance": 1e308}), (["spec", "params"], {"size": "0x0"}),
        (["spec", "params"], {"bogus": 1}), (["spec", "bogus"], 1), (["bogus"], 1),
        (["options", "size"], [0, 0]), (["options", "size"], [10**9, 10**9]), (["options", "size"], [-8, 8]),
        (["options", "size"], "64x64"), (["options", "size"], [64, 64, 64]), (["options", "steps"], 10**30),
        (["options", "steps"], 0), (["options", "steps"], -1), (["options", "device"], "cuda:99"),
        (["options", "device"], "bogus"), (["options", "device"], ""), (["options", "model"], "nosuch"),
        (["options", "model"], ""), (["options", "model"], "../../etc"), (["options", "init_image"], "/dev/zero"),
        (["options", "init_image"], "FIFO"), (["options", "init_image"], "#0"), (["options", "clip"], "bogus"),
        (["options", "max_batch"], 0), (["options", "preview_every"], -1), (["options", "guided"], {"lr": "x"}),
        (["options", "animate_every"], 0), (["options", "sampler"], "bogus"), (["options", "strength"], 5),
        (["options", "allow_pickle"], "yes"), (["options"], None), (["create"], "yes"),
        (["number"], 0), (["number"], 10**30),
    ]
    for path, value in typed:
        label = "del" if value is _DEL else _show(json.dumps(value)) if not isinstance(value, str) else _show(value)
        add(Req(f"POST /v1/jobs: {'.'.join(path)} = {label}", "POST", "/v1/jobs", jb(with_(path, value))))
    add(Req("POST /v1/jobs: spec.max_cells = 1000000000", "POST", "/v1/jobs",
            jb(with_(["spec", "max_cells"], 10**9)), ok("a huge cap is still a cap")))
    add(Req("POST /v1/jobs: rerun without number", "POST", "/v1/jobs", jb({"kind": "rerun", "journal": j})))
    add(Req("POST /v1/jobs: rerun number 999", "POST", "/v1/jobs", jb({"kind": "rerun", "journal": j, "number": 999})))
    add(Req("POST /v1/jobs: resume run '../..'", "POST", "/v1/jobs", jb({"kind": "resume", "journal": j,
                                                                         "run": "../.."})))
    add(Req("POST /v1/jobs: resume run ''", "POST", "/v1/jobs", jb({"kind": "resume", "journal": j, "run": ""})))
    add(Req("POST /v1/jobs: resume run nosuch", "POST", "/v1/jobs", jb({"kind": "resume", "journal": j,
                                                                        "run": "nosuch"})))
    add(Req("POST /v1/jobs: text/plain content type", "POST", "/v1/jobs", jb(valid),
            ok("a JSON body labelled text/plain"), headers={"content-type": "text/plain"}))
    add(Req("POST /v1/jobs: valid tiny grid", "POST", "/v1/jobs", jb(with_(["options", "model"], "tiny")),
            ok("a valid job")))
    # job routes with bad ids and queries
    for jid in ["nosuch", "..%2F..", "%00", "%ED%A0%80", "x" * 10000, "%FF", "%2e%2e", "a%0Ab"]:
        for sub in ("", "/cancel", "/events"):
            method = "POST" if sub == "/cancel" else "GET"
            add(Req(f"{method} /v1/jobs/{_show(jid)}{sub}", method, f"/v1/jobs/{jid}{sub}"))
    for q in ["journal=%FF", "journal=%ED%A0%80", "journal=", "journal=" + "j" * 60000, "journal=/&journal=/x"]:
        add(Req(f"GET /v1/jobs?{_show(q)}", "GET", f"/v1/jobs?{q}", expect=ok("a listing filtered by journal")))
    add(Req("GET /v1/jobs/{id}/events of a real job without journal", "GET", "/v1/jobs/{JOB}/events"))
    add(Req("GET /v1/jobs/{id} of a real job without journal", "GET", "/v1/jobs/{JOB}",
            expect=ok("the job's public view")))
    add(Req("GET /v1/status with a body", "GET", "/v1/status", b"\xff" * 1000, ok("a GET body is ignored")))
    add(Req("GET /v1/ping with junk query", "GET", "/v1/ping?x=%FF&y=" + "y" * 10000, expect=ok("ignored query")))
    add(Req("PUT /v1/jobs", "PUT", "/v1/jobs", jb(valid)))
    add(Req("DELETE /v1/jobs/x", "DELETE", "/v1/jobs/x"))
    add(Req("GET /v1/stop", "GET", "/v1/stop"))
    # A1111 txt2img
    t_ok = {"prompt": PROMPT, "steps": 1, "override_settings": {"sd_model_checkpoint": "shapes"}}
    a1111_raw = [('"steps": 1', '"steps": NaN', "steps NaN"), ('"steps": 1', '"steps": 1e309', "steps 1e309"),
                 ('"steps": 1', '"steps": 1, "cfg_scale": NaN', "cfg_scale NaN"),
                 ('"steps": 1', '"steps": 1, "cfg_scale": -Infinity', "cfg_scale -Infinity"),
                 ('"steps": 1', '"steps": 1, "cfg_scale": 1e309', "cfg_scale 1e309"),
                 ('"steps": 1', '"steps": 1, "subseed_strength": NaN', "subseed_strength NaN"),
                 ('"steps": 1', '"steps": 1, "denoising_strength": NaN', "denoising_strength NaN (unused by txt2img)"),
                 (f'"prompt": "{PROMPT}"', f'"prompt": "{PROMPT}\\ud800"', "prompt lone surrogate"),
                 (f'"prompt": "{PROMPT}"', f'"prompt": "{PROMPT}", "negative_prompt": "\\udc80"',
                  "negative_prompt lone surrogate"),
                 ('"steps": 1', '"steps": 1, "sampler_name": "\\ud800"', "sampler_name lone surrogate"),
                 ('"shapes"', '"\\ud800"', "sd_model_checkpoint lone surrogate")]
    traw = jb(t_ok).decode()
    for old, new, what in a1111_raw:
        expect = "bad"
        if what == "denoising_strength NaN (unused by txt2img)":
            expect = "bad"
        add(Req(f"POST /sdapi/v1/txt2img: {what}", "POST", "/sdapi/v1/txt2img", traw.replace(old, new).encode(),
                expect))
    t_typed: list[tuple[str, Any, str, dict]] = [
        ("prompt", 1, "bad", {}), ("prompt", MARK + "p" * 1_000_000, "bad", {}),
        ("negative_prompt", "n" * 1_000_000, "bad", {}), ("steps", "1", ok("A1111 takes '1' for 1"), {"steps": 1}),
        ("steps", 0, "bad", {}), ("steps", 10**9, "bad", {}), ("steps", 10**30, "bad", {}), ("steps", 1.5, "bad", {}),
        ("steps", True, "bad", {}), ("cfg_scale", "NaN", "bad", {}), ("cfg_scale", -1, "bad", {}),
        ("cfg_scale", 1e308, "bad", {}), ("seed", -2, "bad", {}), ("seed", 2**64, "bad", {}), ("seed", 1.5, "bad", {}),
        ("seed", "1e3", "bad", {}), ("seed", 4294967295, ok("the largest seed"), {"seed": 4294967295}),
        ("width", 0, "bad", {}), ("width", 7, "bad", {}), ("width", 10**9, "bad", {}),
        ("batch_size", 0, "bad", {}), ("batch_size", 1000, "bad", {}), ("batch_size", 10**30, "bad", {}),
        ("n_iter", 10**30, "bad", {}), ("n_iter", -1, "bad", {}), ("sampler_name", "bogus", "bad", {}),
        ("sampler_name", "Euler a", ok("a listed sampler"), {"sampler_name": "Euler a"}),
        ("sampler_index", "bogus", "bad", {}), ("scheduler", "bogus", "bad", {}),
        ("scheduler", "Karras", "bad", {}), ("override_settings", "x", "bad", {}),
        ("override_settings", {"sd_model_checkpoint": ""}, "bad", {}),
        ("override_settings", {"sd_model_checkpoint": "nosuch"}, "bad", {}),
        ("override_settings", {"sd_model_checkpoint": 123}, "bad", {}),
        ("override_settings", {"sd_model_checkpoint": "vqgan-clip:shapes+shapes-clip"}, "bad", {}),
        ("override_settings", {"sd_model_checkpoint": "shapes", "CLIP_stop_at_last_layers": 2},
         ok("an override promptism does not apply, named in info"), {}),
        ("styles", ["a"], "bad", {}), ("enable_hr", True, "bad", {}), ("restore_faces", True, "bad", {}),
        ("tiling", True, "bad", {}), ("alwayson_scripts", {"x": {}}, "bad", {}), ("script_name", "x", "bad", {}),
        ("bogus_field", 1, ok("A1111 ignores unknown fields"), {}),
        ("prompt", f"{MARK}{ESC}", ok("control characters in a private prompt"), {}),
        ("prompt", f"{MARK}\u0000", ok("a NUL is a Unicode character"), {}),
        ("send_images", "maybe", "bad", {}), ("subseed_strength", 0.5, ok("named in info as not applied"), {}),
    ]
    for key, value, expect, want in t_typed:
        body = dict(t_ok, **{key: value})
        add(Req(f"POST /sdapi/v1/txt2img: {key} = {_show(json.dumps(value))}", "POST", "/sdapi/v1/txt2img", jb(body),
                expect, want=want))
    add(Req("POST /sdapi/v1/txt2img: width without height", "POST", "/sdapi/v1/txt2img",
            jb(dict(t_ok, width=64))))
    add(Req("POST /sdapi/v1/txt2img: 99992x99992", "POST", "/sdapi/v1/txt2img",
            jb(dict(t_ok, width=99992, height=99992))))
    add(Req("POST /sdapi/v1/txt2img: 8x8", "POST", "/sdapi/v1/txt2img", jb(dict(t_ok, width=8, height=8)),
            ok("8x8 is a multiple of 8"), want={"width": 8, "height": 8}))
    add(Req("POST /sdapi/v1/txt2img: alwayson_scripts nested 5000 deep", "POST", "/sdapi/v1/txt2img",
            traw[:-1].encode() + b', "alwayson_scripts": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"))
    add(Req("POST /sdapi/v1/txt2img: missing everything ({})", "POST", "/sdapi/v1/txt2img",
            jb({"steps": 1, "override_settings": {"sd_model_checkpoint": "shapes"}}),
            ok("every field has a default (an empty prompt)")))
    # img2img
    good = base64.b64encode(png_bytes()).decode()
    i_ok = dict(t_ok, init_images=[good])
    for what, images, expect in [
        ("init_images missing", _DEL, "bad"), ("init_images []", [], "bad"), ("init_images not base64", ["!!!"], "bad"),
        ("init_images bad data URL", ["data:image/png;base64,!!!"], "bad"), ("init_images ['']", [""], "bad"),
        ("init_images text", [base64.b64encode(b"hello").decode()], "bad"),
        ("init_images truncated PNG", [base64.b64encode(png_bytes()[:60]).decode()], "bad"),
        ("init_images bomb PNG 100000x100000", [base64.b64encode(declared_png(100000, 100000)).decode()], "bad"),
        ("init_images two images", [good, good], "bad"), ("init_images [123]", [123], "bad"),
        ("init_images 'x'", "x", "bad"), ("init_images base64 with whitespace", [good[:20] + "\n" + good[20:]], "bad"),
        ("init_images 5 MB of base64 zeros", [base64.b64encode(b"\0" * 5_000_000).decode()], "bad"),
        ("a valid small PNG", [good], ok("a valid img2img")),
        ("a data URL PNG", ["data:image/png;base64," + good], ok("webuiapi sends data URLs")),
    ]:
        body = dict(i_ok)
        if images is _DEL:
            body.pop("init_images")
        else:
            body["init_images"] = images
        add(Req(f"POST /sdapi/v1/img2img: {what}", "POST", "/sdapi/v1/img2img", jb(body), expect))
    for key, value in [("denoising_strength", 0), ("denoising_strength", 2), ("denoising_strength", "x"),
                       ("mask", "x"), ("resize_mode", 1), ("include_init_images", "x")]:
        add(Req(f"POST /sdapi/v1/img2img: {key} = {json.dumps(value)}", "POST", "/sdapi/v1/img2img",
                jb(dict(i_ok, **{key: value}))))
    add(Req("POST /sdapi/v1/img2img: denoising_strength NaN", "POST", "/sdapi/v1/img2img",
            jb(i_ok).replace(b'"steps": 1', b'"steps": 1, "denoising_strength": NaN')))
    # other A1111 routes
    for path, method, body, expect in [
        ("/sdapi/v1/options", "POST", jb({"sd_model_checkpoint": "nosuch"}), "bad"),
        ("/sdapi/v1/options", "GET", None, ok("the options")), ("/sdapi/v1/options?x=%FF", "GET", None, ok("ignored")),
        ("/sdapi/v1/progress?skip_current_image=abc", "GET", None, "bad"),
        ("/sdapi/v1/progress?skip_current_image=%FF", "GET", None, "bad"),
        ("/sdapi/v1/interrupt", "POST", b"\xff" * 100, ok("interrupt takes no body")),
        ("/sdapi/v1/sd-models", "POST", None, "bad"), ("/sdapi/v1/samplers?x=1", "GET", None, ok("a listing")),
        ("/sdapi/v1/schedulers", "DELETE", None, "bad"), ("/sdapi/v1/sd-models", "GET", None, ok("a listing")),
        ("/sdapi/v1/txt2img", "GET", None, "bad"), ("/sdapi/v1/bogus", "POST", b"{}", "bad"),
    ]:
        add(Req(f"{method} {path}{' with a body' if body else ''}", method, path, body, expect))
    # the TCP port: authorization
    for what, header in [("no header", None), ("empty", b""), ("Bearer", b"Bearer"), ("Bearer empty", b"Bearer "),
                         ("Bearer wrong", b"Bearer wrong"), ("Basic \\xff\\xfe", b"Basic \xff\xfe"),
                         ("Basic !!!", b"Basic !!!"), ("Basic no colon", b"Basic " + base64.b64encode(b"user")),
                         ("Basic invalid UTF-8", b"Basic " + base64.b64encode(b"\xff:\xfe")),
                         ("Basic wrong password", b"Basic " + base64.b64encode(b"u:wrong")),
                         ("Digest", b"Digest x"), ("Bearer 100 kB", b"Bearer " + b"x" * 100_000),
                         ("Bearer token + space (OWS)", ("Bearer " + tcp_token + " ").encode()),
                         ("Bearer token\\x00", ("Bearer " + tcp_token).encode() + b"\x00"),
                         ("Bearer token\\xff", ("Bearer " + tcp_token).encode() + b"\xff")]:
        for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/stop"), ("POST", "/sdapi/v1/txt2img"),
                             ("GET", "/sdapi/v1/options")]:
            if path == "/v1/stop" and tcp_token.encode() in (header or b""):
                continue  # (a header the server might take: it would stop the service)
            body = jb(t_ok) if path.endswith("txt2img") else None
            expect = ok("HTTP strips a header value's trailing whitespace: the token is right") if "OWS" in what \
                else "bad"
            add(Req(f"TCP {method} {path}: Authorization {what}", method, path, body, expect, via="tcp", auth=header))
    add(Req("TCP GET /v1/jobs: lowercase bearer", "GET", "/v1/jobs", via="tcp",
            auth=("bearer " + tcp_token).encode(), expect=ok("schemes are case-insensitive")))
    add(Req("TCP GET /v1/jobs: Basic with the token", "GET", "/v1/jobs", via="tcp",
            auth=b"Basic " + base64.b64encode(b"anyone:" + tcp_token.encode()), expect=ok("the documented Basic form")))
    add(Req("TCP GET /v1/jobs?journal=J (a TCP client asks for the spec)", "GET", f"/v1/jobs?journal={j}", via="tcp",
            expect=ok("a listing; spec must stay hidden")))
    add(Req("TCP GET /v1/jobs/{id}/events?journal=J", "GET", f"/v1/jobs/{{JOB}}/events?journal={j}", via="tcp"))
    add(Req("TCP POST /v1/jobs: valid job from a TCP client", "POST", "/v1/jobs", jb(valid), via="tcp",
            expect=ok("a TCP client may submit")))
    return cases


class _Del:
    pass


_DEL = _Del()


class RawResponse:
    """An HTTP/1.1 answer read off a raw socket (for headers httpx will not send: NUL, trailing spaces, 0xFF)."""

    def __init__(self, data: bytes):
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status_code = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
        if headers.get(b"transfer-encoding") == b"chunked":
            out, rest = b"", body
            while rest:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size or b"0", 16)
                if n == 0:
                    break
                out, rest = out + rest[:n], rest[n + 2:]
            body = out
        self.content = body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def raw_request(port: int, method: str, path: str, headers: dict, body: bytes | None, timeout: float) -> RawResponse:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n".encode()
    for k, v in headers.items():
        head += k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n"
    if body is not None:
        head += b"Content-Length: %d\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + b"\r\n" + (body or b""))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data:
        raise ConnectionError("the server closed the connection without an answer")
    return RawResponse(data)


def ok_body(resp) -> bool:
    try:
        body = resp.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    error, detail = body.get("error"), body.get("detail")
    return isinstance(error, str) and bool(error) or isinstance(detail, (list, str)) and bool(detail)


class Service:
    def __init__(self, sb: Sandbox, journal: Path, port: int):
        self.sb, self.journal, self.port = sb, journal, port
        self.env = sb.env("http", service=True)
        self.log = sb.root / "h-http" / "serve.log"
        self.proc: subprocess.Popen | None = None
        self.token = ""

    def start(self) -> None:
        import httpx

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(CMD + ["serve", "--journal", str(self.journal), "--listen",
                                                f"127.0.0.1:{self.port}", "--idle-timeout", "120"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        sock = Path(self.env["PROMPTISM_RUNTIME"]) / "service.sock"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the service ended at start: {self.log.read_text()[-2000:]}")
            if sock.exists():
                try:
                    with self.uds_client(10) as c:
                        if c.get("/v1/ping").status_code == 200:
                            break
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        else:
            raise SystemExit("the service did not come up")
        self.token = (Path(self.env["PROMPTISM_STATE"]) / "token").read_text().strip()

    def uds_client(self, timeout: float):
        import httpx

        sock = Path(self.env["PROMPTISM_RUNTIME"]) / "service.sock"
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://promptism", timeout=timeout)

    def tcp_client(self, timeout: float):
        import httpx

        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, at: int) -> str:
        with open(self.log, "rb") as f:
            f.seek(at)
            return f.read().decode("utf-8", "replace")


def run_http(sb: Sandbox, base: dict, args) -> tuple[list[Result], dict]:
    j = sb.root / "http-j"
    shutil.copytree(base["BASE_J"], j, symlinks=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    svc = Service(sb, j, port)
    results: list[Result] = []
    health: dict = {}
    fifo = str(sb.fx / "fifo")
    try:
        svc.start()
        reqs = http_cases(str(j), svc.token)
        if args.only:
            reqs = [r for r in reqs if any(o in r.name for o in args.only)]
        last_job = ""
        with svc.uds_client(args.http_timeout) as uds, svc.tcp_client(args.http_timeout) as tcp:
            # a job to point the id routes at
            r = uds.post("/v1/jobs", json={"kind": "grid", "journal": str(j), "spec": {"prompt": PROMPT, "seeds": [1]},
                                           "options": {"model": "shapes", "steps": 1}})
            last_job = r.json().get("id", "") if r.status_code == 201 else ""
            wait_job(uds, last_job, str(j), 300)
            for i, req in enumerate(reqs):
                if not svc.alive():
                    svc.start()
                res = run_http_case(req, uds, tcp, svc, str(j), fifo, last_job, args)
                results.append(res)
                print(f"  http {i + 1}/{len(reqs)} {res.category:<13} {req.name[:90]}", flush=True)
                if res.category == "DIED":
                    svc.stop()
                    svc.start()
            health = health_check(uds, svc, str(j))
    finally:
        svc.stop()
    health["service stopped"] = not svc.alive()
    return results, health


def wait_job(client, job_id: str, journal: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    info: dict = {}
    while job_id and time.monotonic() < deadline:
        r = client.get(f"/v1/jobs/{job_id}", params={"journal": journal})
        info = r.json() if r.status_code == 200 else {}
        if info.get("state") in ("finished", "cancelled", "failed", "interrupted"):
            return info
        time.sleep(0.3)
    if job_id and info.get("state") not in ("finished", "cancelled", "failed", "interrupted"):
        client.post(f"/v1/jobs/{job_id}/cancel", params={"journal": journal})
        info["timed_out"] = True
    return info


def run_http_case(req: Req, uds, tcp, svc: Service, journal: str, fifo: str, last_job: str, args) -> Result:
    import httpx

    body = req.body
    if body is not None:
        body = body.replace(b'"FIFO"', json.dumps(fifo).encode())
    path = req.path.replace("{JOB}", last_job)
    headers = {"content-type": "application/json"} if body is not None else {}
    headers.update(req.headers)
    client = uds
    if req.via == "tcp":
        client = tcp
        if req.auth == "token":
            headers["authorization"] = f"Bearer {svc.token}"
        elif req.auth is not None:
            headers["authorization"] = req.auth
    at = svc.log_size()
    started = time.monotonic()
    detail: list[str] = []
    resp = None
    hung = False
    client_error = ""
    try:
        if req.via == "tcp" and req.auth != "token":
            resp = raw_request(svc.port, req.method, path, headers, body, args.http_timeout)
        else:
            resp = client.request(req.method, path, content=body, headers=headers)
    except (httpx.TimeoutException, socket.timeout):
        hung = True
    except OSError as exc:  # (raw) reset or closed with no answer
        client_error = f"{type(exc).__name__}: {exc}"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError) as exc:  # the client would not send it (or
        # the server hung up)
        client_error = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    job_end: dict = {}
    status = resp.status_code if resp is not None else None
    text = resp.text if resp is not None else client_error
    job_id = ""
    if resp is not None and status == 201 and req.path == "/v1/jobs":
        try:
            job_id = resp.json().get("id", "")
        except ValueError:
            job_id = ""
        if job_id:
            job_end = wait_job(uds, job_id, journal, args.http_timeout)
    time.sleep(0.05)
    log = svc.log_since(at)
    # where a prompt must not be seen: the log, and the listings of anyone but the job's owner
    leaks = []
    if MARK in log:
        leaks.append("service log")
    for name, c, p in [("GET /v1/jobs (no journal)", uds, "/v1/jobs"), ("GET /v1/status", uds, "/v1/status"),
                       ("GET /sdapi/v1/progress", uds, "/sdapi/v1/progress"),
                       ("TCP GET /v1/jobs", tcp, "/v1/jobs"),
                       *([("GET /v1/jobs/ID (no journal)", uds, f"/v1/jobs/{job_id}"),
                          ("TCP GET /v1/jobs/ID", tcp, f"/v1/jobs/{job_id}")] if job_id else [])]:
        try:
            h = {"authorization": f"Bearer {svc.token}"} if c is tcp else {}
            r = c.get(p, headers=h)
            if MARK in r.text:
                leaks.append(name)
        except httpx.HTTPError:
            pass
    if req.via == "tcp" and resp is not None and req.path != "/v1/jobs" and MARK in (text or "") \
            and not req.path.startswith("/sdapi/v1/txt2img"):
        leaks.append("the TCP response")
    mask = [(MARK, "<prompt>")]
    line = first_line(text or "", mask)
    if not svc.alive():
        cat = "DIED"
        detail.append("the service process ended: " + first_line(log.splitlines()[-1] if log.strip() else "", mask))
    elif hung:
        cat = "HANG"
        detail.append(f"no answer in {args.http_timeout:.0f} s")
    elif "Traceback" in log or "Exception in ASGI" in log:
        cat = "TRACEBACK"
        detail.append("log: " + exc_summary(log, mask))
    elif leaks:
        cat = "PROMPT_IN_LOG"
        detail.append("marker in: " + ", ".join(leaks))
    elif resp is None:
        cat = "DROPPED"  # the server closed the connection without an answer
        detail.append(client_error[:160])
    elif status >= 500:
        cat = "5XX"
    elif status >= 400:
        cat = "CLEAN" if ok_body(resp) else "UNSTRUCTURED"
    else:
        cat = "ACCEPTED" if req.expect == "bad" else "OK"
        if job_end:
            state = job_end.get("state")
            detail.append(f"job {state}" + (f" ({job_end.get('error_type')}): "
                                            f"{first_line(job_end.get('error') or '', mask)}" if state == "failed" else ""))
            if job_end.get("error_type") == "internal":
                cat = "INTERNAL"
            elif state == "failed" and req.expect == "bad":
                cat = "REFUSED_LATE"
                if job_end.get("error_type") == "machine":
                    detail.append("error_type 'machine' for the request's own fault")
            if job_end.get("timed_out"):
                cat = "HANG"
                detail.append("job still running: cancelled")
        if req.want and req.path.endswith("2img"):
            try:
                info = json.loads(resp.json()["info"])
                diffs = [f"{k}: asked {v!r}, applied {info.get(k)!r}" for k, v in req.want.items() if info.get(k) != v]
            except (ValueError, KeyError, TypeError):
                diffs = ["no info in the answer"]
            if diffs:
                cat = "SILENT"
                detail += diffs
    if status is not None:
        detail.insert(0, f"HTTP {status}")
    return Result(req.name, cat, status, seconds, line, "; ".join(detail), req.expect)


def health_check(uds, svc: Service, journal: str) -> dict:
    out: dict = {"alive before the check": svc.alive()}
    started = time.monotonic()
    r = uds.post("/sdapi/v1/txt2img", json={"prompt": PROMPT, "steps": 1,
                                            "override_settings": {"sd_model_checkpoint": "shapes"}})
    images = len(r.json().get("images") or []) if r.status_code == 200 else 0
    out["txt2img shapes 1 step"] = f"HTTP {r.status_code}, {images} image(s), {time.monotonic() - started:.1f} s"
    started = time.monotonic()
    r = uds.post("/v1/jobs", json={"kind": "grid", "journal": journal, "spec": {"prompt": PROMPT, "seeds": [1]},
                                   "options": {"model": "tiny", "steps": 1}})
    info = wait_job(uds, r.json().get("id", ""), journal, 300) if r.status_code == 201 else {}
    out["/v1/jobs tiny 1 step"] = (f"HTTP {r.status_code}, job {info.get('state')}, "
                                   f"{time.monotonic() - started:.1f} s")
    return out


# ------------------------------------------------------------------ main


def stop_cli_service(sb: Sandbox) -> str:
    env = sb.env("svc", service=True)
    pid_file = Path(env["PROMPTISM_RUNTIME"]) / "service.pid"
    if not pid_file.exists():
        return "none was started"
    pid = int(pid_file.read_text().strip() or 0)
    run(CMD + ["serve", "stop"], env, timeout=120)
    for _ in range(60):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"pid {pid} stopped by `serve stop`"
        time.sleep(0.5)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return f"pid {pid} killed"


def table(results: list[Result], order: list[str]) -> str:
    counts = Counter(r.category for r in results)
    cats = order + sorted(set(counts) - set(order))
    return "\n".join(f"  {c:<14}{counts.get(c, 0):>5}" for c in cats) + f"\n  {'total':<14}{len(results):>5}"


def problems(results: list[Result]) -> str:
    lines = []
    for r in results:
        if r.category in ("CLEAN", "OK"):
            continue
        lines.append(f"  [{r.category}] {r.case}  (rc {r.rc}, {r.seconds:.1f} s)")
        if r.first_line:
            lines.append(f"      → {r.first_line}")
        if r.detail:
            lines.append(f"      · {r.detail}")
        if r.category == "ACCEPTED":
            pass
    return "\n".join(lines) or "  (none)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["cli", "http", "all"], default="all")
    parser.add_argument("--only", action="append", default=[],
                        help="run only the cases whose name contains this (repeat for several)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a refusal may take (else HANG)")
    parser.add_argument("--run-timeout", type=float, default=180.0, help="seconds a case that runs a model may take")
    parser.add_argument("--http-timeout", type=float, default=180.0)
    parser.add_argument("--memory-gb", type=float, default=8.0)
    parser.add_argument("--keep", action="store_true", help="keep the sandbox (else only the problem cases' folders)")
    parser.add_argument("--json-out", default="", help="also write every result here as JSON")
    args = parser.parse_args()
    if args.memory_gb:
        limit = int(args.memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    root = Path(tempfile.mkdtemp(prefix="ptally-", dir="/tmp"))
    sb = Sandbox(root)
    t0 = time.monotonic()
    print(f"sandbox {root}; load {os.getloadavg()[0]:.1f}", flush=True)
    fixtures = make_fixtures(sb)
    base = make_base_journal(sb, fixtures)
    print(f"base journal ready ({time.monotonic() - t0:.0f} s)", flush=True)
    cli_results: list[Result] = []
    http_results: list[Result] = []
    health: dict = {}
    cli_service = "not used"
    try:
        if args.part in ("cli", "all"):
            cases = cli_cases()
            if args.only:
                cases = [c for c in cases if any(o in c.name for o in args.only)]
            for i, case in enumerate(cases):
                res = run_cli_case(i, case, sb, fixtures, base, args)
                cli_results.append(res)
                print(f"  cli {i + 1}/{len(cases)} {res.category:<13} {res.seconds:5.1f}s {case.name[:90]}", flush=True)
    finally:
        cli_service = stop_cli_service(sb)
    if args.part in ("http", "all"):
        http_results, health = run_http(sb, base, args)
    elapsed = time.monotonic() - t0
    report = [f"\n=== bad-input tally ({elapsed / 60:.1f} min, load {os.getloadavg()[0]:.1f}, sandbox {root})"]
    if cli_results:
        report += ["\nCLI outcomes:", table(cli_results, CLI_ORDER), f"  (service started by the CLI cases: "
                                                                      f"{cli_service})",
                   "\nCLI cases not CLEAN/OK:", problems(cli_results),
                   "\nCLI cases OK (exit 0 on acceptable input):",
                   "\n".join(f"  {r.case} — {r.expect[4:]}" for r in cli_results if r.category == "OK") or "  (none)"]
    if http_results:
        report += ["\nHTTP outcomes:", table(http_results, HTTP_ORDER), "\nHTTP cases not CLEAN/OK:",
                   problems(http_results),
                   "\nHTTP cases OK:", "\n".join(f"  {r.case} — {r.expect[4:]}" for r in http_results
                                                 if r.category == "OK") or "  (none)",
                   "\nService health after the HTTP cases:", "\n".join(f"  {k}: {v}" for k, v in health.items())]
    print("\n".join(report))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"cli": [r.__dict__ for r in cli_results],
                                                   "http": [r.__dict__ for r in http_results], "health": health,
                                                   "cli_service": cli_service}, indent=1, ensure_ascii=False))
    if not args.keep:
        for d in sb.cases.iterdir() if sb.cases.exists() else []:
            pass  # problem cases' folders are kept for a look; the rest were removed as they ended


if __name__ == "__main__":
    main()
