"""``promptism serve`` (the service, in the foreground or ``--detach``ed), ``serve status`` and ``serve stop``."""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import time
from pathlib import Path

import click

from .. import paths
from ..settings import load_settings, ray_address
from .journal_option import JOURNAL_PATH
from .output import dump_json, print_table, say


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """click's FloatRange lets nan and inf (1e309) through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of minutes: give one above 0, such as 15")
    return value


@click.group("serve", invoke_without_command=True)
@click.option("--detach", is_flag=True, help="Run in the background, in a session of its own (it survives the "
              "terminal and the SSH session), logging to the log file in your user state directory.")
@click.option("--journal", "journal_dir", type=JOURNAL_PATH, default=None,
              help="Where A1111 API calls (/sdapi/v1) write their runs. CLI and TUI jobs name their own journal.")
@click.option("--listen", metavar="HOST:PORT", help="Also serve HTTP on this TCP address (loopback), with a bearer "
              "token (generated once, stored 0600, printed when made).")
@click.option("--allow-remote", is_flag=True, help="Let --listen take an address other machines reach.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), callback=_finite, metavar="MIN",
              help="Exit after this many idle minutes (default 15, or idle_timeout in config.toml).")
@click.option("--ray", "ray", metavar="auto|ADDRESS|off", help="Deal each job's batches to Ray workers, one per GPU: "
              "auto joins the cluster $RAY_ADDRESS names or `ray start` began here, else starts a local one over this machine's "
              "GPUs; ADDRESS joins a running "
              "cluster (HOST:PORT, ray://HOST:10001); off: this process's device (default: ray in config.toml, else "
              "off). Needs `pip install promptism[ray]`.")
@click.pass_context
def serve_cmd(ctx: click.Context, detach: bool, journal_dir: Path | None, listen: str | None, allow_remote: bool,
              idle_timeout: float | None, ray: str | None) -> None:
    """Run the service: one process that owns the device, keeps models warm and runs the jobs of generate, grid,
    rerun and resume from a queue (they start it themselves when none runs). Ctrl-C or `serve stop` stops it.

    \b
    Examples:
      promptism serve --detach
      promptism serve --listen 127.0.0.1:7860 --journal ~/a1111-journal     # A1111 clients on a loopback port
      promptism serve --detach --ray auto          # every GPU of this machine, one Ray worker each
      promptism serve --detach --ray 10.0.0.5:6379 # the GPUs of a running Ray cluster
      promptism serve status
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..service import daemon

    settings = load_settings()
    minutes = idle_timeout if idle_timeout is not None else settings.idle_timeout
    address = ray_address(ray) if ray is not None else settings.ray
    if address is not None and importlib.util.find_spec("ray") is None:
        raise click.ClickException(f"--ray {address}: Ray is not installed; `pip install promptism[ray]` (or leave "
                                   "out --ray and the ray setting)")
    if listen is not None:  # ("" is refused too: it is no address)
        daemon.parse_listen(listen, allow_remote)  # refused here, before anything starts
    if (pid := daemon.running_pid()) is not None:  # refused before a token is made (or shown), or Ray joined
        raise click.ClickException(f"a service is already running (pid {pid}); `promptism serve stop` stops it")
    if detach:
        args = [*(["--journal", str(journal_dir.absolute())] if journal_dir else []),
                *(["--listen", listen] if listen else []), *(["--allow-remote"] if allow_remote else []),
                "--idle-timeout", repr(minutes), "--ray", address or "off"]
        if listen:
            value, new = daemon.token()
            if new:
                say(f"token for {listen} (shown once; stored in {paths.token_file()}): {value}")
        from ..service.client import ServiceClient

        pid = daemon.spawn(args, ServiceClient(paths.socket_path()).ping)
        say(f"service started (pid {pid}); `promptism serve status` shows it, `promptism serve stop` stops it")
        return
    if address is not None:  # joined before the service's log begins on stderr: one that cannot be is one line
        from ..service.ray_executor import RayExecutor

        RayExecutor(address).connect()  # (the service's executor finds it joined; Ray leaves it as this process ends)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s promptism service: %(message)s")
    daemon.serve(journal=journal_dir.absolute() if journal_dir else None, listen=listen, allow_remote=allow_remote,
                 idle_timeout_s=minutes * 60, max_queue=settings.max_queue, ray=address, announce=say)


@serve_cmd.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(as_json: bool) -> None:
    """The running service: pid, uptime, device, loaded models, its jobs (never a prompt)."""
    from ..service.client import connect

    status = connect(autostart=False).status()
    if as_json:
        click.echo(dump_json(status.model_dump(mode="json")))
        return
    say(f"service pid {status.pid} · up {_duration(status.uptime_s)} · {status.device or 'device not chosen yet'} · "
        f"promptism {status.version}")
    say(f"  socket {status.socket}" + (f" · also on {status.listen}" if status.listen else "")
        + f" · exits after {_duration(status.idle_timeout_s)} idle")
    say("  models loaded: " + (", ".join(status.loaded_models) or "none"))
    if not status.jobs:
        say("  no jobs")
        return
    print_table(["job", "kind", "state", "run", "images", "journal"],
                [[j.id, j.kind, j.state, j.run or "", f"{j.done}/{j.cells}" if j.cells is not None else "", j.journal]
                 for j in status.jobs])


@serve_cmd.command("stop")
def stop_cmd() -> None:
    """Stop the service: the running job is cancelled (its finished images stay; `promptism resume RUN` finishes
    it), queued jobs wait for the next start."""
    from ..service.client import connect
    from ..service.daemon import running_pid
    from ..service.errors import ServiceUnavailable

    try:
        client = connect(autostart=False)
    except ServiceUnavailable:  # stopped already: what was asked for is so
        if running_pid() is None:
            say("no service is running: nothing to stop")
            return
        raise
    pid = client.status().pid
    client.stop()
    deadline = time.monotonic() + 60
    while running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    say(f"service stopped (pid {pid})" if running_pid() is None else f"asked the service (pid {pid}) to stop; it has "
        "not yet")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
