"""Who may see the web UI: sign-in with a token, sessions, CSRF checks, refusals as pages.

A page without a signed-in session redirects to `/login`; a POST must carry the session's
CSRF token (form field `csrf` or header `X-CSRF-Token`), else it is answered 403 and
changes nothing.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from starlette.responses import RedirectResponse, Response

from dalsegno.model.errors import ConflictError, DalsegnoError, NotFoundError
from dalsegno.service import ExecutionService
from dalsegno.ui.rendering import Pages
from dalsegno.ui.sessions import CSRF_HEADER, Session, SessionCookies, csrf_matches


class SignInRequired(Exception):
    """The request has no signed-in session."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


@dataclass
class Ui:
    """What every UI route works with: the service the CLI and REST API call too."""

    service: ExecutionService
    may_sign_in: Callable[[str], bool]  # whether a token may use the UI (the admin token)
    cookies: SessionCookies
    on_change: Callable[[], None]  # wakes the manager after a write
    pages: Pages = field(default_factory=Pages)

    def signed_in(self, request: Request) -> Session:
        """A route dependency: the signed-in session, or a redirect to the sign-in page."""
        session = self.cookies.read(request)
        if session is None or not session.signed_in:
            raise SignInRequired
        return session

    def check_csrf(self, request: Request, session: Session, given: str) -> None:
        if not (
            csrf_matches(session, given) or csrf_matches(session, request.headers.get(CSRF_HEADER))
        ):
            raise CsrfRefused

    def refusal(self, request: Request, session: Session, exc: DalsegnoError) -> Response:
        """A refused request as a page, with the status the REST API would answer."""
        status = (
            404
            if isinstance(exc, NotFoundError)
            else 409
            if isinstance(exc, ConflictError)
            else 400
        )
        return self.pages.render(
            "error.html", status, session=session, message=str(exc), request=request
        )


def safe_next(target: str) -> str:
    """Only a path of this site: never `//host` or `https://host` (no open redirect)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def install_access(app: FastAPI, ui: Ui) -> APIRouter:
    """The sign-in routes, and the handlers that turn refusals into redirects and pages."""

    async def sign_in_first(request: Request, _: Exception) -> Response:
        target = "/login?next=" + quote(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def csrf_refused(request: Request, _: Exception) -> Response:
        message = (
            "this form is out of date or did not come from this site (CSRF token): reload the page"
        )
        return ui.pages.render("error.html", 403, session=None, message=message, request=request)

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        session = ui.cookies.read(request)
        if session is not None and session.signed_in:
            return RedirectResponse(safe_next(next), status_code=303)
        return _login(
            ui, request, session or ui.cookies.new(signed_in=False), safe_next(next), "", 200
        )

    @router.post("/login")
    def login(
        request: Request,
        token: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        session = ui.cookies.read(request)
        if session is None or not csrf_matches(session, csrf):
            raise CsrfRefused
        if not token.strip():
            return _login(ui, request, session, safe_next(next), "enter a token", 400)
        if not ui.may_sign_in(token.strip()):
            message = "wrong token: the web UI takes the manager's admin token"
            return _login(ui, request, session, safe_next(next), message, 401)
        response = RedirectResponse(safe_next(next), status_code=303)
        ui.cookies.write(response, ui.cookies.new(signed_in=True), request)
        return response

    @router.post("/logout")
    def logout(
        request: Request,
        session: Annotated[Session, Depends(ui.signed_in)],
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        ui.check_csrf(request, session, csrf)
        response = RedirectResponse("/login", status_code=303)
        ui.cookies.write(response, ui.cookies.new(signed_in=False), request)
        return response

    return router


def _login(
    ui: Ui, request: Request, session: Session, target: str, error: str, status: int
) -> Response:
    response = ui.pages.render(
        "login.html", status, session=session, next=target, error=error, request=request
    )
    ui.cookies.write(response, session, request)
    return response
