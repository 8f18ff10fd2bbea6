"""Shared fixtures: an isolated home (no git identity, no user dirs) and fresh journals."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import service_pid, stop_pid


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache of built-in models for the whole session (the tiny pipeline is built once)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch, model_cache):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))  # no user.name: the journal must cope
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf-cache"))
    monkeypatch.setenv("PROMPTISM_CACHE", str(model_cache))
    monkeypatch.setenv("PROMPTISM_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("PROMPTISM_RUNTIME", str(home / "run"))
    monkeypatch.setenv("PROMPTISM_STATE", str(home / "state"))
    monkeypatch.setenv("PROMPTISM_SERVICE", "off")  # in-process, as before; the service's tests turn it on
    monkeypatch.delenv("PROMPTISM_JOURNAL", raising=False)
    monkeypatch.delenv("PROMPTISM_FAILPOINT", raising=False)
    return home


@pytest.fixture
def jdir(tmp_path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def journal(jdir) -> Journal:
    return Journal.init(jdir)


@pytest.fixture
def service(monkeypatch):
    """Jobs go through the service (started by the commands themselves); every service and client started here is
    stopped in teardown, by pid. Yields the list to put client processes in."""
    monkeypatch.setenv("PROMPTISM_SERVICE", "on")
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")
    started: list = []
    yield started
    for item in started:
        if isinstance(item, subprocess.Popen):
            if item.poll() is None:
                item.kill()
            item.wait()
        else:
            stop_pid(item)
    if (pid := service_pid()) is not None:
        stop_pid(pid)
