"""What the manager refuses before a request reaches a route (docs/reliability.md).

- **A body over the limit** answers 413 (`MAX_BODY`; `MAX_AGENT_BODY` for the agents'
  routes, whose results carry their log lines): at once when `Content-Length` says so,
  else as soon as the bytes read pass it. A body is never read past its limit.
- **A store that cannot be used any more** (its SQLite file deleted, replaced or corrupt:
  `dalsegno.store.faults`) answers 503 with the reason on every request but the probes
  (`/healthz` stays 200 while the process serves; `/readyz` says 503 and why itself).
- **A stalled store** (a lock held, a server restarting) holds a request for at most
  `REQUEST_BUDGET` seconds of retries, then it answers 503 with `Retry-After`: its store
  calls retry within the request's budget (`dalsegno.store.retry.budget`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dalsegno.api.errors import error_response
from dalsegno.model.limits import MAX_AGENT_BODY, MAX_BODY, size_text
from dalsegno.store.retry import budget

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
REQUEST_BUDGET = 5.0  # seconds a request's store calls are retried through a fault
AGENT_ROUTES = "/api/v1/agents"


def limit_of(path: str) -> int:
    return MAX_AGENT_BODY if path.startswith(AGENT_ROUTES) else MAX_BODY


def too_large(size: int | None, limit: int) -> str:
    told = f" ({size_text(size)})" if size is not None else ""
    return f"the request body is too large{told}: the limit is {size_text(limit)}"


class Guards:
    """ASGI middleware: the body limits, and the 503 of a store that failed for good."""

    def __init__(self, app: ASGIApp, failure: Callable[[], str | None]) -> None:
        self.app = app
        self._failure = failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path not in PROBES:
            failure = self._failure()
            if failure is not None:
                answer = error_response(503, f"the store cannot be used: {failure}")
                await answer(scope, receive, send)
                return
        limit = limit_of(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await error_response(413, too_large(declared, limit))(scope, receive, send)
            return
        with budget(REQUEST_BUDGET):  # the route's thread runs in a copy of this context
            await self.app(scope, _counted(receive, limit), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive` that refuses the body (413) once more than `limit` bytes came."""
    seen = 0

    async def counting() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, too_large(None, limit))
        return message

    return counting
