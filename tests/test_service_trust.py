"""The service under hostile input (issue 25): a request that is not valid text, or a queue file that cannot be
written, fails alone — one line, no traceback, nothing private logged — and the next job runs."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from journal import Journal
from workshop.contract import TEXT_MAX
from workshop.runner.runs import list_runs
from workshop.service.api import JobRequest
from workshop.service.server import create_app
from workshop.service.service import Service

TOKEN = "trust-token"
SECRET = "a lighthouse SECRETWORD"


def wait_until(condition, timeout: float = 300.0) -> None:
    """Poll for an event; the deadline only ends a test that would hang."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture
def service(tmp_path):
    """The service in this process, its worker running jobs as the daemon's does; stopped at teardown."""
    service = Service(tmp_path / "queue.json", journal=tmp_path / "a1111")
    service.start()
    wait_until(lambda: service.device is not None)
    yield service
    service.stop()


@pytest.fixture
def http(service) -> TestClient:
    return TestClient(create_app(service, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})


def a_job(journal: Path, prompt: str = SECRET) -> dict:
    return {"kind": "grid", "journal": str(journal), "create": True, "spec": {"prompt": prompt, "seeds": 1},
            "options": {"model": "tiny", "steps": 1, "size": [32, 32], "clip": "none"}}


def runs_to_the_end(service: Service, journal: Path) -> str:
    """A good job, submitted after whatever came before: the state it ends in."""
    job = service.submit(JobRequest.model_validate(a_job(journal)))
    wait_until(lambda: service.job(job.id).ended_yet)
    return service.job(job.id).state


@pytest.mark.parametrize("where, field", [
    (lambda body: body["spec"].update(prompt="a \ud800 b"), "spec.prompt"),
    (lambda body: body["spec"].update(keywords=["x", "\udfff"]), "spec.keywords.1"),
    (lambda body: body["options"].update(sampler="Euler \ud83d"), "options.sampler"),
    (lambda body: body["spec"].update(prompt="x" * (TEXT_MAX + 1)), "spec.prompt"),
])
def test_text_that_is_not_text_or_too_long_is_a_422_and_the_next_job_runs(service, http, tmp_path, caplog, where,
                                                                          field):
    body = a_job(tmp_path / "j")
    where(body)
    with caplog.at_level(logging.INFO):
        reply = http.post("/v1/jobs", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert reply.status_code == 422 and reply.json()["code"] == "malformed", reply.text
    assert reply.json()["field"].startswith(field) and "\n" not in reply.json()["error"]
    assert service.jobs() == [] and not (tmp_path / "j").exists()  # nothing queued, nothing written
    assert runs_to_the_end(service, tmp_path / "j") == "finished"
    assert "SECRETWORD" not in caplog.text and "\ud800" not in caplog.text


def a_fifo(folder: Path) -> str:
    import os

    os.mkfifo(folder / "fifo")
    return str(folder / "fifo")


@pytest.mark.parametrize("change, status, field, said", [
    (lambda body, tmp: body["options"].update(model="nosuch"), 400, None, "unknown model"),
    (lambda body, tmp: body["options"].update(model=str(tmp)), 400, None, "not a diffusers pipeline"),
    (lambda body, tmp: body["options"].update(steps=0), 400, None, "steps must be 1 or more"),
    (lambda body, tmp: body["options"].update(steps=10**30), 400, None, "steps must be at most 10,000"),
    (lambda body, tmp: body["options"].update(strength=5), 400, None, "strength must be"),
    (lambda body, tmp: body["options"].update(max_batch=0), 400, None, "batch size"),
    (lambda body, tmp: body["options"].update(sampler="bogus"), 400, None, "unknown sampler"),
    (lambda body, tmp: body["options"].update(size=[0, 0]), 400, None, "at least 8"),
    (lambda body, tmp: body["options"].update(clip="bogus"), 400, None, "ARCH:CHECKPOINT"),
    (lambda body, tmp: body["options"].update(preview_every=-1), 400, None, "previews"),
    (lambda body, tmp: body["options"].update(init_image=a_fifo(tmp)), 400, None, "FIFO"),
    (lambda body, tmp: body["options"].update(init_image="#3"), 400, None, "no experiment #3"),
    (lambda body, tmp: body["options"].update(init_image="a.png"), 400, "options.init_image", "absolute path"),
    (lambda body, tmp: (body["options"].pop("size"), body["spec"].update(params={"size": "0x0"})), 400, None, "at least 8"),
    (lambda body, tmp: body["options"].update(device="bogus"), 422, "options.device", "cuda:N"),
    (lambda body, tmp: body.update(create="yes"), 422, "create", "boolean"),
    (lambda body, tmp: body.update(kind="rerun", number=999, spec=None), 400, "number", "no experiment #999"),
    (lambda body, tmp: body.update(kind="rerun", number=1.0, spec=None), 422, "number", "integer"),
    (lambda body, tmp: body.update(kind="resume", run="nosuch", spec=None), 400, None, "no run 'nosuch'"),
    (lambda body, tmp: body.update(number=10**30), 400, "number", "a grid job takes no number"),  # (the tally's)
    (lambda body, tmp: body.update(kind="rerun", number=1), 400, "spec", "a rerun job takes no spec"),
])
def test_a_job_any_run_would_refuse_is_refused_when_submitted(service, http, tmp_path, change, status, field, said):
    """The rule is structural: a job is checked in full — its types, then what the runner would refuse before loading
    a model (runner/checks.py) — before it exists; none of these is queued to fail later (bad_input_tally.py counted
    21 such jobs answered 201)."""
    Journal.open(tmp_path / "j", create=True)
    body = a_job(tmp_path / "j")
    change(body, tmp_path)
    reply = http.post("/v1/jobs", json=body)
    assert reply.status_code == status and said in reply.json()["error"], reply.text
    assert reply.json().get("field") == field and "\n" not in reply.json()["error"]
    assert service.jobs() == [] and list_runs(Journal.open(tmp_path / "j")) == []


def test_a_device_the_machine_lacks_fails_the_job_in_one_line_of_the_machines(service, tmp_path):
    """Found by bad_input_tally.py: ``cuda:99`` on a machine without it failed as an internal error (torch's
    RuntimeError). Which devices there are is the service's machine's to say when the job runs."""
    body = a_job(tmp_path / "j")
    body["options"]["device"] = "cuda:99"
    job = service.submit(JobRequest.model_validate(body))
    wait_until(lambda: service.job(job.id).ended_yet)
    ended = service.job(job.id)
    assert (ended.state, ended.error_type) == ("failed", "machine")
    assert ended.error.startswith("device cuda:99: this machine has") and "internal" not in ended.error
    assert runs_to_the_end(service, tmp_path / "j") == "finished"


def test_a1111s_prompt_that_is_not_text_is_a_422(service, http, tmp_path):
    reply = http.post("/sdapi/v1/txt2img", content=json.dumps({"prompt": "a \ud800 b", "steps": 1}).encode(),
                      headers={"content-type": "application/json"})
    assert reply.status_code == 422 and "surrogate" in reply.text, reply.text
    assert runs_to_the_end(service, tmp_path / "j") == "finished"


def test_a1111s_model_name_that_is_not_text_is_a_422_naming_its_field(service, http, tmp_path, caplog):
    """Found by tests/bench/bad_input_tally.py: a lone surrogate in override_settings.sd_model_checkpoint passed the
    request's model and failed building the job: a 500, its traceback in the log."""
    body = {"prompt": "a circle", "steps": 1, "override_settings": {"sd_model_checkpoint": "\ud800"}}
    with caplog.at_level(logging.INFO):
        reply = http.post("/sdapi/v1/txt2img", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "override_settings", "sd_model_checkpoint"]
    assert "Traceback" not in caplog.text and "\ud800" not in caplog.text
    assert runs_to_the_end(service, tmp_path / "j") == "finished"


def test_a_queue_file_that_cannot_be_written_stops_no_job(service, tmp_path, caplog):
    service.queue_file.unlink(missing_ok=True)
    service.queue_file.mkdir()  # what a full disk or a broken folder does to the write: it fails, every time
    with caplog.at_level(logging.INFO):
        assert runs_to_the_end(service, tmp_path / "j") == "finished"
        assert runs_to_the_end(service, tmp_path / "j") == "finished"  # the worker is still there
    assert "the queue file could not be written (IsADirectoryError)" in caplog.text and "SECRETWORD" not in caplog.text
    assert [r.state for r in list_runs(Journal.open(tmp_path / "j"))] == ["finished", "finished"]


def test_over_tcp_no_route_hands_out_a_jobs_prompt_or_journal(service, http, tmp_path):
    """Naming the journal protects nothing once a listing hands its path out: over the TCP port (the token's holders)
    a job's spec, options, error and journal reach only the client that submits it, in the answer to its submit."""
    submitted = http.post("/v1/jobs", json=a_job(tmp_path / "j"))
    assert submitted.status_code == 201 and submitted.json()["spec"]["prompt"] == SECRET  # its own submit: all of it
    job_id = submitted.json()["id"]
    wait_until(lambda: service.job(job_id).ended_yet)
    journal = str(tmp_path / "j")
    answers = [http.get("/v1/jobs"), http.get("/v1/jobs", params={"journal": journal}),
               http.get(f"/v1/jobs/{job_id}", params={"journal": journal}),
               http.post(f"/v1/jobs/{job_id}/cancel", params={"journal": journal}), http.get("/v1/status")]
    for reply in answers:
        assert reply.status_code == 200 and "SECRETWORD" not in reply.text and journal not in reply.text, reply.text
    assert http.get(f"/v1/jobs/{job_id}", params={"journal": journal}).json()["state"] == "finished"
    events = http.get(f"/v1/jobs/{job_id}/events", params={"journal": journal})
    assert events.status_code == 404 and "SECRETWORD" not in events.text  # the stream ends with the whole job


def test_the_queue_file_holds_a_waiting_jobs_prompt_once_and_an_ended_ones_never(tmp_path):
    queue = tmp_path / "queue.json"
    idle = Service(queue)  # its worker not started: the jobs wait
    waiting = [idle.submit(JobRequest.model_validate(a_job(tmp_path / "j", prompt=f"{SECRET} {n}"))) for n in (1, 2)]
    assert queue.read_text(encoding="utf-8").count("SECRETWORD") == 2  # once each (in its request)
    assert oct(queue.stat().st_mode & 0o777) == "0o600"
    idle.cancel(waiting[0].id)
    assert queue.read_text(encoding="utf-8").count("SECRETWORD") == 1  # gone as soon as the job ends
    assert idle.job(waiting[0].id).state == "cancelled" and idle.job(waiting[0].id).spec is not None  # (in memory)
    again = Service(queue)  # the next start: a job that never began ended with the service that had it; not run now
    assert [(j.state, j.run) for j in again.jobs()] == [("cancelled", None), ("interrupted", None)]
    assert "SECRETWORD" not in queue.read_text(encoding="utf-8") and not any(j.state == "queued" for j in again.jobs())


# ------------------------------------------------------------------ malformed requests, route by route

HOSTILE = [None, "", " ", "abc", -1, 0, 2**64, -(2**63), 1e308, True, [], {}, [1, 2, 3], {"a": 1}, "\ud800",
           "x" * (TEXT_MAX + 1), "\x1b[31mred", "../../etc/passwd", "1-99999999", "#-1:0"]
RAW = [b"", b"{", b"}", b"[", b"null", b"true", b"1", b'"text"', b"[]", b'{"a":', b"\xff\xfe", b'{"prompt": "\\ud800"',
       b'{"steps": 1e309}', b'{"cfg_scale": NaN}', b'{"cfg_scale": Infinity}', b"[" * 100_000 + b"]" * 100_000,
       b'{"a": ' * 5000 + b"1" + b"}" * 5000, b"\x00" * 64, b'{"prompt": "' + b"y" * 200_000 + b'"}', b"{\"k\":1}" * 9]


def mutations(base: dict) -> list[bytes]:
    """``base`` with each of its fields (nested ones too) set to each hostile value, then bodies that are not even
    its shape: at least 200 for any base with ten fields."""
    bodies = list(RAW)

    def paths(doc: dict, prefix=()):
        for key, value in doc.items():
            yield (*prefix, key)
            if isinstance(value, dict):
                yield from paths(value, (*prefix, key))

    for path in list(paths(base)) + [("unknown_key",)]:
        for value in HOSTILE:
            body = json.loads(json.dumps(base))
            place = body
            for key in path[:-1]:
                place = place[key]
            place[path[-1]] = value
            bodies.append(json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass"))
    return bodies


@pytest.mark.parametrize("route", ["/v1/jobs", "/v1/jobs/{job}/cancel", "/sdapi/v1/txt2img", "/sdapi/v1/img2img",
                                   "/sdapi/v1/img2img?sd-upscale", "/sdapi/v1/interrupt", "/sdapi/v1/skip",
                                   "/sdapi/v1/options"])  # (?sd-upscale: img2img's body with the script; the route
                                                          # takes no query)
def test_every_route_takes_200_malformed_bodies_and_the_service_runs_on(service, http, tmp_path, caplog, route):
    from tests.helpers import make_png

    good = a_job(tmp_path / "j")
    job = http.post("/v1/jobs", json=good).json()["id"]
    png = make_png(tmp_path / "init.png", size=(32, 32)).read_bytes()
    mask = make_png(tmp_path / "mask.png", color=(255, 255, 255), size=(32, 32)).read_bytes()
    bases = {"/v1/jobs": good, "/v1/jobs/{job}/cancel": good, "/sdapi/v1/interrupt": good,  # (bodies they ignore)
             "/sdapi/v1/txt2img": {"prompt": SECRET, "negative_prompt": "blurry", "steps": 1, "cfg_scale": 5,
                                   "width": 32, "height": 32, "seed": 3, "batch_size": 1, "n_iter": 1,
                                   "sampler_name": "Euler", "scheduler": "karras",
                                   "override_settings": {"sd_model_checkpoint": "tiny"}}}
    bases["/sdapi/v1/skip"] = good
    bases["/sdapi/v1/options"] = {"sd_model_checkpoint": "tiny", "sd_vae": "Automatic", "CLIP_stop_at_last_layers": 2,
                                  "emphasis": "No norm", "send_seed": False, "outdir_samples": SECRET,
                                  "jpeg_quality": 80, "img_downscale_threshold": 4.0, "hide_samplers": ["DDIM"]}
    bases["/sdapi/v1/img2img"] = {**bases["/sdapi/v1/txt2img"], "init_images": [base64.b64encode(png).decode()],
                                  "denoising_strength": 0.5, "mask": base64.b64encode(mask).decode(),
                                  "inpaint_full_res": True, "inpaint_full_res_padding": 4, "inpainting_fill": 2,
                                  "mask_blur": 2, "inpainting_mask_invert": 0}
    bases["/sdapi/v1/img2img?sd-upscale"] = {**bases["/sdapi/v1/txt2img"], "init_images": [base64.b64encode(png).decode()],
                                             "denoising_strength": 0.5, "steps": 2, "script_name": "SD upscale",
                                             "script_args": ["", 8, "Lanczos", 1.5]}
    bodies = mutations(bases[route])
    assert len(bodies) >= 200
    with caplog.at_level(logging.INFO):
        for body in bodies:
            reply = http.post(route.format(job=job), content=body, headers={"content-type": "application/json"})
            assert reply.status_code < 500, (body[:200], reply.text[:300])
            if reply.status_code >= 400:  # a refusal: one line, and nothing of the request's text sent back
                assert "SECRETWORD" not in reply.text and "\\n" not in reply.text, reply.text[:300]
    assert "SECRETWORD" not in caplog.text
    for path in ("/v1/jobs", f"/v1/jobs/{job}", "/v1/status", "/sdapi/v1/progress"):
        for value in HOSTILE[:12]:  # the query strings of the routes that take none or one
            assert http.get(path, params={"journal": str(value), "skip_current_image": str(value)}).status_code < 500
    assert http.get("/v1/jobs/%00%ff..").status_code == 404
    assert runs_to_the_end(service, tmp_path / "after") == "finished"  # the service runs on
