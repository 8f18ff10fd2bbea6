"""The service under hostile input (issue 25): a request that is not valid text, or a queue file that cannot be
written, fails alone — one line, no traceback, nothing private logged — and the next job runs."""

from __future__ import annotations

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


def test_a1111s_prompt_that_is_not_text_is_a_422(service, http, tmp_path):
    reply = http.post("/sdapi/v1/txt2img", content=json.dumps({"prompt": "a \ud800 b", "steps": 1}).encode(),
                      headers={"content-type": "application/json"})
    assert reply.status_code == 422 and "surrogate" in reply.text, reply.text
    assert runs_to_the_end(service, tmp_path / "j") == "finished"


def test_a_queue_file_that_cannot_be_written_stops_no_job(service, tmp_path, caplog):
    service.queue_file.unlink(missing_ok=True)
    service.queue_file.mkdir()  # what a full disk or a broken folder does to the write: it fails, every time
    with caplog.at_level(logging.INFO):
        assert runs_to_the_end(service, tmp_path / "j") == "finished"
        assert runs_to_the_end(service, tmp_path / "j") == "finished"  # the worker is still there
    assert "the queue file could not be written (IsADirectoryError)" in caplog.text and "SECRETWORD" not in caplog.text
    assert [r.state for r in list_runs(Journal.open(tmp_path / "j"))] == ["finished", "finished"]
