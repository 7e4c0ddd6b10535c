"""Every refusal as `{"error": "one-line reason"}`, with the status docs/interface.md gives it.

The service raises the refusals (`NotFoundError`, `ConflictError`, `RefusedError`); this
module only names their status codes, and turns FastAPI's and Starlette's own errors
(validation, unknown paths, wrong methods) into the same shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.routing import Match

from dalsegno.api.schemas import Error
from dalsegno.model.errors import (
    ConflictError,
    NotFoundError,
    RefusedError,
    RefusedTransitionError,
    StoreFailedError,
    StoreUnavailableError,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

DESCRIPTIONS = {
    400: "The body is not JSON.",
    401: "No token, or a wrong one.",
    403: "A token that may not do this.",
    404: "An unknown execution.",
    409: "A transition the execution's state does not allow.",
    422: "A malformed request, or one the service refuses.",
}


class ApiError(Exception):
    """A refusal the API itself makes (for example 403), with its status code."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class JsonResponse(JSONResponse):
    """UTF-8 JSON; strings that UTF-8 cannot encode (lone surrogates) come back escaped.

    Params and results are any JSON the caller sent, and JSON can spell a lone surrogate.
    """

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI declaration of these error answers."""
    return {code: {"model": Error, "description": DESCRIPTIONS[code]} for code in codes}


def one_line(reason: str) -> str:
    return _CONTROL.sub(" ", reason).strip() or "refused"


def error_response(
    status_code: int, reason: str, headers: Mapping[str, str] | None = None
) -> JsonResponse:
    return JsonResponse({"error": one_line(reason)}, status_code, headers=headers)


def authentication_failed(_: HTTPConnection, exc: Exception) -> Response:
    return error_response(401, str(exc), {"WWW-Authenticate": "Bearer"})


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the `{"error": ...}` shape."""

    async def refused(_: Request, exc: Exception) -> Response:
        return error_response(status_of(exc), str(exc))

    async def invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, reason = describe_validation(exc.errors())
        return error_response(status, reason)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        reason = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and reason == "Not Found":
            reason = f"no such path: {request.method} {request.url.path}"
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            reason = f"{request.method} is not allowed here: use {' or '.join(allowed)}"
        return error_response(exc.status_code, reason, headers)

    async def unavailable(_: Request, exc: Exception) -> Response:
        # The database is out (a restart, a failover, a full disk, a lock held too long):
        # the request may be tried again.
        return error_response(503, f"the store is unavailable: {exc}", {"Retry-After": "2"})

    async def failed(_: Request, exc: Exception) -> Response:
        # Its file deleted, replaced or corrupt: trying again will not help until an
        # operator acts (dalsegno.store.faults), so no Retry-After.
        return error_response(503, f"the store cannot be used: {exc}")

    async def internal(_: Request, exc: Exception) -> Response:
        return error_response(500, f"internal error ({type(exc).__name__}): see the manager's log")

    app.add_exception_handler(ApiError, refused)
    app.add_exception_handler(RefusedError, refused)
    app.add_exception_handler(RefusedTransitionError, refused)
    app.add_exception_handler(StoreUnavailableError, unavailable)
    app.add_exception_handler(StoreFailedError, failed)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path.

    Starlette's own `Allow` header names the methods of the first route whose path
    matches, not those of all of them.
    """
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def status_of(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        return exc.status_code
    if isinstance(exc, NotFoundError):
        return 404
    # RefusedTransitionError: the store refused a guarded write because another writer
    # moved the execution first; like a ConflictError, trying again may be answered.
    if isinstance(exc, ConflictError | RefusedTransitionError):
        return 409
    return 422


def describe_validation(errors: Sequence[Any]) -> tuple[int, str]:
    """The status and one-line reason of FastAPI's validation errors (400: not JSON)."""
    if not errors:
        return 422, "malformed request"
    first = errors[0]
    location = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error") or "not JSON"
        where = f" at character {location[1]}" if len(location) > 1 else ""
        return 400, f"malformed JSON body: {detail}{where}"
    if location == ("body",) and isinstance(first.get("input"), bytes):
        return 400, "the body must be JSON (Content-Type: application/json)"
    where = ".".join(str(part) for part in location) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {first.get('msg', 'invalid')}{more}"
