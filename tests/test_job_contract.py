"""The typed job contract (issue 24): one rule resolves a job's run options on every surface — the CLI, the TUI, the
service and the A1111 route — so a setting, a spec's [params] and a flag mean the same everywhere; and an accepted
axis grid records each image's own settings, shown by `show`, `show --json` and the TUI."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import uvicorn
import webuiapi
from textual.widgets import DataTable, Input, Static

from journal import Journal
from tests.helpers import run_cli
from workshop.contract import GivenOptions, RunParams, Spec
from workshop.runner.options import resolve
from workshop.runner.runs import list_runs, load_run
from workshop.service.api import JobRequest
from workshop.service.server import create_app as create_service_app
from workshop.service.service import Service
from workshop.settings import Settings, load_settings
from workshop.tui.app import create_app
from workshop.tui.screens.composer import ComposerScreen
from workshop.tui.screens.grid import GridScreen
from workshop.tui.screens.journal import DetailScreen, JournalScreen

PROMPT = "a red circle on a blue background"
#: Settings every surface must apply the same way (none of them is a built-in default).
CONFIG = ('model = "tiny"\nsampler = "DPM++ 2M"\nclip = "tiny-clip"\nmax_batch = 3\nco2_g_per_kwh = 123.0\n'
          'channels_last = true\n')
EXPECTED = {"model": "tiny", "steps": 2, "size": (32, 32), "sampler": "DPM++ 2M", "clip": "tiny-clip", "co2": 123.0,
            "channels_last": True, "seeds": [1, 2]}
TOKEN = "contract-token"


def made_with(run) -> dict:
    """What a run's record says it was made with."""
    r = run.record
    return {"model": r.model.id, "steps": r.params.steps, "size": (r.params.width, r.params.height),
            "sampler": r.params.sampler, "clip": r.clip, "co2": r.compute.co2_g_per_kwh,
            "channels_last": r.params.channels_last, "seeds": [c.seed for c in r.cells]}


def only_run(journal_dir: Path):
    runs = list_runs(Journal.open(journal_dir))
    assert len(runs) == 1 and runs[0].state == "finished", runs
    return runs[0]


@pytest.fixture
def config():
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(CONFIG, encoding="utf-8")
    return load_settings()


def wait_until(condition, timeout: float = 300.0) -> None:
    """Poll for an event; the deadline only ends a test that would hang."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


async def until(pilot, condition, timeout: float = 300.0) -> None:
    """``wait_until`` in the app's event loop."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the app"
        await pilot.pause(0.05)


@pytest.fixture
def service(tmp_path):
    """The service in this process (its worker thread runs jobs as the daemon's does), stopped at teardown."""
    service = Service(tmp_path / "queue.json", journal=tmp_path / "a1111")
    service.start()
    wait_until(lambda: service.device is not None)  # its worker has imported the runner (not at once with a test's)
    yield service
    service.stop()


def served(service, tmp_path):
    """The service's HTTP app on a loopback port (for the A1111 route), in a thread; returns (port, stop)."""
    server = uvicorn.Server(uvicorn.Config(create_service_app(service, token=TOKEN), host="127.0.0.1", port=0,
                                          log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 60)
    assert server.started, "uvicorn did not start"

    def stop():
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive()
    return server.servers[0].sockets[0].getsockname()[1], stop


def test_one_job_resolves_the_same_from_the_cli_the_service_and_the_a1111_route(config, service, tmp_path, capsys):
    # the CLI (in this process: PROMPTISM_SERVICE is off in tests)
    code, _, err = run_cli(capsys, "generate", PROMPT, "--seeds", "1-2", "--steps", "2", "--size", "32x32",
                           "--journal", str(tmp_path / "cli"))
    assert code == 0, err
    cli = only_run(tmp_path / "cli")
    # the service, given a spec whose [params] say what the CLI's flags said, and no options at all
    job = service.submit(JobRequest(kind="grid", journal=str(tmp_path / "svc"), create=True,
                                    spec=Spec(prompt=PROMPT, seeds="1-2", params=RunParams(steps=2, size="32x32"))))
    wait_until(lambda: service.job(job.id).ended_yet)
    assert service.job(job.id).state == "finished", service.job(job.id).error
    svc = only_run(tmp_path / "svc")
    # the A1111 route, through a real A1111 client, with no sampler of its own (the setting applies)
    port, stop = served(service, tmp_path)
    try:
        api = webuiapi.WebUIApi(host="127.0.0.1", port=port, username="webuiapi", password=TOKEN, sampler="")
        result = api.txt2img(prompt=PROMPT, seed=1, steps=2, width=32, height=32, n_iter=2)
    finally:
        stop()
    a1111 = load_run(Journal.open(tmp_path / "a1111"), result.info["promptism_run"])
    assert made_with(cli) == made_with(svc) == made_with(a1111) == EXPECTED
    assert cli.record.layout == svc.record.layout == [[0, 1]]  # max_batch 3: both in one batch
    assert a1111.record.layout == [[0], [1]]  # A1111's batch_size (1) is a given batch size: it wins


async def test_the_tui_resolves_the_same_job_the_same_way(config, tmp_path):
    app = create_app(tmp_path / "tui", None, "halfcell", local=True)  # the model: the setting's
    async with app.run_test(size=(100, 32)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        for field, value in (("prompt", PROMPT), ("seeds", "1-2"), ("steps", "2"), ("size", "32x32")):
            composer.query_one(f"#{field}", Input).value = value
        composer.query_one("#mode").value = "plain"
        spec, given = composer.given()
        assert given.sampler is None and given.clip is None  # not given: the settings decide, as for the CLI
        assert resolve(spec, given, app.settings) == resolve(spec, GivenOptions(steps=2, size=(32, 32), preview_every=1),
                                                             config)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, GridScreen) and not app.screen.running)
        assert app.screen.run is not None, [n.message for n in app._notifications]  # (a failed run says why)
    assert made_with(only_run(tmp_path / "tui")) == EXPECTED


def test_a_service_jobs_spec_model_and_params_apply(service, tmp_path):
    """The job of the issue: spec {"model": "tiny", "params": {"steps": 1}}, empty options — not shapes at 12 steps."""
    job = service.submit(JobRequest(kind="grid", journal=str(tmp_path / "j"), create=True,
                                    spec=Spec(prompt=PROMPT, model="tiny", params=RunParams(steps=1, size="32x32"))))
    wait_until(lambda: service.job(job.id).ended_yet)
    run = only_run(tmp_path / "j")
    assert (run.record.model.id, run.record.params.steps, run.record.params.width) == ("tiny", 1, 32)


def test_the_precedence_is_flag_then_spec_then_setting_then_the_models_default():
    settings = Settings(model="shapes", sampler="Euler a", max_batch=5, clip="none")
    spec = Spec(prompt="p", model="tiny", params=RunParams(steps=3, sampler="DDIM", max_batch=2))
    assert resolve(spec, GivenOptions(steps=7), settings).model_dump(include={"model", "steps", "sampler", "max_batch"}) \
        == {"model": "tiny", "steps": 7, "sampler": "DDIM", "max_batch": 2}
    plain = resolve(Spec(prompt="p"), GivenOptions(), settings)
    assert (plain.model, plain.steps, plain.sampler, plain.max_batch, plain.clip) == ("shapes", None, "Euler a", 5, "none")
    assert resolve(Spec(prompt="p"), GivenOptions(sampler="default"), settings).sampler is None  # the model's own
    assert resolve(Spec(prompt="p"), GivenOptions(model="vqgan-clip"), settings).sampler is None  # it does not sample


@pytest.mark.parametrize("options, field", [
    ({"size": "abc"}, "size"), ({"steps": "abc"}, "steps"), ({"steps": "12"}, "steps"), ({"guidance": float("nan")}, "guidance"),
    ({"flash": True}, "flash"), ({"tf32": "yes"}, "tf32"),
])
def test_a_jobs_options_are_typed_and_a_bad_one_names_its_field(options, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        JobRequest.model_validate({"kind": "grid", "journal": "/j", "spec": {"prompt": "p"}, "options": options})
    assert caught.value.errors()[0]["loc"][:2] == ("options", field)


def test_the_job_schema_is_in_the_services_openapi(service):
    schema = create_service_app(service, token=TOKEN).openapi()["components"]["schemas"]
    assert {"JobRequest", "Spec", "GivenOptions", "RunParams"} <= set(schema)
    assert schema["GivenOptions"]["additionalProperties"] is False


# ------------------------------------------------------------------ each image's own settings


@pytest.fixture
def xy_experiment(tmp_path, capsys) -> Path:
    """The issue's X/Y grid: steps 8/16 × guidance 2/5, accepted."""
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, "grid", "-p", PROMPT, "--x", "steps=1,2", "--y", "guidance=2,5", "--model", "tiny",
                           "--size", "32x32", "--clip", "none", "--accept", "--title", "Steps by guidance",
                           "--journal", str(j))
    assert code == 0, err
    return j


def test_show_names_each_images_own_steps_and_guidance(xy_experiment, capsys):
    code, out, err = run_cli(capsys, "show", "1", "--journal", str(xy_experiment))
    assert code == 0, err
    lines = {line.split()[0] + " " + line.split()[1]: line for line in out.splitlines() if line.startswith("Image")}
    assert "steps 1 · guidance 2" in lines["Image 1"] and "steps 2 · guidance 2" in lines["Image 2"]
    assert "steps 1 · guidance 5" in lines["Image 3"] and "steps 2 · guidance 5" in lines["Image 4"]
    parameters = next(line for line in out.splitlines() if line.startswith("Parameters"))
    assert "steps=" not in parameters and "guidance=" not in parameters and "per image: steps, guidance" in parameters
    code, out, err = run_cli(capsys, "show", "1", "--json", "--journal", str(xy_experiment))
    images = json.loads(out)["images"]
    assert [(i["settings"]["steps"], i["settings"]["guidance"]) for i in images] == [(1, 2.0), (2, 2.0), (1, 5.0), (2, 5.0)]
    assert all(i["settings"]["model"] == "tiny" and "prompt" not in i["settings"] for i in images)
    assert PROMPT not in out  # settings are public; the prompt is not


async def test_the_tui_shows_each_images_own_settings(xy_experiment):
    app = create_app(xy_experiment, "tiny", "halfcell", local=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen))
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, JournalScreen))
        table = app.screen.query_one("#experiments", DataTable)
        await until(pilot, lambda: table.row_count > 0)
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        info = str(app.screen.query_one("#detail-info", Static).render())
    assert "image 1: seed 0 · steps 1 · guidance 2" in info and "image 4: seed 0 · steps 2 · guidance 5" in info
    assert "per image: steps, guidance" in info


# ------------------------------------------------------------------ errors with a code and a field


def test_the_services_refusals_carry_a_code_and_the_field(tmp_path):
    from fastapi.testclient import TestClient

    idle = Service(tmp_path / "jobs.json")  # its worker not started: nothing runs
    client = TestClient(create_service_app(idle, token="t"), headers={"Authorization": "Bearer t"})
    absent = {"kind": "grid", "journal": str(tmp_path / "none"), "spec": {"prompt": "p"}}
    refused = client.post("/v1/jobs", json=absent)
    assert refused.status_code == 404 and refused.json()["code"] == "no_journal" and refused.json()["field"] == "journal"
    Journal.init(tmp_path / "j")
    bad_spec = client.post("/v1/jobs", json={"kind": "grid", "journal": str(tmp_path / "j"),
                                             "spec": {"prompt": "p", "mode": "ablation"}})
    assert bad_spec.status_code == 400 and bad_spec.json()["code"] == "bad_spec" and "ablation" in bad_spec.json()["error"]
    malformed = client.post("/v1/jobs", json={"kind": "grid", "journal": str(tmp_path / "j"), "spec": {"prompt": "p"},
                                              "options": {"steps": "abc"}})
    assert malformed.status_code == 422 and malformed.json()["code"] == "malformed"
    assert malformed.json()["field"] == "options.steps" and "abc" not in malformed.json()["error"]
    assert idle.jobs() == []


def test_an_imported_experiments_images_have_its_recorded_settings(journal, tmp_path):
    from journal import ModelInfo
    from tests.helpers import new_experiment

    exp = journal.accept(new_experiment(tmp_path, "Imported", n_images=2, model=ModelInfo("sd15"),
                                        params={"steps": 20, "guidance": 7, "width": 512, "height": 768,
                                                "sampler": "Euler a", "note": True}))
    settings = exp.image_settings()
    assert [s.seed for s in settings] == [1, 2] and exp.grid is None
    assert {(s.steps, s.guidance, s.width, s.height, s.sampler, s.model) for s in settings} == {(20, 7, 512, 768, "Euler a",
                                                                                                "sd15")}


def test_each_surface_names_the_option_an_error_speaks_of_as_its_own_control(service, tmp_path):
    """One refusal at submit (a spec) and one from a job as it runs (its options), each said by the service's API,
    the command line, the workshop and the A1111 route in their own words: no surface rewrites another's."""
    from fastapi.testclient import TestClient

    from journal import JournalError
    from workshop.errors import RunError, from_wire
    from workshop.service.a1111 import as_a1111
    from workshop.service.client import _refusal
    from workshop.tui.wording import say

    Journal.init(tmp_path / "j")
    http = TestClient(create_service_app(service, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})
    reply = http.post("/v1/jobs", json={"kind": "grid", "journal": str(tmp_path / "j"),
                                        "spec": {"prompt": PROMPT, "mode": "leave-one-out"}})
    assert reply.status_code == 400 and reply.json()["error"] == "leave-one-out mode needs keywords: add some with ‹keyword›"
    refused = _refusal(reply.status_code, reply.content)  # as the CLI and the workshop get it from their client
    assert (refused.code, str(refused)) == ("bad_spec", "leave-one-out mode needs keywords: add some with --keyword")
    assert say(refused) == "leave-one-out mode needs keywords: add some with ctrl+n (new keyword)"

    job = service.submit(JobRequest(kind="grid", journal=str(tmp_path / "j"), spec=Spec(prompt=PROMPT),
                                    options=GivenOptions(model="tiny", strength=0.5)))
    wait_until(lambda: service.job(job.id).ended_yet)
    said = service.job(job.id).error  # the API's words, which the job's client reads
    assert said == "‹strength› goes with ‹init-image›: give an init image, or leave out the strength"
    assert str(RunError(from_wire(said))) == "--strength goes with --init-image: give an init image, or leave out the strength"
    assert say(said) == "strength goes with init image: give an init image, or leave out the strength"
    assert "denoising_strength goes with init_images" in RunError(from_wire(said)).worded(as_a1111)
    assert not list((tmp_path / "j" / ".promptism").glob("runs/*"))  # refused before its run folder

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(JournalError) as journals:  # the journal's own refusals are worded by each surface too
        Journal.open(tmp_path / "j").publish([], tmp_path / "link")
    assert str(journals.value).endswith("give the folder it points to as --out")
    assert say(journals.value).endswith("give the folder it points to as the gallery folder")


def test_the_machines_refusals_read_the_same_in_the_service_and_the_tui():
    import errno

    from workshop.errors import os_error_line
    from workshop.service.service import failure
    from workshop.tui.wording import say

    full = OSError(errno.ENOSPC, "No space left on device", "/j/experiments/0001-x/01-s1.png")
    assert failure(full) == (say(full), "machine") and say(full) == os_error_line(full)
    assert os_error_line(full) == ("No space left on device (/j/experiments/0001-x/01-s1.png): free some disk space and "
                                   "try again")


def test_one_classification_of_a_jobs_failure_its_line_and_its_kind():
    """The line and the kind come from one place (they disagreed: a journal refusing the request's input was a
    'machine' failure, so an A1111 request got a 500 for its own bad input)."""
    from journal import InvalidInput, JournalLocked
    from workshop.errors import RunError
    from workshop.service.service import failure

    assert failure(InvalidInput("/x.png is a FIFO, not an image file")) == ("/x.png is a FIFO, not an image file", "invalid")
    assert failure(RunError("steps must be 1 or more, not 0")) == ("steps must be 1 or more, not 0", "invalid")
    assert failure(JournalLocked("/j", "pid 42"))[1] == "machine"
    assert failure(MemoryError()) == ("out of memory: try a smaller ‹max-batch› or ‹size›", "machine")
    assert failure(ValueError("boom\nmore")) == ("internal error: ValueError: boom", "internal")


async def test_a_number_field_holding_nan_is_named_in_one_line(tmp_path):
    from workshop.tui.wording import say

    app = create_app(tmp_path / "tui", "tiny", "halfcell", local=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen))
        composer = app.screen
        composer.query_one("#prompt", Input).value = PROMPT
        composer.query_one("#guidance", Input).value = "nan"
        with pytest.raises(ValueError) as caught:
            composer.given("plain")
    assert say(caught.value) == "guidance must be a finite number, not nan"
