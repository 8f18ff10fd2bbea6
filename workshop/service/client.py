"""``ServiceClient``: the service's API over its Unix socket (the standard library's ``http.client``), typed by
``api``'s records and the runner's events; ``connect`` finds the service, starting one detached when none answers.
Torch-free and quick to import: the CLI's warm path is this module and pydantic (httpx, which imports Rich and
Pygments for its own command line, cost a warm command 50 ms; a fresh socket per request costs well under 1 ms)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

from .. import paths
from ..errors import from_wire
from ..runner import events as ev
from .api import ErrorBody, JobInfo, JobRequest, ServiceStatus
from .errors import ServiceError, ServiceUnavailable

#: What losing the service looks like from here: the socket refused, gone, timed out or cut mid-answer.
LOST = (OSError, http.client.HTTPException)


class ServiceClient:
    def __init__(self, socket: Path, *, timeout: float = 30.0):
        self.socket = socket
        self.timeout = timeout
        self._open: set[_Connection] = set()  # the connections in use, so that ``close`` can end them
        self._lock = threading.Lock()

    def ping(self) -> bool:
        """Whether a service answers on the socket."""
        if not self.socket.exists():
            return False
        try:
            return self._request("GET", "/v1/ping", timeout=2.0)[0] == 200
        except LOST:
            return False

    def submit(self, request: JobRequest) -> JobInfo:
        return JobInfo.model_validate(self._call("POST", "/v1/jobs", body=request.model_dump(mode="json")))

    def job(self, job_id: str, journal: str | None = None) -> JobInfo:
        return JobInfo.model_validate(self._call("GET", f"/v1/jobs/{job_id}", journal))

    def jobs(self, journal: str | None = None) -> list[JobInfo]:
        return [JobInfo.model_validate(j) for j in self._call("GET", "/v1/jobs", journal)]

    def cancel(self, job_id: str, journal: str | None = None) -> JobInfo:
        return JobInfo.model_validate(self._call("POST", f"/v1/jobs/{job_id}/cancel", journal))

    def follow(self, job_id: str, journal: str) -> Iterator[ev.Event | JobInfo]:
        """The job's progress events as the runner's typed events (what happened so far first), then the job as it
        ended (a JobInfo, the last item). ServiceUnavailable when the stream ends before that."""
        run = None  # the job's run, once it has one
        try:
            with self._connection(None) as connection:
                connection.request("GET", _url(f"/v1/jobs/{job_id}/events", journal))
                reply = connection.getresponse()
                if reply.status != 200:
                    raise _refusal(reply.status, reply.read())
                kind = None
                for raw in reply:
                    line = raw.decode("utf-8").strip()
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:])
                        item = JobInfo.model_validate(data) if kind == "end" else ev.from_json(data)
                        run = item.run if isinstance(item, ev.RunStarted) else run
                        yield item
                        if kind == "end":
                            return
            lost = f"the service ended job {job_id}'s events early"
        except LOST as exc:
            lost = f"lost the service while following job {job_id} ({type(exc).__name__})"
        raise ServiceUnavailable(f"{lost}; its finished images are kept: `promptism resume {run}` finishes run {run}"
                                 if run else f"{lost}; `promptism serve status` says whether it runs")

    def close(self) -> None:
        """End every request in flight (a ``follow`` reading in another thread ends with ServiceUnavailable)."""
        with self._lock:
            for connection in self._open:
                connection.cut()

    def status(self) -> ServiceStatus:
        return ServiceStatus.model_validate(self._call("GET", "/v1/status"))

    def stop(self) -> None:
        self._call("POST", "/v1/stop")

    def _call(self, method: str, url: str, journal: str | None = None, body: dict | None = None):
        """The service's JSON answer; its refusal as a ServiceError, no answer as ServiceUnavailable."""
        try:
            status, data = self._request(method, _url(url, journal), body=body)
        except LOST as exc:
            raise ServiceUnavailable(f"no service answers on {self.socket} ({type(exc).__name__}); "
                                     "`promptism serve --detach` starts one") from None
        if status >= 400:
            raise _refusal(status, data)
        return json.loads(data)

    def _request(self, method: str, url: str, *, body: dict | None = None, timeout: float | None = None):
        """(status, body bytes) of one request on a connection of its own."""
        with self._connection(timeout or self.timeout) as connection:
            if body is None:
                connection.request(method, url)
            else:
                connection.request(method, url, body=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"})
            reply = connection.getresponse()
            return reply.status, reply.read()

    def _connection(self, timeout: float | None) -> _Connection:
        return _Connection(self, timeout)


class _Connection(http.client.HTTPConnection):
    """One HTTP/1.1 connection over the service's Unix socket, registered with its client while open."""

    def __init__(self, client: ServiceClient, timeout: float | None):
        super().__init__("promptism", timeout=timeout)
        self._client = client

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._client.socket))
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def cut(self) -> None:
        """Wake a read blocked on this connection in another thread: it sees the end of the stream."""
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # (closed already)
                pass

    def __enter__(self) -> _Connection:
        with self._client._lock:
            self._client._open.add(self)
        return self

    def __exit__(self, *exc) -> None:
        with self._client._lock:
            self._client._open.discard(self)
        self.close()


def connect(autostart: bool = True, serve_args: list[str] | None = None,
            announce: Callable[[str], None] = lambda line: None) -> ServiceClient:
    """A client of the running service; with ``autostart``, one started detached (``promptism serve --detach``)
    when none answers, said first through ``announce``. ServiceUnavailable when none runs and ``autostart`` is False."""
    client = ServiceClient(paths.socket_path())
    if client.ping():
        return client
    if not autostart:
        raise ServiceUnavailable("no service is running (`promptism serve --detach` starts one)")
    from .daemon import running_pid, spawn

    if running_pid() is None:
        announce("starting the promptism service (it keeps models warm and outlives this terminal; it exits when idle, "
                 "`promptism serve stop` stops it)…")
        spawn(serve_args or [], client.ping)
    elif not _wait_for(client):
        raise ServiceUnavailable(f"a service holds the lock (pid {running_pid()}) but does not answer on "
                                 f"{client.socket}; `promptism serve stop` or kill it")
    return client


def _wait_for(client: ServiceClient, seconds: float = 30.0) -> bool:
    """A service starting just now answers within ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.ping():
            return True
        time.sleep(0.05)
    return False


def _url(path: str, journal: str | None) -> str:
    return f"{path}?{urlencode({'journal': journal})}" if journal else path


def _refusal(status: int, body: bytes) -> ServiceError:
    """The service's error answer (``ErrorBody``) as an error of this client, to be worded as its own."""
    try:
        error = ErrorBody.model_validate_json(body)
    except ValueError:  # not JSON, or not an ErrorBody
        return ServiceError(f"the service answered {status}")
    return ServiceError(from_wire(error.error), code=error.code, field=error.field)
