"""Paging in the REST API: `limit` and an opaque `cursor` on the lists, the next page's
cursor in the answer's headers (the body stays the JSON array docs/interface.md pins), and a
422 for a query parameter the route does not know, rather than silence.

- `X-Next-Cursor`: the cursor to pass as `?cursor=` for the rows after this page (on the
  events, present on the last page too: what is written later comes after it).
- `Link: <...>; rel="next"`: the URL of the next page, when the page was full.
"""

from __future__ import annotations

from typing import Any, get_origin
from urllib.parse import urlencode

from fastapi import Request, Response
from starlette.routing import Route

from dalsegno.api.errors import ApiError
from dalsegno.service.pages import Page

NEXT_CURSOR = "X-Next-Cursor"


async def known_query_only(request: Request) -> None:
    """A route dependency: every query parameter must be one the route declares."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if not isinstance(route, Route) or dependant is None:
        return
    params = _query_params(dependant)
    known = {param.alias for param in params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        allowed = ", ".join(sorted(known)) or "none"
        raise ApiError(422, f"unknown query parameter {names}: this route takes {allowed}")
    for param in params:  # a single value given twice is ambiguous, not the last one wins
        if not _repeatable(param) and len(request.query_params.getlist(param.alias)) > 1:
            raise ApiError(422, f"query parameter {param.alias!r} is given more than once")


def _repeatable(param: Any) -> bool:
    return get_origin(param.field_info.annotation) is list or param.field_info.annotation is list


def _query_params(dependant: Any) -> list[Any]:
    """The query parameters a route's endpoint and its dependencies declare."""
    found = list(dependant.query_params)
    for below in dependant.dependencies:
        found.extend(_query_params(below))
    return found


def paged(response: Response, request: Request, page: Page[Any]) -> None:
    """Put the page's cursor and the next page's link in the answer's headers."""
    if page.cursor is None:
        return
    response.headers[NEXT_CURSOR] = page.cursor
    if page.more:
        query = [(key, value) for key, value in request.query_params.multi_items()]
        query = [(key, value) for key, value in query if key != "cursor"]
        query.append(("cursor", page.cursor))
        response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
