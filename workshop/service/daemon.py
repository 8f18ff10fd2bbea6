"""Running the service: ``serve`` in the foreground (logging to stderr) and ``spawn`` for ``serve --detach`` and the
clients' autostart (a new session, so it survives the terminal and the SSH session; logging to the log file). A
flock held for the life of the service makes a second one refuse with the first's pid, and shows that a socket left
by a killed one is stale (it is replaced). uvicorn serves the Unix socket (0600 before it accepts) and, with
``--listen``, a loopback TCP port that needs the bearer token. Only ``serve`` imports uvicorn and the runner (and,
with ``--ray``, Ray: it joins or starts the cluster before it answers)."""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import paths
from .errors import ServiceError

log = logging.getLogger("promptism.service")
START_TIMEOUT_S = 120.0


def parse_listen(text: str, allow_remote: bool) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6); a host other than loopback only with ``allow_remote``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServiceError(f"--listen {text}: write HOST:PORT, e.g. 127.0.0.1:7860")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ServiceError(f"--listen {text}: name the address as an IP address (127.0.0.1, ::1)") from None
    if not loopback and not allow_remote:
        raise ServiceError(f"--listen {text}: {host} is reachable from other machines; the token is then all that "
                           "guards your prompts and GPU — pass --allow-remote if you mean it (or use 127.0.0.1)")
    return host, int(port)


def token(create: bool = True) -> tuple[str, bool]:
    """The bearer token of the TCP port (stored 0600 in the state folder), and whether it was made just now."""
    path = paths.token_file()
    if path.is_file():
        return path.read_text(encoding="ascii").strip(), False
    if not create:
        raise ServiceError(f"no service token in {path}: start the service with --listen")
    value = secrets.token_urlsafe(32)
    paths.write_private(path, value.encode("ascii") + b"\n")
    return value, True


def running_pid() -> int | None:
    """The pid of the service that holds the lock, or None when none does."""
    fd = _open_lock()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _pid_in_file()
    finally:
        os.close(fd)
    return None


def spawn(args: list[str], answers: Callable[[], bool]) -> int:
    """Start ``promptism serve ARGS`` detached (a new session, stdin closed, output to the log file, in /) and wait
    until it ``answers()`` (the client's ping); its pid. ServiceError, with the log's last line, if it does not come
    up."""
    if (pid := running_pid()) is not None:
        raise ServiceError(f"a service is already running (pid {pid}); `promptism serve stop` stops it")
    log_path = paths.log_file()
    out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "workshop.cli", "serve", *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, cwd="/", start_new_session=True,
                                env={**os.environ, "PYTHONPATH": _import_path()})
    finally:
        os.close(out)
    # reaped when it ends while we live (the workshop outlives many services): a zombie counts as alive, and its
    # runs would look running, never interrupted, to `u`
    threading.Thread(target=proc.wait, name="reap-service", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if answers():
            return _pid_in_file() or proc.pid
        if proc.poll() is not None and running_pid() is None and not answers():  # (another may have won)
            raise ServiceError(f"the service did not start: {_last_line(log_path)} (log: {log_path})")
        time.sleep(0.05)
    raise ServiceError(f"the service did not answer within {START_TIMEOUT_S:.0f} s (log: {log_path})")


def serve(*, journal: Path | None, listen: str | None, allow_remote: bool, idle_timeout_s: float, max_queue: int,
          ray: str | None = None, announce=print) -> None:
    """Run the service in this process until it is stopped (`serve stop`, SIGTERM, Ctrl-C) or idle too long; its jobs'
    batches on its own device, or dealt to the workers of the Ray cluster at ``ray`` ("auto": a local one)."""
    host_port = parse_listen(listen, allow_remote) if listen else None
    lock = _take_lock()
    paths.write_private(paths.pid_file(), f"{os.getpid()}\n".encode("ascii"))
    sock_path = paths.socket_path()
    if sock_path.exists() or sock_path.is_symlink():  # we hold the lock, so no service answers there: stale
        log.info("replacing the stale socket of a service that is gone")
        sock_path.unlink()
    tcp_token = None
    if host_port:
        tcp_token, new = token()
        announce(f"token for {listen} (stored in {paths.token_file()}): {tcp_token}" if new
                 else f"the token for {listen} is in {paths.token_file()}")
    sockets = [_unix_socket(sock_path)]
    if host_port:
        sockets.append(socket.create_server(host_port, family=socket.AF_INET6 if ":" in host_port[0] else socket.AF_INET))
    try:
        _run(sockets, journal=journal, listen=listen, token=tcp_token, idle_timeout_s=idle_timeout_s,
             max_queue=max_queue, sock_path=sock_path, executor=_executor(ray))
    finally:
        for path in (sock_path, paths.pid_file()):
            path.unlink(missing_ok=True)
        os.close(lock)
        log.info("stopped")


def _executor(ray: str | None):
    """The local executor, or Ray's, joined to its cluster now (a cluster it cannot reach stops the start here)."""
    from .executor import LocalExecutor

    if ray is None:
        return LocalExecutor()
    from .ray_executor import RayExecutor

    executor = RayExecutor(ray)
    executor.connect()
    log.info("joined the Ray cluster (%s)", ray)
    return executor


def _run(sockets, *, journal, listen, token, idle_timeout_s, max_queue, sock_path, executor) -> None:
    import uvicorn

    from ..settings import load_settings
    from journal.limits import set_pixel_limit

    from .server import create_app
    from .service import Service

    set_pixel_limit(load_settings().max_image_pixels)
    holder: dict[str, uvicorn.Server] = {}

    def exit_server() -> None:
        holder["server"].should_exit = True

    def stop() -> None:  # the running job is cancelled first, so its watchers see its end
        threading.Thread(target=lambda: (service.stop(), exit_server()), daemon=True).start()

    service = Service(paths.queue_file(), journal=journal, idle_timeout_s=idle_timeout_s, max_queue=max_queue,
                      socket=str(sock_path), listen=listen, on_idle=exit_server, executor=executor)
    app = create_app(service, token=token, stop=stop)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5)
    holder["server"] = server = uvicorn.Server(config)
    service.start()
    log.info("promptism service (pid %d) on %s%s; idle timeout %.0f s", os.getpid(), sock_path,
             f" and {listen} (token required)" if listen else "", idle_timeout_s)
    try:
        server.run(sockets=sockets)
    finally:
        service.stop()


def _unix_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from its creation (and checked so) before it accepts."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _open_lock() -> int:
    return os.open(paths.lock_file(), os.O_RDWR | os.O_CREAT, 0o600)


def _take_lock() -> int:
    fd = _open_lock()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = _pid_in_file()
        raise ServiceError(f"a service is already running (pid {pid if pid else '?'}); `promptism serve stop` stops "
                           "it") from None
    return fd


def _pid_in_file() -> int | None:
    try:
        return int(paths.pid_file().read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _import_path() -> str:
    """PYTHONPATH for the child: where this promptism was imported from first, so it runs the same code."""
    here = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(the log is empty)"
