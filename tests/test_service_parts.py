"""The service's parts that need no running service: the events' JSON round trip (previews as base64 PNG), the
private runtime and state folders, the settings, and what the client side imports."""

import os
import stat

import pytest
from PIL import Image

from tests.helpers import imported_after
from workshop import paths
from workshop.runner import events as ev
from workshop.service.daemon import parse_listen
from workshop.service.errors import ServiceError


def test_events_round_trip_through_json_previews_included():
    image = Image.new("RGB", (8, 8), (200, 30, 30))
    for event in (ev.Loading("tiny", "CPU"), ev.RunStarted("r1", 4, 2, "tiny", "CPU"),
                  ev.Step(0, [0, 1], 1, 4, 3, 8, 2.5, None), ev.RunFinished("r1", "finished", 4, 1.5),
                  ev.Note("m has no T5 text encoder")):
        assert ev.from_json(event.to_json()) == event
    preview = ev.from_json(ev.Preview(0, [0], 2, [image]).to_json(previews=True))
    assert preview.images[0].tobytes() == image.tobytes() and preview.step == 2
    assert "images" not in ev.Preview(0, [0], 2, [image]).to_json()  # JSON lines leave the pixels out
    with pytest.raises(ValueError):
        ev.from_json({"event": "Nope"})


def test_a_preview_over_the_pixel_limit_or_no_image_is_left_out_never_decoded(tmp_path):
    import base64

    from tests.helpers import declared_png

    bomb = base64.b64encode(declared_png(tmp_path / "bomb.png", 100_000, 100_000).read_bytes()).decode("ascii")
    good = ev.Preview(0, [0], 1, [Image.new("RGB", (8, 8))]).to_json(previews=True)["images"][0]
    preview = ev.from_json({"event": "Preview", "batch": 0, "cells": [0], "step": 1, "images": [bomb, "not base64!", good]})
    assert [image.size for image in preview.images] == [(8, 8)]


def test_private_folders_are_0700_and_others_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTISM_RUNTIME", str(tmp_path / "run"))
    assert stat.S_IMODE(paths.runtime_dir().stat().st_mode) == 0o700
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    monkeypatch.setenv("PROMPTISM_RUNTIME", str(tmp_path / "open"))
    with pytest.raises(paths.UnsafePath, match="may be written by others"):
        paths.runtime_dir()
    monkeypatch.setenv("PROMPTISM_RUNTIME", str(tmp_path / ("x" * 120)))
    assert len(os.fsencode(paths.socket_path())) <= paths.SOCKET_MAX  # too long for a socket: a short folder
    paths.write_private(tmp_path / "secret", b"x")
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


@pytest.mark.parametrize("text, allow, expected", [
    ("127.0.0.1:7860", False, ("127.0.0.1", 7860)), ("[::1]:80", False, ("::1", 80)),
    ("0.0.0.0:7860", True, ("0.0.0.0", 7860))])
def test_listen_addresses(text, allow, expected):
    assert parse_listen(text, allow) == expected


@pytest.mark.parametrize("text", ["0.0.0.0:7860", "example.org:80", "127.0.0.1", "127.0.0.1:0"])
def test_listen_refuses_remote_and_malformed_addresses(text):
    with pytest.raises(ServiceError):
        parse_listen(text, False)


def test_the_client_side_imports_no_torch_and_the_service_no_textual():
    heavy = ("torch", "diffusers", "transformers", "textual", "fastapi", "uvicorn", "httpx", "rich")  # rich: printing only
    client_side = ("workshop.service.client", "workshop.service.api", "workshop.cli.job_progress", "workshop.cli.run_commands")
    assert imported_after(*client_side, watch=heavy) == []
    assert imported_after("workshop.service.server", "workshop.service.service", watch=("textual", "workshop.tui")) == []


def test_a_full_queue_is_refused_in_one_line_and_the_queued_job_stays(tmp_path):
    from fastapi.testclient import TestClient

    from journal import Journal
    from workshop.service.server import create_app
    from workshop.service.service import Service

    service = Service(tmp_path / "jobs.json", max_queue=1)  # its worker not started: jobs stay queued
    client = TestClient(create_app(service, token="t"), headers={"Authorization": "Bearer t"})
    Journal.init(tmp_path / "j")
    body = {"kind": "grid", "journal": str(tmp_path / "j"), "spec": {"prompt": "a red circle"}}
    first = client.post("/v1/jobs", json=body)
    assert first.status_code == 201
    refused = client.post("/v1/jobs", json=body)
    assert refused.status_code == 429 and "queue is full" in refused.json()["error"] and "\n" not in refused.json()["error"]
    assert [job.id for job in service.jobs()] == [first.json()["id"]]

