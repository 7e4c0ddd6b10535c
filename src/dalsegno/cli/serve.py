"""`dalsegno manager`: the management worker, its REST API (`/api/v1`) and its web UI (`/`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

import click

from dalsegno.model.errors import DalsegnoError

DEFAULT_BIND = "127.0.0.1:8347"


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"--bind must be HOST:PORT, not {bind!r}"
        raise click.BadParameter(msg)
    return host.strip("[]"), int(port)


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
    help="On SIGTERM/SIGINT: seconds running operations get to end before the hand-over.",
)
@click.pass_obj
def manager(
    settings: object,
    bind: str,
    lease_timeout: float | None,
    agent_timeout: float | None,
    max_executions: int,
    grace: float,
) -> None:
    """Run executions from the store, serve the REST API, resume what an outage left."""
    import uvicorn

    from dalsegno.api.app import create_app
    from dalsegno.manager.manager import Manager, ManagerConfig
    from dalsegno.service import default_home, open_service
    from dalsegno.service.agents import agent_timeout_of
    from dalsegno.service.tokens import ensure_admin_token

    host, port = parse_bind(bind)
    if lease_timeout is not None:
        os.environ["DALSEGNO_LEASE_TIMEOUT"] = str(lease_timeout)
    if agent_timeout is not None:
        os.environ["DALSEGNO_AGENT_TIMEOUT"] = str(agent_timeout)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        service = open_service(
            getattr(settings, "store_url", None), getattr(settings, "concurrency", None)
        )
        agent_timeout_of(service)  # a malformed DALSEGNO_AGENT_TIMEOUT is refused here
    except (DalsegnoError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    token = ensure_admin_token(default_home())  # written before the manager listens
    workers = Manager(service, ManagerConfig(max_executions=max_executions, grace=grace))
    app = create_app(service, token, on_change=workers.wake)
    agents = app.state.agents

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Agents' claims wait up to 30 s, and uvicorn waits for open requests before
            # it returns: answer them now, so the hand-over below starts at once.
            agents.stop_waiting()
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    workers.start()
    click.echo(f"dalsegno manager on http://{host}:{port} (store {service.store.url})", err=True)
    # uvicorn re-raises the signal that stopped it through the handler it found installed:
    # make that one harmless, so the graceful hand-over below runs.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    try:
        server.run()  # returns on SIGTERM or SIGINT
    finally:
        click.echo("stopping: handing executions over", err=True)
        workers.stop(grace)
        service.store.close()
