"""Who may see the web UI: sign-in with a token, sessions, CSRF checks, roles, refusals
as pages.

A person signs in with their own token (viewer, operator or admin: `dalsegno tokens
create`) or the manager's admin token; an agent's token is refused. A page without a
signed-in session redirects to `/login`; a POST must carry the session's CSRF token (form
field `csrf` or header `X-CSRF-Token`), else it is answered 403 and changes nothing; a
start, resume or cancel needs the operator role (else 403), and records who asked.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from starlette.responses import RedirectResponse, Response

from dalsegno.model.access import Permission, Role
from dalsegno.model.errors import ConflictError, DalsegnoError, NotFoundError
from dalsegno.service import ExecutionService
from dalsegno.ui.rendering import Pages
from dalsegno.ui.sessions import CSRF_HEADER, Session, SessionCookies, csrf_matches


class SignInRequired(Exception):
    """The request has no signed-in session."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


class RoleRefused(Exception):
    """A signed-in person whose role does not allow this."""


@dataclass
class Ui:
    """What every UI route works with: the service the CLI and REST API call too."""

    service: ExecutionService
    cookies: SessionCookies
    on_change: Callable[[], None]  # wakes the manager after a write
    pages: Pages = field(default_factory=Pages)

    def signed_in(self, request: Request) -> Session:
        """A route dependency: the signed-in session, or a redirect to the sign-in page."""
        session = self.cookies.read(request)
        if session is None or not session.signed_in:
            raise SignInRequired
        return session

    def check_operator(self, session: Session) -> None:
        """A start, resume or cancel: the operator role or above."""
        if not session.may(Permission.OPERATE):
            raise RoleRefused

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

    async def role_refused(request: Request, _: Exception) -> Response:
        session = ui.cookies.read(request)
        message = (
            "your token may not do this: starting, resuming and cancelling need a token"
            " with the operator role or above"
        )
        return ui.pages.render("error.html", 403, session=session, message=message, request=request)

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(RoleRefused, role_refused)
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        session = ui.cookies.read(request)
        if session is not None and session.signed_in:
            return RedirectResponse(safe_next(next), status_code=303)
        return _login(ui, request, session or ui.cookies.new(), safe_next(next), "", 200)

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
        caller = ui.cookies.access.caller_of(token.strip())
        if caller is None or caller.role is Role.AGENT:
            message = (
                "wrong token: the web UI takes the token of a person (dalsegno tokens"
                " create) or the admin token of the manager"
            )
            return _login(ui, request, session, safe_next(next), message, 401)
        response = RedirectResponse(safe_next(next), status_code=303)
        ui.cookies.write(response, ui.cookies.sign_in(caller, token.strip()), request)
        return response

    @router.post("/logout")
    def logout(
        request: Request,
        session: Annotated[Session, Depends(ui.signed_in)],
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        ui.check_csrf(request, session, csrf)
        ui.cookies.sign_out(session)  # ended in the store: a copy of the cookie is worthless
        response = RedirectResponse("/login", status_code=303)
        ui.cookies.write(response, ui.cookies.new(), request)
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
