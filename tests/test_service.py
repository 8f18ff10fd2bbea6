"""The runner as a service, as users meet it: generate through a service it starts itself (the same bytes as
--local, warm the second time), serve / status / stop, one service per user, stale sockets, kills of clients and of
the service mid-grid, cancel from another client, the TCP port's token, bad requests, a model that fails to load,
no prompt in the log or the status, and the idle timeout. Every service a test starts is stopped, by pid."""

import json
import os
import signal
import socket
import stat
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from journal import Journal
from tests.helpers import EXE, alive, poll_until, run_cli, service_pid
from workshop import paths
from workshop.runner.runs import list_runs, load_run
from workshop.service.api import JobRequest
from workshop.service.client import ServiceClient
from workshop.service.errors import ServiceError

PROMPT = "a lighthouse at dusk, SECRET-WORD"
SLOW_GRID = ["grid", "-p", PROMPT, "--seeds", "1-5", "--max-batch", "1", "--steps", "6", "--size", "32x32", "--clip", "none"]


def client() -> ServiceClient:
    return ServiceClient(paths.socket_path())


def png_bytes(jdir: Path) -> list[bytes]:
    journal = Journal.open(jdir)
    runs = sorted(os.listdir(jdir / ".promptism" / "runs"))
    run = load_run(journal, runs[-1])
    return [run.image(c).read_bytes() for c in run.done]


def test_generate_starts_a_service_gives_the_local_bytes_and_reuses_it(service, tmp_path, capsys):
    args = ["generate", PROMPT, "--seeds", "1-2", "--steps", "2", "--size", "32x32"]
    code, out, err = run_cli(capsys, *args, "--journal", str(tmp_path / "a"))
    assert code == 0, err
    pid = service_pid()
    assert pid and alive(pid) and pid != os.getpid()
    code, out, err = run_cli(capsys, *args, "--journal", str(tmp_path / "a"))
    assert code == 0 and service_pid() == pid, err  # the warm service, not a new one
    code, out, err = run_cli(capsys, *args, "--local", "--journal", str(tmp_path / "b"))
    assert code == 0, err
    assert png_bytes(tmp_path / "a") == png_bytes(tmp_path / "b")
    assert stat.S_IMODE(paths.socket_path().stat().st_mode) == 0o600 and stat.S_ISSOCK(paths.socket_path().stat().st_mode)
    assert stat.S_IMODE(paths.runtime_dir().stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.queue_file().stat().st_mode) == 0o600

    code, out, err = run_cli(capsys, "serve", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["pid"] == pid and [j["state"] for j in status["jobs"]] == ["finished", "finished"], err
    assert b"SECRET" not in out.encode() and b"lighthouse" not in out.encode()
    code, out, err = run_cli(capsys, "serve", "status")
    assert code == 0 and f"service pid {pid}" in out and "SECRET" not in out, err
    code, out, err = run_cli(capsys, "serve")  # a second one refuses, naming the first
    assert code == 1 and f"already running (pid {pid})" in err and err.count("\n") == 1, err
    log = paths.log_file().read_bytes()
    assert b"finished" in log and b"SECRET" not in log and b"lighthouse" not in log

    code, out, err = run_cli(capsys, "serve", "stop")
    assert code == 0 and f"stopped (pid {pid})" in out, err
    poll_until(lambda: not alive(pid), 30, "the process to end")
    assert not paths.socket_path().exists() and not paths.pid_file().exists()
    code, out, err = run_cli(capsys, "serve", "status")
    assert code == 1 and "no service is running" in err, err


def test_a_stale_socket_is_replaced_and_the_idle_timeout_exits(service, capsys):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(paths.socket_path()))  # what a killed service leaves: a socket file nobody answers
    stale.close()
    code, out, err = run_cli(capsys, "serve", "--detach", "--idle-timeout", "0.05")
    assert code == 0 and "service started" in out, err
    pid = service_pid()
    assert client().ping()
    poll_until(lambda: not alive(pid), 120, "the idle service to exit")
    assert not paths.socket_path().exists() and not paths.pid_file().exists()
    assert b"idle" in paths.log_file().read_bytes()


@pytest.mark.parametrize("value, shown", [("nan", "nan"), ("inf", "inf"), ("1e309", "inf"), ("0", None)])
def test_an_idle_timeout_that_is_no_finite_number_above_0_is_refused(value, shown, service):
    """In a process of its own, with a time limit: a service that took the value would serve on (and be stopped)."""
    done = subprocess.run([EXE, "serve", "--idle-timeout", value], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    wanted = f"{shown} is not a number of minutes: give one above 0, such as 15" if shown else "0.0 is not in the range x>0"
    assert f"Invalid value for '--idle-timeout': {wanted}" in done.stderr, done.stderr
    assert service_pid() is None


def test_a_ray_cluster_it_cannot_reach_is_its_one_line_on_stderr(service):
    done = subprocess.run([EXE, "serve", "--ray", "bogus"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and done.stderr == ("promptism: cannot reach the Ray cluster at bogus (ValueError): start "
                                                    "it (`ray start --head`) or pass --ray auto\n"), done.stderr
    assert service_pid() is None and not paths.socket_path().exists()


def test_a_killed_client_leaves_its_job_running_and_another_can_follow(warm_service, tmp_path, capsys):
    j = tmp_path / "j"
    proc = subprocess.Popen([EXE, *SLOW_GRID, "--json", "--journal", str(j)], stdout=subprocess.PIPE, text=True)
    warm_service.append(proc)
    run_id = None
    for line in proc.stdout:
        event = json.loads(line)
        run_id = event.get("run", run_id)
        if event["event"] == "BatchFinished":
            break
    proc.kill()  # kill -9 of the client mid-grid
    proc.wait()
    code, out, err = run_cli(capsys, "runs", run_id, "--follow", "--json", "--journal", str(j))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "RunFinished" and events[-1]["state"] == "finished", out[-500:]
    assert events[0]["event"] == "Loading"  # a late watcher gets what happened before it came
    run = load_run(Journal.open(j), run_id)
    assert run.state == "finished" and len(run.done) == 5
    code, out, err = run_cli(capsys, "runs", run_id, "--follow", "--journal", str(j))
    assert code == 1 and f"run {run_id} is not running in a service (it is finished)" in err, err


def test_a_command_whose_output_is_gone_cancels_the_job_it_started(warm_service, tmp_path):
    """`promptism grid … --json | head -1`: the command ends when its pipe closes; nobody waits for its job any more."""
    j = tmp_path / "j"
    proc = subprocess.Popen([EXE, *SLOW_GRID, "--json", "--journal", str(j)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    warm_service.append(proc)
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()  # what `head -1` does after its line
    assert proc.wait(timeout=300) == 1  # click's code for a closed stdout, said quietly
    assert "promptism:" not in proc.stderr.read()
    poll_until(lambda: all(job.ended_yet for job in client().jobs()), 300, "the job to end")
    job = next(job for job in client().jobs(str(j)) if job.journal == str(j))
    assert first["event"] == "Loading" and job.state == "cancelled", job


def test_cancel_from_another_client_ends_the_generate_with_130(warm_service, tmp_path):
    j = tmp_path / "j"
    proc = subprocess.Popen([EXE, *SLOW_GRID, "--journal", str(j)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    warm_service.append(proc)
    poll_until(lambda: client().ping() and any(job.state == "running" and job.done for job in client().jobs()), 180,
             "the job to finish a batch")
    job = next(job for job in client().jobs() if job.state == "running")
    assert client().cancel(job.id).state == "running"  # it stops between steps
    assert proc.wait(timeout=120) == 130
    err = proc.stderr.read()
    assert "cancelled:" in err and job.run in err, err
    run = load_run(Journal.open(j), job.run)
    assert run.state == "cancelled" and 1 <= len(run.done) < 5


def test_kill_9_of_the_service_mid_grid_keeps_batches_and_the_queue_and_resume_gives_the_same_bytes(
        service, tmp_path, capsys):
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "serve", "--detach")
    assert code == 0, err
    pid = service_pid()
    values = {"prompt": PROMPT, "seeds": "1-5"}
    options = {"model": "tiny", "steps": 6, "size": [32, 32], "max_batch": 1, "clip": "none"}
    first = client().submit(JobRequest(kind="grid", journal=str(j), spec=values, options=options, create=True))
    second = client().submit(JobRequest(kind="grid", journal=str(j), spec=values, options=options, create=True))
    lost: list[Exception] = []
    follower = threading.Thread(target=lambda: _follow_into(first.id, str(j), lost))  # a client watching it
    follower.start()
    poll_until(lambda: (client().job(first.id).done or 0) >= 1, 180, "a finished batch")
    os.kill(pid, signal.SIGKILL)
    poll_until(lambda: not alive(pid), 30, "the kill")
    follower.join(60)
    run = load_run(Journal.open(j), client_free_run(first.id))
    assert run.state == "interrupted" and 1 <= len(run.done) < 5
    assert len(lost) == 1 and isinstance(lost[0], ServiceError) and f"`promptism resume {run.id}`" in str(lost[0])
    code, out, err = run_cli(capsys, "serve", "--detach")  # the stale socket and pid file are replaced
    assert code == 0, err
    service.append(service_pid())
    jobs = {job.id: job for job in client().jobs()}
    assert jobs[first.id].state == "interrupted" and jobs[first.id].run == run.id
    assert jobs[second.id].state == "interrupted" and jobs[second.id].run is None  # never begun: not run later
    assert not any(job.state in ("queued", "running") for job in client().jobs())
    code, out, err = run_cli(capsys, "resume", run.id, "--journal", str(j))  # through the new service
    assert code == 0, err
    resumed = load_run(Journal.open(j), run.id)
    assert resumed.state == "finished" and len(resumed.done) == 5
    code, out, err = run_cli(capsys, "grid", "-p", PROMPT, "--seeds", "1-5", "--model", "tiny", "--steps", "6", "--size",
                             "32x32", "--max-batch", "1", "--clip", "none", "--local", "--journal", str(tmp_path / "fresh"))
    assert code == 0, err
    fresh = list_runs(Journal.open(tmp_path / "fresh"))[0]  # the same grid, never interrupted
    assert [resumed.image(c).read_bytes() for c in resumed.done] == [fresh.image(c).read_bytes() for c in fresh.done]


def _follow_into(job_id: str, journal: str, lost: list[Exception]) -> None:
    try:
        for _ in client().follow(job_id, journal):
            pass
    except ServiceError as exc:
        lost.append(exc)


def client_free_run(job_id: str) -> str:
    """The run of a job, read from the queue file (the service is dead)."""
    doc = json.loads(paths.queue_file().read_text())
    return next(j["info"]["run"] for j in doc["jobs"] if j["info"]["id"] == job_id)


def test_bad_requests_get_one_line_and_the_service_serves_on(warm_service, tmp_path, capsys):
    pid = service_pid()
    http = httpx.Client(transport=httpx.HTTPTransport(uds=str(paths.socket_path())), base_url="http://promptism")
    reply = http.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert reply.status_code == 422 and "\n" not in reply.json()["error"] and "malformed" in reply.json()["error"]
    reply = http.post("/v1/jobs", json={"kind": "paint", "journal": str(tmp_path)})
    assert reply.status_code == 422 and reply.json()["error"].startswith("malformed request: kind")
    reply = http.get("/v1/jobs/j-nope")
    assert reply.status_code == 404 and "no job j-nope" in reply.json()["error"]
    with pytest.raises(ServiceError, match="no promptism journal at /nonexistent"):
        client().submit(JobRequest(kind="rerun", journal="/nonexistent/j", number=1))
    with pytest.raises(ServiceError, match="no promptism journal at /nonexistent"):  # made only when asked for
        client().submit(JobRequest(kind="grid", journal="/nonexistent/j", spec={"prompt": PROMPT}))
    assert not Path("/nonexistent").exists()
    with pytest.raises(ServiceError, match="too many for a grid"):  # a spec that cannot be composed is refused, not queued
        client().submit(JobRequest(kind="grid", journal=str(tmp_path / "new"), spec={"prompt": PROMPT, "seeds": "1-100000"},
                                   create=True))
    assert not (tmp_path / "new").exists() and all(job.state != "failed" for job in client().jobs())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ServiceError, match="is not a folder"):
        client().submit(JobRequest(kind="grid", journal=str(tmp_path / "file"), spec={"prompt": PROMPT}))
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    code, out, err = run_cli(capsys, "generate", PROMPT, "--model", str(broken), "--journal", str(tmp_path / "j"))
    assert code == 1 and err.count("\n") == 1 and "cannot load model" in err, err
    assert not (tmp_path / "j").exists()  # nothing written for a job that failed before its run
    code, out, err = run_cli(capsys, "generate", PROMPT, "--steps", "1", "--size", "32x32", "--journal", str(tmp_path / "j"))
    assert code == 0 and service_pid() == pid, err  # the same service serves on
    assert b"SECRET" not in paths.log_file().read_bytes()
    assert b"SECRET" not in paths.queue_file().read_bytes()  # an ended job's spec is not kept


def test_the_tcp_port_needs_the_token(service, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = run_cli(capsys, "serve", "--listen", "0.0.0.0:7860")
    assert code == 1 and "--allow-remote" in err and err.count("\n") == 1 and service_pid() is None, err
    code, out, err = run_cli(capsys, "serve", "--listen", "")  # no address: not "no --listen" (the tally's find)
    assert code == 1 and "--listen : write HOST:PORT" in err and err.count("\n") == 1 and service_pid() is None, err
    code, out, err = run_cli(capsys, "serve", "--detach", "--listen", f"127.0.0.1:{port}")
    assert code == 0, err
    token = out.split(": ")[-1].split()[0]
    assert paths.token_file().read_text().strip() == token
    assert stat.S_IMODE(paths.token_file().stat().st_mode) == 0o600
    url = f"http://127.0.0.1:{port}/v1/status"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).json()["listen"] == f"127.0.0.1:{port}"
    assert httpx.get(url, auth=("anyone", token)).status_code == 200  # A1111 clients' set_auth
    assert token.encode() not in paths.log_file().read_bytes()


def test_journal_commands_dry_runs_and_help_never_start_the_service(service, tmp_path, capsys):
    for args in (["log", "--journal", str(tmp_path / "j")], ["grid", "-p", PROMPT, "--dry-run"],
                 ["generate", "--help"], ["runs", "--journal", str(tmp_path / "j")]):
        run_cli(capsys, *args)
    assert service_pid() is None and not paths.socket_path().exists()
    code, out, err = run_cli(capsys, "serve", "stop")  # stopped already: what was asked for is so
    assert code == 0 and "no service is running: nothing to stop" in out and service_pid() is None, err
