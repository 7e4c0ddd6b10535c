"""`dalsegno manager`: the management worker, its REST API (`/api/v1`) and its web UI (`/`).

Start-up refuses what it can before anything runs: its options and settings, the store,
then the port, which it binds before the worker starts, so a port in use is one line and
exit 2 with no execution touched. Then it says where the UI and the sign-in token are.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any, NoReturn

import click

from dalsegno.cli.logs import FORMATS, configure
from dalsegno.cli.manager_security import (
    secure,
    serve_allowed_workflows,
    tls_options,
    workflows_option,
)
from dalsegno.model.errors import DalsegnoError

DEFAULT_BIND = "127.0.0.1:8347"
BACKLOG = 2048
log = logging.getLogger("dalsegno.manager")
EXIT_STOPPED_AT_ONCE = 1  # a second stop signal: no hand-over, as after a crash


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"--bind must be HOST:PORT, not {bind!r}"
        raise click.BadParameter(msg)
    return host.strip("[]"), int(port)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on HOST:PORT (its first address that binds); `OSError` if none."""
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.set_inheritable(True)
        return sock
    raise error or OSError(f"no address for {host}")


def _refuse(message: str) -> NoReturn:
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(2)


@click.command("manager")
@click.option("--bind", default=DEFAULT_BIND, show_default=True, help="HOST:PORT to listen on.")
@click.option(
    "--lease-timeout",
    type=click.FloatRange(min=0.1),
    help="Seconds a lease outlives its owner's last heartbeat (env DALSEGNO_LEASE_TIMEOUT).",
)
@click.option(
    "--agent-timeout",
    type=click.FloatRange(min=0.1),
    help="Seconds without a heartbeat after which an agent's attempts are lost "
    "(env DALSEGNO_AGENT_TIMEOUT; default: the lease timeout).",
)
@click.option(
    "--max-executions",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Executions run at once by this manager.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help=(
        "On SIGTERM/SIGINT: seconds resumable running operations get to end before the "
        "hand-over (non-resumable ones are awaited to their end; a second signal stops at once)."
    ),
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Log lines for people, or one JSON object a line for log shippers.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every HTTP request (method, path, status, duration, client).",
)
@workflows_option
@tls_options
@click.pass_obj
def manager(
    settings: object,
    bind: str,
    lease_timeout: float | None,
    agent_timeout: float | None,
    max_executions: int,
    grace: float,
    log_format: str,
    access_log: bool,
    workflow_specs: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    session_idle: float,
) -> None:
    """Run executions from the store, serve the REST API, resume what an outage left."""
    import uvicorn

    from dalsegno.api.access_log import AccessLog
    from dalsegno.api.app import create_app
    from dalsegno.manager.manager import Manager, ManagerConfig
    from dalsegno.service import default_home, open_service, redacted, version
    from dalsegno.service.agents import agent_timeout_of
    from dalsegno.service.metrics import instrument
    from dalsegno.service.tokens import token_path

    host, port = parse_bind(bind)
    if lease_timeout is not None:
        os.environ["DALSEGNO_LEASE_TIMEOUT"] = str(lease_timeout)
    if agent_timeout is not None:
        os.environ["DALSEGNO_AGENT_TIMEOUT"] = str(agent_timeout)
    configure(log_format)
    try:
        service = open_service(
            getattr(settings, "store_url", None), getattr(settings, "concurrency", None)
        )
        agent_timeout_of(service)  # a malformed DALSEGNO_AGENT_TIMEOUT is refused here
        secured = secure(tls_cert, tls_key, session_idle)  # TLS pair, admin token
    except (DalsegnoError, ValueError) as exc:
        _refuse(str(exc))
    home = default_home()
    listening = _bind(bind, service, workflow_specs)
    metrics = instrument(service)  # before the worker and the API take the store
    workers = Manager(service, ManagerConfig(max_executions=max_executions, grace=grace))
    stopping = [False]
    app = create_app(
        service,
        secured.admin_token,
        on_change=workers.wake,
        metrics=metrics,
        stopping=lambda: stopping[0],
        **secured.ui_options,
    )
    if access_log:
        app.add_middleware(AccessLog)
    metrics.watch_running(lambda: len(workers.running))
    agents = app.state.agents

    class Server(uvicorn.Server):
        signals_seen = 0

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Agents' claims wait up to 30 s, and uvicorn waits for open requests before
            # it returns: answer them now, so the hand-over below starts at once.
            stopping[0] = True
            self.signals_seen += 1
            agents.stop_waiting()
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            ssl_certfile=secured.tls_cert,
            ssl_keyfile=secured.tls_key,
        )
    )
    workers.start()
    site = _site(host, port, "https" if secured.tls_cert else "http")
    log.info(
        "dalsegno manager %s on %s: web UI %s/, REST API %s/api/v1 (store %s)",
        version(),
        site,
        site,
        site,
        redacted(service.store.url),
        extra={"pid": os.getpid(), "max_executions": max_executions},
    )
    log.info("sign in to the web UI with the admin token in %s", token_path(home))
    _serve(server, listening, workers, service.store, grace)


def _serve(server: Any, listening: socket.socket, workers: Any, store: Any, grace: float) -> None:
    """Serve until SIGTERM or SIGINT, then hand the executions over; a second signal
    stops at once."""
    # While it serves, uvicorn's own handlers take the signals, and re-raise the ones that
    # stopped it through this handler as it returns: that is the first stop, under way.
    # A signal after that stops at once, with the consequences of a crash (docs/design.md,
    # "Graceful stop").
    serving = [True]

    def second_stop(sig: int, _frame: FrameType | None) -> None:
        if serving[0]:
            return
        log.warning("signal %s again: stopping at once, leases left to expire", sig)
        os._exit(EXIT_STOPPED_AT_ONCE)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, second_stop)
    try:
        server.run(sockets=[listening])  # returns on SIGTERM or SIGINT
    finally:
        serving[0] = False
        if server.signals_seen > 1:
            log.warning("stop asked twice: stopping at once, leases left to expire")
            os._exit(EXIT_STOPPED_AT_ONCE)
        log.info("stopping: handing executions over", extra={"running": len(workers.running)})
        workers.stop(grace)
        store.close()
        log.info("stopped")


def _bind(bind: str, service: Any, specs: tuple[str, ...]) -> socket.socket:
    """Bind before the worker starts (a port in use changes nothing), then import the
    allowed workflows once, before anything is served; either refused in one line."""
    try:
        listening = listen(*parse_bind(bind))
        serve_allowed_workflows(service, specs)
    except (OSError, DalsegnoError) as exc:
        service.store.close()
        if isinstance(exc, OSError):
            _refuse(f"cannot listen on {bind}: {exc.strerror or exc}")
        _refuse(str(exc))
    return listening


def _site(host: str, port: int, scheme: str = "http") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a name, not a bind
    shown = f"[{shown}]" if ":" in shown else shown
    return f"{scheme}://{shown}:{port}"
