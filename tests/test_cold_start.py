"""The cold start: journal commands import no ML library (nor Ray); a pipeline loads by its own class (one diffusers pipeline
module, not all of them) and AutoPipeline's choice for the others; ``--verbose`` lists the phases until the first
step, with their seconds, locally and through the service, and ``--json --verbose`` carries them as Phase events."""

import json
import re
import shutil
from pathlib import Path

from tests.helpers import make_png, python, run_cli, service_pid
from workshop.runner.models import TEXT2IMAGE_CLASSES, resolve

HEAVY = ("torch", "diffusers", "transformers", "open_clip", "ray")
# Runs promptism commands one after another in one fresh interpreter; after each, the heavy libraries it has loaded.
COMMANDS = f"""
import json, sys
from workshop.cli import main
report = []
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    report.append([argv[0], code, sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})])
open(sys.argv[2], "w").write(json.dumps(report))
"""
# Runs `promptism ARGS` in a fresh interpreter that says, on stdout and in order with the command's own --json lines,
# when it has executed each module in WATCHED (its first import, not a look-up) and how long that took:
# {"event": "Imported", "module": M, "seconds": S}.
IMPORTS_SEEN = """
import json, sys, time

WATCHED = set(sys.argv[1].split(","))


class Loader:
    def __init__(self, loader, name):
        self.loader, self.name = loader, name

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        started = time.perf_counter()
        self.loader.exec_module(module)
        took = time.perf_counter() - started
        print(json.dumps({"event": "Imported", "module": self.name, "seconds": took}), flush=True)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class Finder:
    def find_spec(self, name, path, target=None):
        if name not in WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is not self and (spec := finder.find_spec(name, path, target)) is not None:
                spec.loader = Loader(spec.loader, name)
                return spec
        return None


sys.meta_path.insert(0, Finder())
from workshop.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_journal_commands_import_no_ml_library(tmp_path):
    j, image = str(tmp_path / "j"), str(make_png(tmp_path / "red.png"))
    commands = [["init", j], ["import", image, "--title", "red", "--model", "elsewhere", "--journal", j],
                ["log", "--journal", j], ["show", "1", "--journal", j], ["retitle", "1", "scarlet", "--journal", j],
                ["publish", "1", "--out", str(tmp_path / "gallery"), "--journal", j], ["unpublish", "1", "--journal", j], ["doctor", "--journal", j],
                ["runs", "--journal", j], ["models"], ["grid", "-p", "a circle", "-k", "red", "--dry-run"], ["--help"]]
    result = python(COMMANDS, json.dumps(commands), str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(name, code) for name, code, _ in report] == [(c[0], 0) for c in commands], result.stderr[-2000:]
    assert {name: loaded for name, _, loaded in report if loaded} == {}


def test_a_pipeline_loads_by_its_own_class_importing_its_module_alone():
    code = """
import sys
from workshop.runner.devices import pick_device
from workshop.runner.models import load_pipeline, resolve
source = resolve("shapes")
print("resolve:", " ".join(m for m in ("diffusers", "transformers") if m in sys.modules))
pipe = load_pipeline(source, pick_device("cpu"))
print("load:", type(pipe).__name__, " ".join(sorted(m for m in sys.modules if m.startswith("diffusers.pipelines."))))
"""
    result = python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    resolved, loaded = result.stdout.splitlines()[-2:]
    assert resolved == "resolve: "  # naming a built-in loads nothing
    assert loaded.startswith("load: StableDiffusionPipeline ")
    assert "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion" in loaded.split()
    assert "diffusers.pipelines.auto_pipeline" not in loaded.split()  # (it imports every pipeline module it maps)
    assert not any(".controlnet" in m or ".flux" in m for m in loaded.split())


def test_the_classes_loaded_directly_are_those_autopipeline_would_load():
    import diffusers
    from diffusers.pipelines.auto_pipeline import AUTO_TEXT2IMAGE_PIPELINES_MAPPING, _get_task_class

    for name in TEXT2IMAGE_CLASSES:
        assert _get_task_class(AUTO_TEXT2IMAGE_PIPELINES_MAPPING, name) is getattr(diffusers, name), name


def test_an_img2img_folder_still_loads_as_its_text_to_image_sibling(tmp_path):
    from workshop.runner.devices import pick_device
    from workshop.runner.models import _load

    folder = Path(cold_copy(tmp_path))
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionImg2ImgPipeline"}))
    pipe = _load(resolve(str(folder)), pick_device("cpu"), allow_pickle=False)
    assert type(pipe).__name__ == "StableDiffusionPipeline"


PHASES = ["import torch and the runner", "resolve the model", "pick the device", "import diffusers", "read weights",
          "first step (run folder, prompt, the step itself)"]


def phase_table(err: str) -> dict[str, float]:
    """The --verbose block on stderr: phase → seconds."""
    block = err[err.index("phases until the first step (seconds):"):].splitlines()[1:]
    rows = [re.fullmatch(r"  (.+?)\s+(\d+\.\d{3})", line) for line in block]
    return {m[1]: float(m[2]) for m in rows if m}


def phase_of(events: list[dict], module: str) -> dict | None:
    """The phase in which ``module`` was first imported: the first Phase event after its Imported line (a phase is
    reported when it ends)."""
    imported = next(i for i, e in enumerate(events) if e["event"] == "Imported" and e["module"] == module)
    return next((e for e in events[imported:] if e["event"] == "Phase"), None)


def test_verbose_lists_the_phases_until_the_first_step_and_each_does_what_it_says(tmp_path):
    """The real command, cold, in a fresh interpreter: its phases come in order and follow one another (they add up
    to no more than the whole), and torch and diffusers are imported inside the phases named after them: their
    imports end before those phases do, and each phase lasts at least as long as the import inside it (it contains
    it; true at any speed). Nothing here is a bound on how long anything takes (tests/bench/cold_start_phases.py
    times the phases and how much of the whole they cover)."""
    resolve("tiny")  # built in this session's model cache (once): the command resolves it, it does not make it
    args = ["generate", "a SECRETWORD circle", "--model", "tiny", "--steps", "1", "--local", "--verbose", "--json",
            "--journal", str(tmp_path / "j")]
    result = python(IMPORTS_SEEN, "torch,diffusers", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["name"] for e in events if e["event"] == "Phase" and e["name"] in PHASES] == PHASES
    imports = {e["module"]: e["seconds"] for e in events if e["event"] == "Imported"}
    for module, name in (("torch", "import torch and the runner"), ("diffusers", "import diffusers")):
        phase = phase_of(events, module)
        assert phase is not None and phase["name"] == name, (module, events)
        assert phase["seconds"] >= round(imports[module], 3) - 0.001, (module, imports[module], phase)
    table = phase_table(result.stderr)
    assert [p for p in table if p in PHASES] == PHASES and all(s >= 0 for s in table.values())
    total = table.pop("to the first step, in all")
    assert sum(table.values()) <= total + 0.0005 * (len(table) + 1), table  # no overlap (each is rounded to 1 ms)
    assert "SECRETWORD" not in result.stderr  # the block never names the prompt


def test_grid_takes_verbose(tmp_path, capsys):
    code, out, err = run_cli(capsys, "grid", "-p", "a circle", "-k", "red", "--model", "tiny", "--steps", "1", "--verbose",
                             "--journal", str(tmp_path / "j"))
    assert code == 0 and PHASES[-1] in phase_table(err), err


def cold_copy(tmp_path: Path) -> str:
    """The tiny model in a folder of its own: not warm in this process yet."""
    folder = tmp_path / "model"
    shutil.copytree(resolve("tiny").path, folder)
    return str(folder)


def test_json_verbose_carries_the_phases_as_events_and_plain_json_does_not(tmp_path, capsys):
    args = ["generate", "a red circle", "--model", cold_copy(tmp_path), "--steps", "1", "--clip", "tiny-clip", "--json"]
    code, out, err = run_cli(capsys, *args, "--verbose", "--journal", str(tmp_path / "j"))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    phases = [e for e in events if e["event"] == "Phase"]
    assert [p["name"] for p in phases if p["name"] in PHASES] == PHASES
    assert "load the scorer" in [p["name"] for p in phases] and all(isinstance(p["seconds"], float) for p in phases)
    first_step = next(i for i, e in enumerate(events) if e["event"] == "Step")
    assert events[first_step - 1]["name"] == PHASES[-1]  # the first step's own phase comes with it
    assert phase_table(err)["read weights"] == next(p["seconds"] for p in phases if p["name"] == "read weights")
    code, out, err = run_cli(capsys, *args, "--journal", str(tmp_path / "j"))
    assert code == 0 and '"Phase"' not in out and "phases until" not in err


def test_rerun_and_resume_take_verbose(tmp_path, capsys):
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "1", "--accept", "-t", "one",
                           "--journal", j)
    assert code == 0, err
    code, _, err = run_cli(capsys, "rerun", "1", "--verbose", "--journal", j)
    table = phase_table(err)
    assert code == 0 and "read weights" not in table  # warm in this process: nothing was read
    assert "import torch and the runner" in table and PHASES[-1] in table
    code, _, err = run_cli(capsys, "resume", "nothere", "--verbose", "--journal", j)
    assert code == 1 and "phases until" not in err  # refused before any job


def test_verbose_through_a_service_it_starts_shows_the_service_phases(service, tmp_path, capsys):
    args = ["generate", "a red circle", "--steps", "1", "--size", "32x32", "--verbose", "--json", "--journal", str(tmp_path / "j")]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    names = [e["name"] for e in map(json.loads, out.splitlines()) if e["event"] == "Phase"]
    assert "start the service" in names and "service warm-up (torch, diffusers, the device)" in names
    assert "read weights" in names and names[-1] == PHASES[-1]
    pid = service_pid()
    code, out, err = run_cli(capsys, *args)  # warm: connected, nothing imported or read
    table = phase_table(err)
    assert code == 0 and "connect to the service" in table and "read weights" not in table
    assert "service warm-up (torch, diffusers, the device)" not in table and "start the service" not in table
    assert service_pid() == pid  # the same service, torch and the runner imported in it already
