"""The run commands as a user meets them: Ctrl-C exits 130 and keeps what finished, the model load is announced,
dynamic syntax outside the dynamic mode is refused, and help text and hints tell the truth."""

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import EXE, on_pty, run_cli
from workshop.runner.models import BUILTINS
from workshop.runner.runs import list_runs

PROMPT = "a lighthouse at dusk"


@pytest.fixture(autouse=True)
def tiny_by_default():
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")


@pytest.fixture
def interrupt_after_first_batch():
    """Start a promptism command with --json, press Ctrl-C once its first batch is done, and wait for it to end."""
    procs = []

    def run(*args: str) -> tuple[int, list[dict], str]:
        proc = subprocess.Popen([EXE, *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        events = []
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "BatchFinished":
                proc.send_signal(signal.SIGINT)
                break
        events += [json.loads(line) for line in proc.stdout]
        return proc.wait(timeout=300), events, proc.stderr.read()

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_keeps_finished_images_and_exits_130(interrupt_after_first_batch, tmp_path):
    """generate and grid share execute_grid: a grid is interrupted here."""
    j = tmp_path / "j"
    code, events, err = interrupt_after_first_batch("grid", "-p", PROMPT, "-k", "glowing", "--mode", "leave-one-out",
                                                    "--seeds", "1-4", "--max-batch", "1", "--steps", "10", "--accept",
                                                    "-t", "kept", "--journal", str(j))
    assert code == 130, err
    assert "cancelled" in err and "not accepted" in err and "Traceback" not in err
    result = events[-1]
    assert result["event"] == "Result" and result["state"] == "cancelled" and 1 <= len(result["images"]) < 8
    assert all(Path(p).is_file() for p in result["images"])
    assert Journal.open(j).list(limit=None) == []  # Ctrl-C means stop: nothing is accepted behind the user's back


def test_ctrl_c_during_a_rerun_exits_130(interrupt_after_first_batch, tmp_path, capsys):
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, "generate", PROMPT, "--seeds", "1-4", "--max-batch", "1", "--steps", "10", "--accept",
                           "--title", "long", "--journal", str(j))
    assert code == 0, err
    code, events, err = interrupt_after_first_batch("rerun", "1", "--journal", str(j))
    assert code == 130 and len(err.strip().splitlines()) == 2 and "cancelled" in err, err  # the Ctrl-C notice, the outcome
    rerun = list_runs(Journal.open(j))[0]
    assert rerun.record.rerun_of == 1 and rerun.state == "cancelled" and len(rerun.done) >= 1


def test_the_model_load_is_announced_as_a_json_event(tmp_path, capsys):
    j = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "generate", PROMPT, "--steps", "1", "--clip", "tiny-clip", "--accept", "-t", "one",
                             "--json", "--journal", j)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    names = [e["event"] for e in events]
    assert names[:3] == ["Loading", "Loading", "RunStarted"]
    assert events[0]["model"] == "tiny" and events[0]["part"] == "pipeline"
    assert events[1]["model"] == "tiny-clip" and events[1]["part"] == "scorer"
    code, out, err = run_cli(capsys, "rerun", "1", "--json", "--journal", j)
    assert code == 0 and json.loads(out.splitlines()[0])["event"] == "Loading", out + err


def test_a_prompt_past_the_window_is_read_in_windows_and_said_only_where_a_model_cuts_it(tmp_path, capsys):
    """`generate` was silent about a prompt of 2,000 tokens the model read 77 of. A1111's models (SD, SDXL) now read
    it all, in 75-token windows (issue 26), so nothing is said for them; a model that cuts it gets a count — never the
    prompt's words (the event goes to --json output and over the service's wire)."""
    from workshop.runner.engine import Job
    from workshop.runner.execution import past_limit

    words = " ".join(f"zebraword{k}" for k in range(60))  # several tokens each
    j = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "generate", words, "--steps", "1", "--seeds", "1-2", "--json", "--journal", j)
    assert code == 0 and "PromptPastLimit" not in out and "note: " not in err, err
    (run,) = list_runs(Journal.open(tmp_path / "j"))
    assert run.record.params.emphasis == "a1111"
    jobs = [Job(n, text, "", 1, 1, 7.5, 64, 64) for n, text in enumerate((words, "a red circle", words))]
    event = past_limit(jobs)
    assert event.cells == [0, 2] and event.tokens > 77 and event.limit == 77 and "zebraword" not in repr(event)
    assert past_limit(jobs[1:2]) is None


def test_a_terminal_sees_loading_model_while_it_loads(tmp_path):
    """On a terminal (stderr is a tty) the progress line says 'loading tiny…' before the run starts."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([EXE, "generate", PROMPT, "--steps", "1", "--journal", str(tmp_path / "j")],
                                stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert "loading tiny…".encode() in seen, seen[-500:]


@pytest.mark.parametrize("args", [
    ["generate", "a {red|blue} circle"],
    ["grid", "-p", "a {red|blue} circle", "--dry-run"],
    ["grid", "-p", "a circle", "-k", "__colour__", "--mode", "leave-one-out", "--dry-run"],
    ["grid", "-p", "a circle", "--negative", "{blurry|dark}", "--dry-run"],
])
def test_dynamic_syntax_outside_the_dynamic_mode_is_refused(args, tmp_path, capsys):
    code, out, err = run_cli(capsys, *args, "--journal", str(tmp_path / "j"))
    assert code == 1 and err.count("\n") == 1 and "only the dynamic mode expands" in err and "--mode dynamic" in err, err
    assert not (tmp_path / "j").exists()


def test_braces_without_alternatives_stay_literal_and_the_dynamic_mode_expands(capsys):
    code, out, err = run_cli(capsys, "grid", "-p", "a {glowing} circle", "--dry-run", "--json")
    assert code == 0 and [c["prompt"] for c in json.loads(out)] == ["a {glowing} circle"], err
    code, out, err = run_cli(capsys, "grid", "-p", "a {red|blue} circle", "--mode", "dynamic", "--dry-run", "--json")
    assert code == 0 and [c["prompt"] for c in json.loads(out)] == ["a red circle", "a blue circle"], err


def test_guidance_and_steps_help_match_what_runs_record(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "generate", "--help")
    help_text = " ".join(out.split())
    shapes = BUILTINS["shapes"]
    assert f"{shapes.guidance:g} for shapes" in help_text and f"{shapes.steps:g} for shapes" in help_text
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "shapes", "--clip", "none", "--journal",
                           str(tmp_path / "j"))
    assert code == 0, err
    params = list_runs(Journal.open(tmp_path / "j"))[0].record.params.dump()
    assert params["guidance"] == shapes.guidance and params["steps"] == shapes.steps


@pytest.mark.parametrize("prompt", ["", "  , "])
def test_an_empty_generate_prompt_names_no_flag_that_does_not_exist(prompt, capsys):
    code, out, err = run_cli(capsys, "generate", prompt)
    assert code == 2 and err.count("\n") == 1 and "prompt is empty" in err and "--prompt" not in err, err


def test_a_missing_wildcard_is_one_line_that_names_the_file_to_add(tmp_path, capsys):
    """In a process of its own: pytest's log capture would hide dynamicprompts' own log lines."""
    result = subprocess.run([EXE, "grid", "-p", "x, __colors__", "--mode", "dynamic", "--dry-run"], capture_output=True,
                            text=True)
    err = result.stderr
    assert result.returncode == 1 and err.count("\n") == 1, err
    assert "no wildcard file for __colors__; pass --wildcards DIR" in err, err
    (tmp_path / "wc").mkdir()
    code, out, err = run_cli(capsys, "grid", "-p", "x, __nope__", "--mode", "dynamic", "--dry-run", "--wildcards",
                             str(tmp_path / "wc"))
    assert code == 1 and err.count("\n") == 1, err
    assert f"no wildcard file for __nope__ in {tmp_path / 'wc'}: add {tmp_path / 'wc' / 'nope.txt'}" in err, err


@pytest.mark.parametrize("flag", ["--lr", "--tv"])
@pytest.mark.parametrize("value", ["nan", "1e309"])
def test_a_guided_setting_that_is_no_finite_number_names_its_flag(flag, value, tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", PROMPT, "--model", "vqgan-clip:tiny+tiny-clip", flag, value,
                             "--journal", str(tmp_path / "j"))
    assert code == 2 and err.count("\n") == 1 and "internal error" not in err, err
    assert f"Invalid value for {flag}: it must be a finite number, not {value if value == 'nan' else 'inf'}" in err, err
    assert not (tmp_path / "j").exists()


def test_the_prompt_is_kept_as_given_and_drawn_as_rendered(tmp_path, capsys):
    """Trailing newlines stay in the prompt as given (the run's ``base``, the experiment's ``grid.base``); the prompt
    the model reads is rendered as every prompt of a grid is (parts stripped of spaces, newlines and commas)."""
    given = "a red circle\n\n"
    code, out, err = run_cli(capsys, "generate", given, "--steps", "1", "--accept", "--title", "Circle", "--journal",
                             str(tmp_path / "j"))
    assert code == 0, err
    record = list_runs(Journal.open(tmp_path / "j"))[0].record
    assert (record.spec.base, record.spec.prompt, record.cells[0].prompt) == (given, "a red circle", "a red circle")
    assert Journal.open(tmp_path / "j").get(1).grid.base == given


@pytest.mark.parametrize("make, fragment", [
    (lambda p: None, "does not exist"),
    (os.mkfifo, "is not a folder"),
])
@pytest.mark.parametrize("prompt", ["a red circle", "a {red|blue} circle"])
def test_a_wildcards_path_that_is_no_folder_is_refused_even_where_unused(make, fragment, prompt, tmp_path, capsys):
    make(tmp_path / "wc")
    code, out, err = run_cli(capsys, "grid", "-p", prompt, "--mode", "dynamic", "--dry-run", "--wildcards",
                             str(tmp_path / "wc"))
    assert code == 1 and err.count("\n") == 1, err
    assert f"the wildcards folder '{tmp_path / 'wc'}' {fragment}: pass --wildcards DIR" in err, err


def test_a_wildcard_file_that_is_not_utf8_is_one_line_when_a_prompt_uses_it(tmp_path, capsys):
    (tmp_path / "wc").mkdir()
    (tmp_path / "wc" / "colour.txt").write_bytes(b"red\n\xff\xfe\n")
    (tmp_path / "wc" / "shape.txt").write_text("circle\n# a comment\n\nsquare\n")
    code, out, err = run_cli(capsys, "grid", "-p", "a __shape__", "--mode", "dynamic", "--dry-run", "--json",
                             "--wildcards", str(tmp_path / "wc"))
    assert code == 0 and [c["prompt"] for c in json.loads(out)] == ["a circle", "a square"], err  # unused: no matter
    code, out, err = run_cli(capsys, "grid", "-p", "a __colour__ circle", "--mode", "dynamic", "--dry-run",
                             "--wildcards", str(tmp_path / "wc"))
    assert code == 1 and err.count("\n") == 1, err
    assert f"{tmp_path / 'wc' / 'colour.txt'} is not UTF-8 text (byte 4); save it as UTF-8" in err, err


def test_generate_has_the_max_cells_its_hint_names(tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", "a red circle", "--seeds", "1-65", "--journal", str(tmp_path / "j"))
    assert code == 1 and "over the cap of 64" in err and "--max-cells" in err, err
    code, out, _ = run_cli(capsys, "generate", "--help")
    assert "--max-cells" in out
    code, out, err = run_cli(capsys, "generate", "a red circle", "--seeds", "1-3", "--max-cells", "2", "--journal",
                             str(tmp_path / "j"))
    assert code == 1 and "3 cells, over the cap of 2" in err, err
    code, out, err = run_cli(capsys, "generate", "a red circle", "--seeds", "1-65", "--max-cells", "65", "--steps", "1",
                             "--size", "8x8", "--max-batch", "65", "--clip", "none", "--journal", str(tmp_path / "j"))
    assert code == 0 and "65/65 images" in out, err


def test_the_progress_line_shows_no_step_count_before_the_first_step(tmp_path):
    """On a terminal: 'loading tiny…' with no '0/None steps' (nor a '-:--:--' time) before there are steps."""
    screen = on_pty(["generate", PROMPT, "--steps", "2", "--journal", str(tmp_path / "j")])
    assert "loading tiny…".encode() in screen, screen[-500:]
    assert b"None" not in screen and b"-:--:--" not in screen, screen[-1500:]


def test_generate_accept_says_what_accept_says_and_no_keep_it_hint(tmp_path, capsys):
    j = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "generate", PROMPT, "--steps", "1", "--accept", "--title", "[b]Noise[/b] one",
                             "--journal", j)
    assert code == 0, err
    assert "keep it" not in out and "accepted as" not in out + err
    assert out.splitlines()[-1] == "#1 [b]Noise[/b] one — 1 image(s) by tiny", out
    code, out, err = run_cli(capsys, "generate", PROMPT, "--steps", "1", "--journal", j)
    run_id = list_runs(Journal.open(j))[0].id
    assert code == 0 and f"keep it: promptism accept {run_id}" in out, out
    code, out, err = run_cli(capsys, "accept", run_id, "--title", "[b]Noise[/b] two", "--journal", j)
    assert code == 0 and out == "#2 [b]Noise[/b] two — 1 image(s) by tiny\n", out + err


def test_models_names_each_configured_folder_it_leaves_out(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    config = Path(os.environ["PROMPTISM_CONFIG"])
    config.write_text(f'model_paths = ["/nonexistent/model", "{tmp_path / "empty"}"]\n', encoding="utf-8")
    code, out, err = run_cli(capsys, "models")
    assert code == 0 and "tiny" in out, err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert "/nonexistent/model does not exist" in lines[0] and str(config) in lines[0]
    assert f"{tmp_path / 'empty'} is not a diffusers pipeline (it has no model_index.json)" in lines[1]


def test_piped_progress_is_a_line_per_batch_on_stderr(tmp_path, capsys):
    """No bar where stderr is no terminal (a log, `2>&1 | tee`): the run, then each batch as it finishes."""
    code, out, err = run_cli(capsys, "generate", PROMPT, "--seeds", "1-3", "--max-batch", "2", "--steps", "2",
                             "--size", "32x32", "--clip", "none", "--journal", str(tmp_path / "j"))
    assert code == 0, err
    run = list_runs(Journal.open(tmp_path / "j"))[0]
    lines = [line.rsplit(" (", 1)[0] if line.startswith("batch") else line for line in err.splitlines()[-3:]]
    assert lines == [f"run {run.id}: 3 image(s) in 2 batch(es), {run.record.model.id} on {run.record.compute.device}",
                     "batch 1/2 done: 2/3 image(s)", "batch 2/2 done: 3/3 image(s)"], err


def test_clip_skip_is_recorded_and_reruns_and_refused_where_a1111_would_not_apply_it(tmp_path, capsys):
    j = str(tmp_path / "j")
    common = ("--model", "tiny", "--steps", "2", "--seeds", "1", "--clip", "none", "--journal", j)
    assert run_cli(capsys, "generate", "a red circle", "--clip-skip", "2", *common)[0] == 0
    assert run_cli(capsys, "generate", "a red circle", *common)[0] == 0
    runs = list_runs(Journal.open(tmp_path / "j"))  # (two runs of one second: their ids do not tell their order)
    skipped, plain = sorted(runs, key=lambda r: r.record.params.clip_skip is None)
    assert skipped.record.params.clip_skip == 2 and plain.record.params.clip_skip is None
    assert skipped.image(skipped.record.cells[0]).read_bytes() != plain.image(plain.record.cells[0]).read_bytes()
    code, _, err = run_cli(capsys, "accept", skipped.id, "--title", "Skipped", "--journal", j)
    assert code == 0, err
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "identical" in out + err, out + err
    for args, said in ((("--clip-skip", "0", "--model", "tiny"), "1 (the last) to 12, not 0"),
                       (("--clip-skip", "2", "--model", "shapes"), "shapes is encoded with compel: leave it out"),
                       (("--clip-skip", "12", "--model", "tiny"), "text encoder has")):
        before = sorted((tmp_path / "j" / ".promptism" / "runs").iterdir())
        code, _, err = run_cli(capsys, "generate", "a red circle", *args, "--steps", "1", "--journal", j)
        assert code != 0 and said in err and len(err.strip().splitlines()) == 1, err
        assert sorted((tmp_path / "j" / ".promptism" / "runs").iterdir()) == before  # nothing written
