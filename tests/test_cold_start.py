"""The cold start: journal commands import no ML library (nor Ray); a pipeline loads by its own class (one diffusers pipeline
module, not all of them) and AutoPipeline's choice for the others; ``--verbose`` lists the phases until the first
step, with their seconds, locally and through the service, and ``--json --verbose`` carries them as Phase events."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import make_png, python, run_cli
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


def test_verbose_lists_the_phases_that_add_up_to_the_time_to_the_first_step(tmp_path):
    """The real command, cold: its phases follow one another, so they add up to the whole (less the small gaps)."""
    promptism = str(Path(sys.executable).parent / "promptism")
    result = subprocess.run([promptism, "generate", "a SECRETWORD circle", "--model", "tiny", "--steps", "1", "--local",
                             "--verbose", "--journal", str(tmp_path / "j")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    table = phase_table(result.stderr)
    assert [p for p in table if p in PHASES] == PHASES and all(s >= 0 for s in table.values())
    assert table["import torch and the runner"] > 0.1 and table["import diffusers"] > 0.1 and table["read weights"] > 0
    total = table.pop("to the first step, in all")
    assert 0.8 * total <= sum(table.values()) <= total + 0.05, table
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
    code, out, err = run_cli(capsys, *args)  # warm: connected, nothing imported or read
    table = phase_table(err)
    assert code == 0 and "connect to the service" in table and "read weights" not in table
    assert "service warm-up (torch, diffusers, the device)" not in table and table["import torch and the runner"] < 0.05
