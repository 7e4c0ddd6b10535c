"""Bearer tokens: who is calling (authentication) and what it may do (scopes).

Authentication runs as middleware, before FastAPI reads a body, so a caller without a
valid token learns nothing else (401). Each route then asks for the scope it needs (403).

Scopes are strings: `admin` may do everything; an agent's token will carry `queue:NAME`
for each queue it serves. The admin token is the only one the manager knows today; the
`scoped` lookup of `TokenChecker` is where agent tokens plug in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import Request, Security
from fastapi.security import HTTPBearer
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from dalsegno.api.errors import ApiError
from dalsegno.service.tokens import same_token

ADMIN = "admin"

ScopeLookup = Callable[[str], Iterable[str] | None]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="The manager's admin token (in `$DALSEGNO_HOME/token`) or an agent's token.",
)


def queue_scope(queue: str) -> str:
    """The scope that lets a token serve the agent queue `queue`."""
    return f"queue:{queue}"


class TokenChecker:
    """The scopes of a bearer token: `{admin}` for the admin token, else `scoped(token)`."""

    def __init__(self, admin_token: str, scoped: ScopeLookup | None = None) -> None:
        if not admin_token:
            msg = "the admin token must not be empty"
            raise ValueError(msg)
        self.admin_token = admin_token
        self._scoped = scoped

    def scopes_of(self, token: str) -> frozenset[str] | None:
        """The scopes `token` grants, or None for a token this manager does not know.

        The admin token is compared in constant time; a `scoped` lookup must do the same.
        """
        if same_token(token, self.admin_token):
            return frozenset({ADMIN})
        if self._scoped is None:
            return None
        found = self._scoped(token)
        return None if found is None else frozenset(found)


class Caller(BaseUser):
    """Whoever presented a known token."""

    def __init__(self, scopes: frozenset[str]) -> None:
        self.scopes = scopes

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return ADMIN if ADMIN in self.scopes else "agent"


class BearerTokens(AuthenticationBackend):
    """Requires a known bearer token on every path under `prefix`, except `public` ones."""

    def __init__(self, tokens: TokenChecker, prefix: str, public: Iterable[str]) -> None:
        self.tokens = tokens
        self.prefix = prefix.rstrip("/")
        self.public = frozenset(public)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        path = conn.url.path
        if path in self.public or not (path == self.prefix or path.startswith(self.prefix + "/")):
            return None
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            msg = "a bearer token is required: Authorization: Bearer TOKEN"
            raise AuthenticationError(msg)
        # A scoped lookup may read the store: keep it off the event loop.
        scopes = await run_in_threadpool(self.tokens.scopes_of, token)
        if scopes is None:
            msg = "wrong token: not one this manager knows"
            raise AuthenticationError(msg)
        return AuthCredentials(sorted(scopes)), Caller(scopes)


def require(scope: str) -> Callable[..., Awaitable[None]]:
    """A route dependency: the caller's token must grant `scope` (the admin token does)."""

    async def check(request: Request, _: object = Security(bearer)) -> None:
        granted = set(getattr(request.auth, "scopes", ()) or ())
        if ADMIN not in granted and scope not in granted:
            needs = "the admin token" if scope == ADMIN else f"a token with the {scope} scope"
            raise ApiError(403, f"this token may not do this: it needs {needs}")

    return check
