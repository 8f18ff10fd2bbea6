"""``ServiceClient``: the service's API over its Unix socket (httpx), typed by ``api``'s records and the runner's
events; ``connect`` finds the service, starting one detached when none answers. Torch-free and quick to import: the
CLI's warm path is this module, httpx and pydantic."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from .. import paths
from ..errors import from_wire
from ..runner import events as ev
from .api import ErrorBody, JobInfo, JobRequest, ServiceStatus
from .errors import ServiceError, ServiceUnavailable


class ServiceClient:
    def __init__(self, socket: Path, *, timeout: float = 30.0):
        self.socket = socket
        # plain HTTP over a Unix socket: verify=False spares the TLS context (reading the CA bundle: 65 ms a command)
        self._http = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket), verify=False), base_url="http://promptism",
                                  timeout=timeout)

    def ping(self) -> bool:
        """Whether a service answers on the socket."""
        if not self.socket.exists():
            return False
        try:
            return self._http.get("/v1/ping", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def submit(self, request: JobRequest) -> JobInfo:
        return JobInfo.model_validate(self._call("POST", "/v1/jobs", json=request.model_dump(mode="json")))

    def job(self, job_id: str, journal: str | None = None) -> JobInfo:
        return JobInfo.model_validate(self._call("GET", f"/v1/jobs/{job_id}", params=_journal(journal)))

    def jobs(self, journal: str | None = None) -> list[JobInfo]:
        return [JobInfo.model_validate(j) for j in self._call("GET", "/v1/jobs", params=_journal(journal))]

    def cancel(self, job_id: str, journal: str | None = None) -> JobInfo:
        return JobInfo.model_validate(self._call("POST", f"/v1/jobs/{job_id}/cancel", params=_journal(journal)))

    def follow(self, job_id: str, journal: str) -> Iterator[ev.Event | JobInfo]:
        """The job's progress events as the runner's typed events (what happened so far first), then the job as it
        ended (a JobInfo, the last item)."""
        run = None  # the job's run, once it has one
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/events", params=_journal(journal), timeout=None) as reply:
                if reply.status_code != 200:
                    reply.read()
                    raise _refusal(reply)
                kind = None
                for line in reply.iter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:])
                        item = JobInfo.model_validate(data) if kind == "end" else ev.from_json(data)
                        run = item.run if isinstance(item, ev.RunStarted) else run
                        yield item
        except httpx.TransportError as exc:
            lost = f"lost the service while following job {job_id} ({type(exc).__name__})"
            raise ServiceUnavailable(f"{lost}; its finished images are kept: `promptism resume {run}` finishes run {run}"
                                     if run else f"{lost}; `promptism serve status` says whether it runs") from None

    def close(self) -> None:
        """Close the connection (a ``follow`` reading in another thread ends with ServiceUnavailable)."""
        self._http.close()

    def status(self) -> ServiceStatus:
        return ServiceStatus.model_validate(self._call("GET", "/v1/status"))

    def stop(self) -> None:
        self._call("POST", "/v1/stop")

    def _call(self, method: str, url: str, **kw):
        try:
            reply = self._http.request(method, url, **kw)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"no service answers on {self.socket} ({type(exc).__name__}); "
                                     "`promptism serve --detach` starts one") from None
        if reply.status_code >= 400:
            raise _refusal(reply)
        return reply.json()


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


def _journal(journal: str | None) -> dict:
    return {"journal": journal} if journal else {}


def _refusal(reply: httpx.Response) -> ServiceError:
    """The service's error answer (``ErrorBody``) as an error of this client, to be worded as its own."""
    try:
        body = ErrorBody.model_validate(reply.json())
    except ValueError:  # not JSON, or not an ErrorBody
        return ServiceError(f"the service answered {reply.status_code}")
    return ServiceError(from_wire(body.error), code=body.code, field=body.field)

