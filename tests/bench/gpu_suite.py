"""The GPU benchmark suite: the one script to run on a lent GPU machine. It installs the carried wheels, builds the
SD-1.5-shaped pipeline on the GPU and runs every benchmark variant of issue 15, writing all numbers, the machine's
GPU and the logs to --out — within a time budget, each step skipped when too little of it is left.

    bash tests/bench/gpu_wheels.sh                                  # here, once: the wheels the machine lacks → .whl
    PYTHONUNBUFFERED=1 python3 tests/bench/gpu_suite.py --out $OUT  # there: device run, carry [".whl"], timeout_s 600
    python tests/bench/gpu_suite.py --dry --out /tmp/suite          # a dry run on a CPU (see below)

Steps, in this order (``--parts sdxl,compile`` runs some; grid, cold and compile run on the folder that sd15
builds, which is then built first), with how long each should take on an H100 (estimated from the issue's timings,
not measured):
  sd15     build the SD-1.5-shaped folder (sd15_shaped.py) on the GPU                                      ~40 s
  grid     grid_throughput.py on it: 512², 20 steps, --max-batch 20,8, best of 2 (naive, batched, runner) ~110 s
  cold     service_latency.py --cold-only: `promptism generate --local` (one 512² image, 20 steps) to its
           first step, twice (after sd15's build imported, so byte-compiled, the carried packages)    ~40 s
  sdxl     build the SDXL-shaped folder, then grid_throughput.py at 1024², 20 steps, --max-batch 8, once  ~170 s
  compile  grid_throughput.py --compile --no-naive at --max-batch 20 (one batch shape: one compile; needs
           workshop.runner.speedups)                                                                  ~120 s
  null     grid_throughput.py --null at 0 and 155 ms per image (noise pixels: the largest PNGs), and 0 ms
           with smooth pixels (the slowest to encode)                                                 ~60 s
All of them take more than one 600 s call: the first call does what fits (the JSON says which were skipped), a second
one the rest (e.g. ``--parts compile,null``).
Writes OUT/gpu_suite.json (rewritten after each step, so a run cut short keeps what it measured) and OUT/gpu_suite.log
(each command's output). The default budget, 540 s, leaves a 600 s device call time to write them back.

``--dry`` proves the suite end to end on a CPU: the small shaped models (every block type, tiny widths) at 32², 2
steps, one repeat, the wheels not installed (the current environment's packages are used).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "tests" / "bench"
SITE = Path("/tmp/site")  # where the carried wheels are installed
RESERVE_S = 10  # kept back for writing the results


@dataclass(frozen=True)
class Step:
    name: str
    needs_s: int  # about how long it takes on an H100: it is skipped when less is left
    commands: list[list[str]]  # bench script and its arguments, each run with this interpreter


def steps(work: Path, dry: bool) -> list[Step]:
    """The suite's steps, for a GPU run or (``dry``) a quick one on the CPU with the small shapes."""
    sd15, sdxl = str(work / "sd15"), str(work / "sdxl")
    small = ["--small", "--device", "cpu"] if dry else []
    sd, xl = (32, 32) if dry else (512, 1024)
    n, repeat = ("2", "1") if dry else ("20", "2")
    grid = ["grid_throughput.py", "--steps", n, "--json"]
    return [
        Step("sd15", 60, [["sd15_shaped.py", sd15, *small]]),
        Step("grid", 150, [[*grid, "--model", sd15, "--size", str(sd), "--max-batch", "20,8", "--repeat", repeat]]),
        Step("cold", 60, [["service_latency.py", "--cold-only", "--model", sd15, "--steps", n, "--size", f"{sd}x{sd}",
                           "--repeat", "2", "--json"]]),
        Step("sdxl", 200, [["sdxl_shaped.py", sdxl, *small],
                           [*grid, "--model", sdxl, "--size", str(xl), "--max-batch", "8", "--repeat", "1"]]),
        Step("compile", 150, [[*grid, "--model", sd15, "--size", str(sd), "--max-batch", "20", "--repeat", repeat,
                               "--compile", "--no-naive"]]),
        Step("null", 90, [["grid_throughput.py", "--null", "--null-ms-per-image", str(ms), "--null-content", content,
                           "--size", "512", "--max-batch", "20,8", "--repeat", "1" if dry else "3", "--json"]
                          for ms, content in ((0, "noise"), (155, "noise"), (0, "smooth"))]),
    ]


class Suite:
    def __init__(self, out: Path, work: Path, budget_s: float, dry: bool):
        self.out, self.work, self.dry = out, work, dry
        self.deadline = time.monotonic() + budget_s
        self.log = (out / "gpu_suite.log").open("a", encoding="utf-8")
        self.results: dict = {"dry": dry, "budget_s": budget_s, "steps": {}}
        (work / "config.toml").touch()  # no settings (a $PROMPTISM_CONFIG must name a file that is there)
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "PROMPTISM_SERVICE": "off", "PYTHONUNBUFFERED": "1",
                    "PROMPTISM_CACHE": str(work / "cache"), "PROMPTISM_CONFIG": str(work / "config.toml"),
                    "PROMPTISM_RUNTIME": str(work / "runtime"), "PROMPTISM_STATE": str(work / "state"),
                    "PYTHONPATH": os.pathsep.join([*([str(SITE)] if SITE.is_dir() else []), str(REPO),
                                                   *filter(None, [os.environ.get("PYTHONPATH")])])}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        (self.out / "gpu_suite.json").write_text(json.dumps(self.results, indent=1) + "\n", encoding="utf-8")

    def shell(self, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run ``argv`` (in its own process group, killed whole at ``timeout``); its exit status and output."""
        self.log.write(f"\n$ {' '.join(argv)}\n")
        self.log.flush()
        with subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) as proc:
            try:
                output, _ = proc.communicate(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
                output += f"\n(killed after {timeout:.0f} s: the suite's time ran out)"
                proc.returncode = 124
        self.log.write(output)
        self.log.flush()
        return proc.returncode, output

    def install(self) -> None:
        wheels = sorted((REPO / ".whl").glob("*.whl"))
        if self.dry or not wheels:
            self.results["install"] = "skipped (dry run)" if self.dry else "no .whl folder: nothing installed"
            return
        start = time.monotonic()
        code, output = self.shell([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                                   "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, wheels)], self.left())
        if code != 0:
            raise SystemExit(f"installing the carried wheels failed ({code}): {output.strip().splitlines()[-1:]}")
        self.env["PYTHONPATH"] = os.pathsep.join([str(SITE), self.env["PYTHONPATH"]])
        self.results["install"] = f"{len(wheels)} wheels in {time.monotonic() - start:.1f} s"

    def machine(self) -> None:
        probe = ("import json, shutil, sys, torch, importlib.metadata as m\n"
                 "v = lambda n: m.version(n) if any(True for _ in m.distributions(name=n)) else None\n"
                 "print(json.dumps({'python': sys.version.split()[0], 'torch': torch.__version__, 'cuda': torch.version.cuda,"
                 " 'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None, 'cpus': __import__('os').cpu_count(),"
                 " 'git': shutil.which('git'), **{n: v(n) for n in ('diffusers', 'transformers', 'huggingface_hub', 'triton')}}))")
        code, output = self.shell([sys.executable, "-c", probe], 60)
        facts = _last_json(output) if code == 0 else {"error": output.strip()[-500:]}
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True) if shutil.which("nvidia-smi") else None
        facts["nvidia_smi_L"] = smi.stdout.strip() if smi else None
        self.results["machine"] = facts
        if not self.dry and not facts.get("gpu"):
            raise SystemExit(f"no CUDA GPU here ({facts}): run with --dry on a CPU")

    def run(self, step: Step) -> None:
        record: dict = {}
        self.results["steps"][step.name] = record
        if (left := self.left() - RESERVE_S) < step.needs_s:
            record.update(status="skipped", why=f"needs about {step.needs_s} s, {max(0, left):.0f} s left")
            return
        if step.name == "compile" and not (REPO / "workshop" / "runner" / "speedups.py").exists():
            record.update(status="skipped", why="this checkout has no workshop/runner/speedups.py")
            return
        start = time.monotonic()
        record["runs"] = []
        for command in step.commands:
            code, output = self.shell([sys.executable, str(BENCH / command[0]), *command[1:]], self.left() - RESERVE_S)
            run = {"command": " ".join(command), "exit": code}
            if (found := _last_json(output)) is not None:
                run["result"] = found
            else:
                run["output"] = output.strip().splitlines()[-8:]
            record["runs"].append(run)
            if code != 0:
                break
        record["status"] = "ok" if all(r["exit"] == 0 for r in record["runs"]) else "failed"
        record["seconds"] = round(time.monotonic() - start, 1)


def _last_json(output: str) -> dict | None:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where gpu_suite.json and gpu_suite.log go ($OUT there)")
    parser.add_argument("--budget-s", type=float, default=540, help="stop starting steps past this (default 540 s)")
    parser.add_argument("--parts", help="comma-separated steps to run (default: all, in order)")
    parser.add_argument("--dry", action="store_true", help="a quick run on the CPU: small shapes, 32², 2 steps")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="promptism-suite-"))
    suite = Suite(args.out, work, args.budget_s, args.dry)
    chosen = steps(work, args.dry)
    names = [s.name for s in chosen]
    wanted = args.parts.split(",") if args.parts else names
    if unknown := sorted(set(wanted) - set(names)):
        parser.error(f"unknown part {unknown[0]!r}: the parts are {', '.join(names)}")
    if any(w in ("grid", "cold", "compile") for w in wanted) and "sd15" not in wanted:
        wanted = ["sd15", *wanted]  # they run on the folder it builds
    started = time.monotonic()
    try:
        suite.install()
        suite.machine()
        suite.save()
        for step in chosen:
            if step.name in wanted:
                print(f"[{time.monotonic() - started:4.0f} s] {step.name} …", flush=True)
                suite.run(step)
                suite.results["total_s"] = round(time.monotonic() - started, 1)
                suite.save()
                record = suite.results["steps"][step.name]
                print(f"[{time.monotonic() - started:4.0f} s] {step.name}: {record['status']} {record.get('why', '')}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(suite.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
