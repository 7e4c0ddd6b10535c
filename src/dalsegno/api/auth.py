"""Bearer tokens: who is calling (authentication) and what it may do (its role).

Authentication runs as middleware, before FastAPI reads a body, so a caller without a
valid token learns nothing else (401). Each route then asks for the permission it needs
(403): `read` (viewer, operator, admin), `operate` (operator, admin), `manage` (admin);
the agent protocol's routes ask for the queue instead (an agent's token, or an admin).
`dalsegno.model.access` says which role grants what; docs/security.md tells it whole.
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
from dalsegno.model.access import (
    ADMIN_ACTOR,
    ADMIN_CALLER,
    LEAST_ROLE,
    Caller,
    Permission,
    queue_scope,
)
from dalsegno.service.tokens import same_token

ADMIN = ADMIN_ACTOR  # the scope only an admin holds (kept for the routes that name it)
READ, OPERATE, MANAGE = Permission.READ, Permission.OPERATE, Permission.MANAGE

CallerLookup = Callable[[str], Caller | None]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description=(
        "A person's token (viewer, operator or admin: `dalsegno tokens create`), an agent's"
        " token (`dalsegno agents token QUEUE`), or the manager's admin token"
        " (`$DALSEGNO_HOME/token`)."
    ),
)

__all__ = ["ADMIN", "MANAGE", "OPERATE", "READ", "TokenChecker", "caller_of", "queue_scope"]


class TokenChecker:
    """Who presents a token: the admin for the admin token, else `lookup(token)`."""

    def __init__(self, admin_token: str, lookup: CallerLookup | None = None) -> None:
        if not admin_token:
            msg = "the admin token must not be empty"
            raise ValueError(msg)
        self.admin_token = admin_token
        self._lookup = lookup

    def caller_of(self, token: str) -> Caller | None:
        """The caller `token` names, or None for a token this manager does not know.

        The admin token is compared in constant time; a lookup compares hashes in the store.
        """
        if same_token(token, self.admin_token):
            return ADMIN_CALLER
        return None if self._lookup is None else self._lookup(token)

    def is_admin(self, token: str) -> bool:
        """Whether `token` is the admin token (constant time; no store read)."""
        return same_token(token, self.admin_token)

    def scopes_of(self, token: str) -> frozenset[str] | None:
        """The scopes `token` grants, or None for an unknown token."""
        found = self.caller_of(token)
        return None if found is None else found.scopes


class _User(BaseUser):
    """Starlette's view of a caller."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.caller.name


class BearerTokens(AuthenticationBackend):
    """Requires a known bearer token on every path under `prefix`, except `public` ones."""

    def __init__(self, tokens: TokenChecker, prefix: str, public: Iterable[str]) -> None:
        self.tokens = tokens
        self.prefix = prefix.rstrip("/")
        self.public = frozenset(public)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        path = conn.scope["path"]  # not `conn.url`: building it costs more than the check
        if path in self.public or not (path == self.prefix or path.startswith(self.prefix + "/")):
            return None
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            msg = "a bearer token is required: Authorization: Bearer TOKEN"
            raise AuthenticationError(msg)
        # The admin token is compared here; a lookup reads the store: off the event loop.
        found = (
            ADMIN_CALLER
            if self.tokens.is_admin(token)
            else await run_in_threadpool(self.tokens.caller_of, token)
        )
        if found is None:
            msg = "wrong token: not one this manager knows (or it was revoked)"
            raise AuthenticationError(msg)
        return AuthCredentials(sorted(found.scopes)), _User(found)


def caller_of(request: Request) -> Caller:
    """The caller the middleware authenticated (a route dependency)."""
    user = request.scope.get("user")
    if not isinstance(user, _User):
        raise ApiError(401, "a bearer token is required: Authorization: Bearer TOKEN")
    return user.caller


def require(permission: Permission) -> Callable[..., Awaitable[None]]:
    """A route dependency: the caller's role must grant `permission`."""

    async def check(request: Request, _: object = Security(bearer)) -> None:
        if not caller_of(request).may(permission):
            raise ApiError(403, refusal(permission))

    return check


def refusal(permission: Permission) -> str:
    """Why a caller without `permission` is refused (403)."""
    role = LEAST_ROLE[permission]
    if role.value == ADMIN:
        return (
            "this token may not do this: it needs a token with the admin role, or the admin token"
        )
    return (
        f"this token may not do this: it needs a token with the {role} role or above,"
        " or the admin token"
    )
