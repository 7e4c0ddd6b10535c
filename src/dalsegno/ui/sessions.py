"""The web UI's sessions: a signed cookie (HMAC-SHA256) holding a CSRF token and whether
the browser signed in, and until when.

The signing key is derived from the manager's admin token (itself kept 0600 in
`$DALSEGNO_HOME/token`): every manager sharing a home accepts the others' cookies, a
restart keeps people signed in, and a new admin token signs everyone out. The cookie holds
no token and nothing secret; it is HttpOnly, SameSite=Lax, and Secure over https.

Every browser gets a session on its first page, signed in or not, so even the sign-in form
carries a CSRF token (no login CSRF).
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

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "dalsegno_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SIGNED_IN_FOR = 12 * 3600.0  # seconds a sign-in lasts
ANONYMOUS_FOR = 3600.0  # seconds a sign-in form stays usable


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    signed_in: bool
    expires_at: float


class SessionCookies:
    """Makes, signs and reads session cookies with a key derived from `secret`."""

    def __init__(self, secret: str) -> None:
        if not secret:
            msg = "the session secret must not be empty"
            raise ValueError(msg)
        self._key = hmac.new(secret.encode(), b"dalsegno web UI sessions", hashlib.sha256).digest()

    def new(self, signed_in: bool) -> Session:
        """A fresh session with a new CSRF token (a sign-in always gets a new one)."""
        lasts = SIGNED_IN_FOR if signed_in else ANONYMOUS_FOR
        return Session(secrets.token_urlsafe(24), signed_in, time.time() + lasts)

    def read(self, request: Request) -> Session | None:
        """The request's session, or None when it has none, a forged one, or an expired one."""
        value = request.cookies.get(COOKIE)
        if not value or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload.encode()))
            session = Session(str(fields["c"]), fields["s"] is True, float(fields["e"]))
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > time.time() else None

    def write(self, response: Response, session: Session, request: Request) -> None:
        """Set the session's cookie on `response`."""
        fields = {"c": session.csrf, "s": session.signed_in, "e": session.expires_at}
        payload = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()
        response.set_cookie(
            COOKIE,
            f"{payload}.{self._sign(payload)}",
            max_age=int(session.expires_at - time.time()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_matches(session: Session, given: str | None) -> bool:
    """Whether `given` (a form field or header) is the session's CSRF token."""
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())
