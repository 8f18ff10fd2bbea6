"""``create_app(service)``: the service's HTTP API (FastAPI) under ``/v1``, typed by ``api``'s records; progress as
Server-Sent Events; every error a JSON body ``{"error": one line}``. On a TCP port every request needs the bearer
token (also accepted as the HTTP basic-auth password, which A1111 clients send); on the Unix socket, whose mode is
0600, none does. A1111's routes join under ``/sdapi/v1`` where ``a1111.py`` is there."""


import base64
import hmac
import importlib.util
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from journal.text import one_line

from ..errors import as_wire
from .api import ErrorBody, JobInfo, JobRequest, ServiceStatus
from .executor import request_problem

STATUS = {"no_journal": 404}  # an error code → its HTTP status (400 otherwise)
from .service import QueueFull, Service

ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 422, 429)}


def create_app(service: Service, *, token: str | None = None, stop=lambda: None) -> FastAPI:
    """The app for ``service``; ``token``: required of every request that does not come over the Unix socket;
    ``stop``: what ``POST /v1/stop`` calls (the daemon ends the server)."""
    app = FastAPI(title="promptism service", version="1", responses=ERRORS)

    @app.middleware("http")
    async def bearer_token(request: Request, call_next):
        if not over_socket(request) and not (token and _authorised(request.headers.get("authorization", ""), token)):
            return JSONResponse({"error": "this port needs the service's token: Authorization: Bearer TOKEN (see "
                                 "`promptism serve --listen`)"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "the request"
        body = ErrorBody(error=one_line(f"malformed request: {where}: {first.get('msg', 'invalid')}"), code="malformed",
                         field=where if first.get("loc") else None)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": one_line(str(exc.detail))}, status_code=exc.status_code, headers=exc.headers)

    def known(job_id: str) -> JobInfo:
        try:
            return service.job(job_id)
        except KeyError:
            raise HTTPException(404, f"no job {job_id} in this service (`promptism serve status` lists them)") from None

    def shown(info: JobInfo, journal: str | None, request: Request) -> JobInfo:
        """What the asker may see of a job: all of it on the socket when it names the job's journal, less its spec
        and error when not, and over TCP only its state (``JobInfo.remote``)."""
        if not over_socket(request):
            return info.remote()
        return info if journal == info.journal else info.public()

    @app.get("/v1/ping")
    def ping() -> dict:
        return {"ok": True}

    @app.post("/v1/jobs", status_code=201)
    def submit(request: JobRequest) -> JobInfo:
        if problem := request_problem(request):
            body = ErrorBody(error=one_line(problem.worded(as_wire)), code=problem.code, field=problem.field)
            return JSONResponse(body.model_dump(exclude_none=True), status_code=STATUS.get(problem.code, 400))
        try:
            return service.submit(request)
        except QueueFull as exc:
            raise HTTPException(429, str(exc)) from None

    @app.get("/v1/jobs")
    def jobs(request: Request, journal: str | None = None) -> list[JobInfo]:
        return [shown(info, journal, request) for info in service.jobs()]

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str, request: Request, journal: str | None = None) -> JobInfo:
        return shown(known(job_id), journal, request)

    @app.post("/v1/jobs/{job_id}/cancel")
    def cancel(job_id: str, request: Request, journal: str | None = None) -> JobInfo:
        known(job_id)
        return shown(service.cancel(job_id), journal, request)

    def watched(job_id: str, request: Request, journal: str | None = None) -> str:
        """A job's events (its previews, its end with its spec) go to a client on the socket that names its journal
        (checked before the stream starts)."""
        if not over_socket(request) or journal != known(job_id).journal:
            raise HTTPException(404, f"no job {job_id} for that journal")
        return job_id

    @app.get("/v1/jobs/{job_id}/events", response_class=EventSourceResponse)
    async def events(job_id: Annotated[str, Depends(watched)]) -> AsyncIterator[ServerSentEvent]:
        """The job's progress events (``event: progress``, a replay first), then ``event: end`` with the job."""
        async for event in service.subscribe(job_id):
            yield ServerSentEvent(event="progress", data=event.to_json(previews=True))
        yield ServerSentEvent(event="end", data=service.job(job_id).model_dump(mode="json"))

    @app.get("/v1/status")
    def status(request: Request) -> ServiceStatus:
        status = service.status()
        return status if over_socket(request) else status.model_copy(update={"jobs": [j.remote() for j in status.jobs]})

    @app.post("/v1/stop", status_code=202)
    def stop_service() -> dict:
        stop()
        return {"stopping": True}

    if importlib.util.find_spec(f"{__package__}.a1111") is not None:
        from . import a1111, a1111_settings

        app.include_router(a1111.router(service), prefix="/sdapi/v1")
        app.include_router(a1111_settings.internal_router())  # A1111's /internal/ping, at the root
    return app


def over_socket(request: Request) -> bool:
    """Whether ``request`` came over the service's Unix socket (mode 0600: from its owner), not the TCP port."""
    server = request.scope.get("server")
    return server is not None and server[1] is None  # uvicorn names a Unix socket (path, None)


def _authorised(header: str, token: str) -> bool:
    """``Bearer TOKEN``, or ``Basic`` with TOKEN as the password (any user name)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8: no token
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode("utf-8"), token.encode("utf-8"))
