"""The web UI: server-rendered pages (Jinja2) over the `ExecutionService`, served by the
manager at `/` beside the REST API at `/api/v1`.

No build step: the templates, the stylesheet and a vendored htmx (static/NOTICE) ship in
the package, graphs are laid out here and drawn as SVG, and nothing loads from elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from dalsegno.service import ExecutionService
from dalsegno.service.access import AccessService
from dalsegno.ui.access import Ui, install_access
from dalsegno.ui.actions import actions_router
from dalsegno.ui.agents import agents_router
from dalsegno.ui.deployments import deployments_router
from dalsegno.ui.execution import execution_router
from dalsegno.ui.pages import pages_router
from dalsegno.ui.rendering import STATIC
from dalsegno.ui.sessions import DEFAULT_IDLE, SessionCookies
from dalsegno.ui.start import start_router


def mount_ui(
    app: FastAPI,
    service: ExecutionService,
    access: AccessService,
    secret: str,
    on_change: Callable[[], None] = lambda: None,
    *,
    session_idle: float = DEFAULT_IDLE,
    secure_cookies: bool = False,
) -> None:
    """Serve the UI from `app`: `access` tells who a token is (people sign in with their
    own); session cookies are signed with a key derived from `secret` (the admin token);
    a session ends after `session_idle` seconds unused; `secure_cookies` when TLS is on."""
    cookies = SessionCookies(secret, access, session_idle, secure_cookies)
    ui = Ui(service, cookies, on_change)
    app.include_router(install_access(app, ui))
    app.include_router(pages_router(ui))
    app.include_router(execution_router(ui))
    app.include_router(agents_router(ui))
    app.include_router(actions_router(ui))
    app.include_router(start_router(ui))
    app.include_router(deployments_router(ui))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["mount_ui"]
