"""`dalsegno agent --queue NAME`: serve one queue of a manager on this host."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click

from dalsegno.model.errors import DalsegnoError


def _refuse(message: str) -> None:
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(2)


@click.command("agent")
@click.option("--queue", required=True, help="The queue this agent serves (a task's agent=).")
@click.option("--manager", "manager_url", help="Manager URL (also before the command).")
@click.option(
    "--token", help="A token of this queue, or the admin token (also before the command)."
)
@click.option("--token-file", metavar="PATH", help="Read the token from this file.")
@click.option(
    "--cacert",
    metavar="FILE",
    help="The CA (or self-signed) certificate of an https:// manager (also before the"
    " command; env DALSEGNO_CACERT).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Operations run at once by this agent (default 1).",
)
@click.option("--name", help="This agent's name (default HOST:PID).")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the outbox lives (default $DALSEGNO_HOME, else ~/.dalsegno).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="On SIGTERM/SIGINT: seconds running operations get to end.",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0.05),
    help="Seconds between heartbeats (default 2, or the interval the manager asks for).",
)
@click.pass_obj
def agent(
    settings: object,
    queue: str,
    manager_url: str | None,
    token: str | None,
    token_file: str | None,
    cacert: str | None,
    concurrency: int | None,
    name: str | None,
    home: Path | None,
    grace: float,
    heartbeat_interval: float | None,
) -> None:
    """Claim this queue's tasks from a manager, run them here, and report their results."""
    from dalsegno.agent import Agent, AgentConfig
    from dalsegno.agent.client import api_url, tls_verify
    from dalsegno.agent.worker import AgentFailed
    from dalsegno.cli.remote import resolve_token
    from dalsegno.service import default_home

    manager_url = manager_url or getattr(settings, "manager_url", None)
    if not queue.strip():
        _refuse("--queue is empty")
    if not manager_url:
        _refuse("dalsegno agent needs the manager's URL: --manager URL or DALSEGNO_MANAGER")
    assert manager_url is not None
    if name is not None and not name.strip():
        _refuse("--name is empty")
    cacert = cacert or getattr(settings, "cacert", None)
    try:
        api_url(manager_url)
        tls_verify(cacert)  # a CA file that cannot be read is refused now
        resolved = resolve_token(
            token if token is not None else getattr(settings, "token", None),
            token_file if token_file is not None else getattr(settings, "token_file", None),
        )
    except (DalsegnoError, ValueError) as exc:
        _refuse(str(exc))
        return
    concurrency = concurrency or getattr(settings, "concurrency", None) or 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    worker = Agent(
        AgentConfig(
            manager_url=manager_url,
            token=resolved,
            queue=queue.strip(),
            home=(home or default_home()).expanduser(),
            name=(name or "").strip(),
            concurrency=concurrency,
            grace=grace,
            heartbeat_interval=heartbeat_interval,
            cacert=cacert,
        )
    )
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: worker.stop())
    click.echo(
        f"dalsegno agent {worker.name} serving queue {queue!r} of {manager_url} "
        f"(concurrency {concurrency}, pid {os.getpid()})",
        err=True,
    )
    try:
        worker.run()
    except AgentFailed as exc:
        _refuse(str(exc))
    click.echo("agent stopped", err=True)
