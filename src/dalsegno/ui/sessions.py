"""The web UI's sessions: kept in the store, named by a signed cookie.

A browser that signs in gets a random session id in its cookie; the store keeps only its
hash, with who signed in (the token's name and role), the session's CSRF token, and when it
was last used. So signing out ends the session (a copied cookie is worth nothing after),
revoking the token ends all its sessions at once, and a session idle past the idle timeout
or older than `SIGNED_IN_FOR` ends, on every manager sharing the store.

Before signing in, a browser gets an anonymous session, a cookie holding only a CSRF token
and its expiry, so even the sign-in form carries a CSRF token (no login CSRF); nothing is
written for it. Every cookie is signed with HMAC-SHA256 under a key derived from the admin
token (a new admin token signs everyone out). It is HttpOnly, SameSite=Lax, and Secure
whenever the manager serves TLS (or the request came over https).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dalsegno.model.access import DEFAULT_SESSION_IDLE, GRANTS, Caller, Permission, Role
from dalsegno.service.access import AccessService

COOKIE = "dalsegno_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SIGNED_IN_FOR = 12 * 3600.0  # seconds a sign-in lasts at most
ANONYMOUS_FOR = 3600.0  # seconds a sign-in form stays usable
DEFAULT_IDLE = DEFAULT_SESSION_IDLE  # seconds without a request after which a session ends


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    signed_in: bool
    expires_at: float
    actor: str | None = None  # who signed in: a token's name, or `admin`
    role: Role | None = None
    key: str | None = None  # a signed-in session's id (only the cookie holds it)

    def may(self, permission: Permission) -> bool:
        return self.role is not None and permission in GRANTS[self.role]


class SessionCookies:
    """Makes, signs and reads session cookies; signed-in sessions live in the store."""

    def __init__(
        self,
        secret: str,
        access: AccessService,
        idle: float = DEFAULT_IDLE,
        secure: bool = False,
    ) -> None:
        if not secret:
            msg = "the session secret must not be empty"
            raise ValueError(msg)
        self._key = hmac.new(secret.encode(), b"dalsegno web UI sessions", hashlib.sha256).digest()
        self.access = access
        self.idle = idle
        self.secure = secure  # TLS is on: every cookie is Secure

    def new(self) -> Session:
        """A fresh anonymous session with a new CSRF token."""
        return Session(secrets.token_urlsafe(24), False, time.time() + ANONYMOUS_FOR)

    def sign_in(self, caller: Caller, token: str) -> Session:
        """A new signed-in session for `caller` (a new id and a new CSRF token)."""
        key = secrets.token_urlsafe(32)
        record = self.access.open_session(key, caller, token, SIGNED_IN_FOR)
        return Session(record.csrf, True, record.expires_at, caller.name, caller.role, key)

    def sign_out(self, session: Session) -> None:
        if session.key is not None:
            self.access.close_session(session.key)

    def read(self, request: Request) -> Session | None:
        """The request's session, or None: none, forged, expired, idle, or signed out."""
        fields = self._fields(request.cookies.get(COOKIE))
        if fields is None:
            return None
        try:
            if "i" in fields:
                return self._signed_in(str(fields["i"]))
            session = Session(str(fields["c"]), False, float(fields["e"]))
        except (KeyError, TypeError, ValueError):
            return None
        return session if session.expires_at > time.time() else None

    def _signed_in(self, key: str) -> Session | None:
        record = self.access.session(key, self.idle)
        if record is None:
            return None
        return Session(record.csrf, True, record.expires_at, record.name, record.role, key)

    def write(self, response: Response, session: Session, request: Request) -> None:
        """Set the session's cookie on `response`."""
        fields = {"i": session.key} if session.key else {"c": session.csrf, "e": session.expires_at}
        payload = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()
        response.set_cookie(
            COOKIE,
            f"{payload}.{self._sign(payload)}",
            max_age=max(0, int(session.expires_at - time.time())),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure or request.url.scheme == "https",
        )

    def _fields(self, value: str | None) -> dict[str, Any] | None:
        if not value or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except (binascii.Error, ValueError):
            return None
        return fields if isinstance(fields, dict) else None

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_matches(session: Session, given: str | None) -> bool:
    """Whether `given` (a form field or header) is the session's CSRF token."""
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())
