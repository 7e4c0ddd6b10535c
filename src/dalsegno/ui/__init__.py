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
from dalsegno.ui.access import Ui, install_access
from dalsegno.ui.actions import actions_router
from dalsegno.ui.agents import agents_router
from dalsegno.ui.execution import execution_router
from dalsegno.ui.pages import pages_router
from dalsegno.ui.rendering import STATIC
from dalsegno.ui.sessions import SessionCookies


def mount_ui(
    app: FastAPI,
    service: ExecutionService,
    may_sign_in: Callable[[str], bool],
    secret: str,
    on_change: Callable[[], None] = lambda: None,
) -> None:
    """Serve the UI from `app`: `may_sign_in(token)` says whether a token may sign in;
    session cookies are signed with a key derived from `secret` (the admin token)."""
    ui = Ui(service, may_sign_in, SessionCookies(secret), on_change)
    app.include_router(install_access(app, ui))
    app.include_router(pages_router(ui))
    app.include_router(execution_router(ui))
    app.include_router(agents_router(ui))
    app.include_router(actions_router(ui))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["mount_ui"]
