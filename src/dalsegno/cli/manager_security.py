"""The manager's security options: which workflows it serves (`--workflows`), and TLS
(`--tls-cert`, `--tls-key`). `dalsegno.cli.serve` applies them; docs/security.md says why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import click

from dalsegno.model.access import DEFAULT_SESSION_IDLE
from dalsegno.model.errors import RefusedError

log = logging.getLogger("dalsegno.manager")
WORKFLOWS_ENV = "DALSEGNO_WORKFLOWS"


def workflows_specs(given: tuple[str, ...]) -> list[str]:
    """The SPECs of `--workflows`, else of `DALSEGNO_WORKFLOWS` (separated by `os.pathsep`,
    as PYTHONPATH is); none means the manager's working directory."""
    if given:
        return list(given)
    return [spec for spec in os.environ.get(WORKFLOWS_ENV, "").split(os.pathsep) if spec.strip()]


def workflows_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--workflows",
        "workflow_specs",
        multiple=True,
        metavar="SPEC",
        help="A module, .py file or directory whose @workflow functions this manager serves,"
        " and whose @operation functions blueprints may name; repeatable (env"
        " DALSEGNO_WORKFLOWS, separated by ':'). Nothing else is ever imported for a request."
        " Default: the .py files of the working directory that declare a workflow or an"
        " operation.",
    )(func)


def serve_allowed_workflows(service: Any, given: tuple[str, ...]) -> None:
    """Import the allowed workflows once, before the manager listens, and make them the
    only ones `service` runs; RefusedError names a SPEC that is missing or broken."""
    from dalsegno.service.workflows import AllowedWorkflows

    specs = workflows_specs(given)
    allowed = AllowedWorkflows.load(specs)
    service.config = replace(service.config, workflows=allowed)
    source = ", ".join(specs) if specs else f"the working directory {os.getcwd()}"
    log.info(
        "serving %d workflows of %s: %s",
        len(allowed.workflows),
        source,
        ", ".join(found.reference for found in allowed.workflows) or "none",
    )


@dataclass(frozen=True, slots=True)
class Secured:
    admin_token: str
    tls_cert: str | None
    tls_key: str | None
    session_idle: float

    @property
    def ui_options(self) -> dict[str, Any]:
        """The web UI's settings for `create_app`: sessions, and Secure cookies with TLS."""
        return {"session_idle": self.session_idle, "secure_cookies": self.tls_cert is not None}


def secure(
    cert: str | None, key: str | None, session_idle: float = DEFAULT_SESSION_IDLE
) -> Secured:
    """Before the manager binds: check the TLS pair, and read (or write, on the first
    start) the admin token; RefusedError says what is wrong. The allowed workflows are
    imported after the bind, before the manager serves (`serve_allowed_workflows`)."""
    from dalsegno.service import default_home
    from dalsegno.service.tokens import ensure_admin_token

    check_tls(cert, key)
    return Secured(ensure_admin_token(default_home()), cert, key, session_idle)


def tls_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--tls-cert`, `--tls-key`, and `--session-idle` (the web UI's sessions)."""
    func = click.option(
        "--session-idle",
        type=click.FloatRange(min=1),
        default=DEFAULT_SESSION_IDLE,
        show_default=True,
        help="Seconds without a request after which a web UI session ends.",
    )(func)
    func = click.option(
        "--tls-key",
        type=click.Path(dir_okay=False),
        help="The private key of --tls-cert (PEM).",
    )(func)
    return click.option(
        "--tls-cert",
        type=click.Path(dir_okay=False),
        help="Serve HTTPS with this certificate (PEM, its chain after it); needs --tls-key.",
    )(func)


def check_tls(cert: str | None, key: str | None) -> None:
    """Load the certificate and key once, to refuse a bad pair now, in one line."""
    if cert is None and key is None:
        return
    if cert is None or key is None:
        msg = "--tls-cert and --tls-key go together: give both, or neither"
        raise RefusedError(msg)
    import ssl

    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not os.access(path, os.R_OK) or not os.path.isfile(path):
            msg = f"cannot read {option} {path}: no such file, or not readable"
            raise RefusedError(msg)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        msg = f"cannot use --tls-cert {cert} with --tls-key {key}: {exc}"
        raise RefusedError(msg) from None
