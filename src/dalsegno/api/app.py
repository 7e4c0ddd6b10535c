"""The manager's REST API (docs/interface.md "REST API"): a FastAPI app under `/api/v1`.

`/` and everything outside `/api/v1` stay free for the web UI. The OpenAPI document and
its docs page need no token: they describe the API and hold no data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.middleware.authentication import AuthenticationMiddleware

from dalsegno.api.agents import LeanExchange, agents_router
from dalsegno.api.auth import BearerTokens, CallerLookup, TokenChecker
from dalsegno.api.deployments import deployments_router
from dalsegno.api.errors import authentication_failed, install_error_handlers
from dalsegno.api.executions import executions_router
from dalsegno.api.guards import Guards
from dalsegno.api.headers import SecurityHeaders, docs_page
from dalsegno.api.health import health_router
from dalsegno.api.housekeeping import housekeeping_router
from dalsegno.api.tasks import tasks_router
from dalsegno.api.tokens import tokens_router
from dalsegno.api.workflows import workflows_router
from dalsegno.service import ExecutionService, version
from dalsegno.service.access import AccessService
from dalsegno.service.agents import AgentService
from dalsegno.service.health import ReadinessCheck
from dalsegno.service.metrics import Metrics
from dalsegno.ui import mount_ui
from dalsegno.ui.sessions import DEFAULT_IDLE

PREFIX = "/api/v1"
OPENAPI_PATH = f"{PREFIX}/openapi.json"
DOCS_PATH = f"{PREFIX}/docs"


def create_app(
    service: ExecutionService,
    admin_token: str,
    on_change: Callable[[], None] = lambda: None,
    *,
    callers: CallerLookup | None = None,
    claim_wait_limit: float = 30.0,
    metrics: Metrics | None = None,
    stopping: Callable[[], bool] = lambda: False,
    session_idle: float = DEFAULT_IDLE,
    secure_cookies: bool = False,
) -> FastAPI:
    """The REST API over `service`.

    `admin_token` may do everything. `on_change` is called after each write (a start, a
    resume, a cancel) so a manager looks for work at once. `callers` maps any other token
    to its caller (a person with a role, an agent with its queue), or None for an unknown
    token; by default, the tokens in the store. `claim_wait_limit` caps an agent's long-poll.
    `metrics` are served at `/metrics` (`service.metrics.instrument` counts the store's
    writes); `stopping()` makes `/readyz` answer 503 while the manager stops. A web UI
    session ends after `session_idle` seconds unused; `secure_cookies` when TLS is on.
    """
    app = FastAPI(
        title="dalsegno",
        version=version(),
        summary="A workflow engine whose executions resume exactly where they stopped.",
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # served below, under its own Content-Security-Policy
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_error_handlers(app)
    _document_body_limits(app)
    app.add_route(DOCS_PATH, docs_page(OPENAPI_PATH, app.title), include_in_schema=False)
    agents = AgentService(service, claim_wait_limit)
    app.state.agents = agents  # `dalsegno manager` ends waiting claims when it stops
    # people's and agents' tokens: those `dalsegno tokens create` and `dalsegno agents
    # token` stored (by hash), unless given
    access = AccessService(lambda: service.store)
    tokens = TokenChecker(admin_token, callers or access.caller_of)
    app.add_middleware(
        AuthenticationMiddleware,
        backend=BearerTokens(tokens, PREFIX, public={OPENAPI_PATH, DOCS_PATH}),
        on_error=authentication_failed,
    )
    # A body over its limit is refused before anything reads it, and a store that failed
    # for good answers 503 before a token is looked up in it. (The store is looked up on
    # each request: a test's service may be a stand-in without one yet.)
    app.add_middleware(Guards, failure=lambda: service.store.failure())  # noqa: PLW0108
    app.add_middleware(SecurityHeaders, api_prefix=PREFIX)  # outermost: on every answer
    api = APIRouter(prefix=PREFIX)
    # first: routes are matched in order, and agents' calls are most of a manager's requests
    api.include_router(agents_router(agents))
    api.include_router(executions_router(service, on_change))
    api.include_router(tasks_router(service))
    api.include_router(housekeeping_router(service))
    api.include_router(tokens_router(access))
    api.include_router(workflows_router(service))
    api.include_router(deployments_router(service))
    app.include_router(api)
    # agents' exchanges, most of a manager's requests, take a short way to the same handler
    app.router.routes.insert(0, LeanExchange(f"{PREFIX}/agents/exchange", agents))
    app.include_router(
        health_router(ReadinessCheck(service, stopping), metrics or Metrics(service))
    )
    # The web UI at `/`: people sign in with their tokens; the same service answers.
    mount_ui(
        app,
        service,
        AccessService(lambda: service.store, admin_token),
        admin_token,
        on_change,
        session_idle=session_idle,
        secure_cookies=secure_cookies,
    )
    return app


def _document_body_limits(app: FastAPI) -> None:
    """Every route that takes a body may answer 413 (`Guards` refuses a body over its limit
    before it is read): the document says so, as it says every other answer."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    operation["responses"].setdefault(
                        "413",
                        {
                            "description": "The body is over its size limit.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                    )
        return document

    app.openapi = openapi  # type: ignore[method-assign]
