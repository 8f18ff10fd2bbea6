"""``promptism grid --dry-run``: spec files, flags over them, human and JSON output, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli

SPEC = '''
prompt = "a red circle on a blue background"
negative = "blurry"
keywords = ["glowing", "pixel art", { text = "striped", on = false }]
mode = "leave-one-out"
seeds = "1-2"
model = "shapes"
[params]
steps = 12
[axes]
z = "guidance=3,7.5"
'''


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_spec_file_dry_run_json(spec, capsys):
    code, out, err = run_cli(capsys, "grid", str(spec), "--dry-run", "--json")
    assert code == 0, err
    cells = json.loads(out)
    assert len(cells) == 3 * 2 * 2
    first = cells[0]
    assert {"index", "prompt", "negative", "seed", "row", "col", "keywords", "tokens", "truncated_keywords", "guidance"} <= set(first)
    assert first["prompt"] == "a red circle on a blue background, glowing, pixel art" and first["negative"] == "blurry"
    assert (first["seed"], first["row"], first["col"], first["guidance"]) == (1, 0, 0, 3.0)
    assert cells[8]["prompt"] == "a red circle on a blue background, glowing" and cells[8]["seed"] == 1 and cells[8]["guidance"] == 7.5
    assert all("striped" not in c["prompt"] for c in cells)
    assert isinstance(first["tokens"], int) and first["tokens"] > 10


def test_flags_override_the_spec(spec, capsys):
    code, out, _ = run_cli(capsys, "grid", str(spec), "--mode", "add-one", "--seeds", "9", "--keyword", "outlined", "--dry-run", "--json")
    cells = json.loads(out)
    assert code == 0 and [c["prompt"] for c in cells[:2]] == ["a red circle on a blue background", "a red circle on a blue background, outlined"]
    assert {c["seed"] for c in cells} == {9}


def test_flags_only_with_axes(capsys):
    code, out, _ = run_cli(capsys, "grid", "--prompt", "a red circle", "--x", "sr=red,blue,green", "--y", "seed=1-3", "--dry-run", "--json")
    cells = json.loads(out)
    assert code == 0 and len(cells) == 9
    assert [(c["prompt"], c["seed"], c["row"], c["col"]) for c in cells[:4]] == [
        ("a red circle", 1, 0, 0), ("a blue circle", 1, 0, 1), ("a green circle", 1, 0, 2), ("a red circle", 2, 1, 0)]


def test_human_output_is_a_table_with_token_counts(capsys):
    long = "a painting of " + ", ".join(["a lighthouse at dusk"] * 16)
    code, out, _ = run_cli(capsys, "grid", "-p", long, "-k", "pixel art", "--mode", "leave-one-out", "--dry-run")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("leave-one-out · 2 variants = 2 cells")
    assert "tokens" in lines[1] and "/77 !" in out  # shapes reads one window: what is past it is lost
    assert "past the 77-token limit: 'pixel art'" in out
    code, out, _ = run_cli(capsys, "grid", "-p", long, "-k", "pixel art", "--mode", "leave-one-out", "--dry-run",
                           "--model", "tiny")  # a model that reads every A1111 window (issue 26): counted, not flagged
    assert code == 0 and " (2 windows)" in out and "!" not in out and "past the" not in out, out


def test_dry_run_json_is_identical_across_processes(spec):
    exe = str(Path(sys.executable).parent / "promptism")
    runs = [subprocess.run([exe, "grid", str(spec), "--dry-run", "--json"], capture_output=True, text=True) for _ in range(2)]
    assert runs[0].returncode == 0 and runs[0].stdout == runs[1].stdout and runs[0].stdout.startswith("[")


@pytest.mark.parametrize("args, fragment", [
    (["--prompt", ""], "spec file or --prompt"),
    ([], "spec file or --prompt"),
    (["-p", "a", "-k", "x", "-k", "x"], "twice"),
    (["-p", "a", "--mode", "ablate"], "--mode"),
    (["-p", "a", "--x", "colour=red"], "TYPE=VALUES"),
    (["-p", "a", "--seeds", "1-x"], "cannot read seed"),
    (["-p", "a red", "--x", "sr=blue,green"], "not in the prompt"),
    (["-p", "a", "--seeds", "1-100"], "over the cap"),
    (["-p", "a", "--max-cells", "x"], "--max-cells"),
    (["{bad_toml}"], "not valid TOML"),
    (["{unknown_key}"], "unknown key 'modes'"),
    (["{bad_mode}"], "unknown mode 'ablation'"),
    (["/no/such.toml"], "no such spec file"),
    (["-p", "a", "--seeds", "1,,2"], "seed values '1,,2' have an empty place between commas"),
    (["-p", "a", "--seeds", "99999999999999999999999"], "seed 99999999999999999999999 is outside"),  # not rounded
    (["-p", "a", "--model", "nosuchmodel"], "unknown model 'nosuchmodel'"),  # a dry run refuses it as a run does
    (["-p", "a", "--guidance", "1e300"], "guidance must be a number from 0 to 100, not 1e+300"),
    (["-p", "x" * 70_000], "prompt is 70,000 characters long; at most 65,536 are taken"),  # not echoed whole
    (["-p", "a", "-k", "k\udcfe"], "a keyword must be valid Unicode text"),  # invalid UTF-8 on the command line
])
def test_bad_grid_input_is_one_line(args, fragment, tmp_path, capsys):
    files = {"{bad_toml}": 'prompt = "a\nmode = 3', "{unknown_key}": 'prompt = "a"\nmodes = "matrix"',
             "{bad_mode}": 'prompt = "a"\nmode = "ablation"'}
    real = []
    for a in args:
        if a in files:
            (tmp_path / "s.toml").write_text(files[a])
            a = str(tmp_path / "s.toml")
        real.append(a)
    code, out, err = run_cli(capsys, "grid", *real, "--dry-run")
    assert code != 0 and err.count("\n") == 1 and fragment in err and "Traceback" not in err, err


@pytest.mark.parametrize("spec_text", [
    "seeds = " + "[" * 3000 + "1" + "]" * 3000,  # tomllib recurses a level at a time
    "prompt = " + "{a = " * 3000 + "1" + "}" * 3000,
    "[" + ".".join(["prompt"] + ["a"] * 3000) + "]",  # read without recursion, nested 3000 deep all the same
], ids=["array", "inline-table", "table"])
def test_a_spec_nested_too_deeply_is_one_line(spec_text, tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(spec_text + "\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "grid", str(path), "--dry-run")
    assert code == 1 and err == f"promptism: spec file {path} is nested too deeply to be a spec (more than 8 levels " \
                                "of tables and lists): fix the file\n", err


@pytest.mark.parametrize("spec_text, fragment", [
    ('[params]\nsteps = "many"', "[params] steps must be a whole number, not 'many'"),
    ("[params]\nsteps = -3", "steps must be 1 or more, not -3"),
    ('[params]\nguidance = "nan"', "[params] guidance must be a number"),
    ("[params]\nguidance = nan", "guidance must be a finite number"),
    ('[params]\nsize = "63x64"', "not a multiple of 8"),
    ('[params]\nsize = "big"', "WIDTHxHEIGHT"),
    ("[params]\nstrength = 2", "strength must be above 0 and at most 1"),
    ("[params]\nmax_batch = 0", "batch size"),
    ("[params]\ncolour = \"red\"", "[params]: unknown key 'colour'; the keys are steps, guidance"),
    ("[params]\nsampler = \"Euler b\"", "unknown sampler 'Euler b': use one of Euler, Euler a"),
    ("[params]\nsampler = 3", "[params] sampler must be text, not 3"),
    ("params = 3", "params must be a table"),
    ("wildcards = 7", "wildcards must be text, not 7"),
    ("model = 5", "model must be text, not 5"),
    ('model = ""', "model is empty"),
    ("[params]\nstrength = 0.5", "--strength goes with --init-image: give an init image"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_spec_params_are_refused_in_one_line_and_write_nothing(spec_text, fragment, dry_run, tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(f'prompt = "a red circle"\n{spec_text}\n', encoding="utf-8")
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "grid", str(path), *(["--dry-run"] if dry_run else []), "--journal", str(j))
    assert code == 1 and err.count("\n") == 1 and fragment in err and "internal error" not in err, err
    assert not j.exists()  # nothing written


@pytest.mark.parametrize("spec_text, fragment", [
    ("[params]\nsteps = 5000", "steps must be at most 1000 for tiny"),  # the model's own limit
    ("[params]\nsteps = 100000000", "steps must be at most 10,000 (no model takes more)"),
    ('[params]\ninit_image = "#2"', "no experiment #2; the journal does not exist yet"),
    ('[params]\ninit_image = "missing.png"', "missing.png: no such file"),
    ('[params]\nclip = "bogus"', "CLIP scorer 'bogus'"),
])
def test_spec_params_only_a_loaded_model_can_refuse_write_nothing_either(spec_text, fragment, tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(f'prompt = "a red circle"\nmodel = "tiny"\n{spec_text}\n', encoding="utf-8")
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "grid", str(path), "--journal", str(j))
    assert code == 1 and err.count("\n") == 1 and fragment in err and "internal error" not in err, err
    assert not j.exists()  # nothing written


def test_spec_params_are_honoured_and_flags_win(tmp_path, capsys):
    Path(__import__("os").environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")
    from journal import Journal
    from workshop.runner.runs import list_runs

    path = tmp_path / "s.toml"
    make = __import__("tests.helpers", fromlist=["make_png"]).make_png
    make(tmp_path / "start.png", size=(48, 48))
    path.write_text('prompt = "a red circle"\nseeds = "1-3"\n[params]\nsteps = 3\nguidance = 3.5\nsize = "48x48"\n'
                    'max_batch = 2\nclip = "none"\nstrength = 0.5\ninit_image = "start.png"\n', encoding="utf-8")
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "grid", str(path), "--journal", str(j))
    assert code == 0, err
    m = list_runs(Journal.open(j))[0].record.dump()
    p = m["params"]
    assert (p["steps"], p["guidance"], p["width"], p["height"], p["strength"]) == (3, 3.5, 48, 48, 0.5)
    assert p["init_image"] == str(tmp_path / "start.png") and m["layout"] == [[0, 1], [2]] and m.get("clip") is None
    code, out, err = run_cli(capsys, "grid", str(path), "--steps", "4", "--max-batch", "3", "--journal", str(j))
    assert code == 0, err
    m = list_runs(Journal.open(j))[0].record.dump()
    assert m["params"]["steps"] == 4 and m["params"]["guidance"] == 3.5 and m["layout"] == [[0, 1, 2]]


@pytest.mark.parametrize("args, fragment", [
    (["generate", "a", "--max-batch", "0"], "batch size"),
    (["generate", "a", "--seeds", ""], "no seed values given"),
    (["generate", "a", "--seed", "1", "--seeds", ""], "--seed or --seeds"),
    (["grid", "-p", "a", "--max-batch", "0"], "batch size"),
    (["grid", "-p", "a", "--seeds", ""], "no seed values given"),
    (["generate", "a", "--model", ""], "the model name is empty"),
])
def test_empty_or_zero_run_flags_are_refused_not_defaulted(args, fragment, tmp_path, capsys):
    from journal import Journal
    from workshop.runner.runs import list_runs

    j = tmp_path / "j"
    Journal.init(j)
    code, out, err = run_cli(capsys, *args, "--journal", str(j))
    assert code != 0 and err.count("\n") == 1 and fragment in err and "internal error" not in err, err
    assert list_runs(Journal.open(j)) == []
