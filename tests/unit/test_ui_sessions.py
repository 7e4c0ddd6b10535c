"""The web UI's session cookies (moved here from test_ui_layout.py when sessions moved into
the store): signed, read back only with their signature, ending when they expire; a
signed-in one names a session of the store and holds nothing else. The store is an
in-memory fake of `AccessStore`'s session part; tests/security proves the real one."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from starlette.requests import Request
from starlette.responses import Response

from dalsegno.model.access import ADMIN_CALLER, Caller, Role, SessionRecord, TokenRecord
from dalsegno.service.access import AccessService
from dalsegno.service.tokens import token_hash
from dalsegno.ui.sessions import COOKIE, SessionCookies, csrf_matches


class Sessions:
    """The session and token reads of `AccessStore`, in memory."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRecord] = {}
        self.active: set[str] = set()  # hashes of people's tokens not revoked

    def add_session(self, id_hash: str, session: SessionRecord) -> None:
        self.sessions[id_hash] = session

    def get_session(self, id_hash: str) -> SessionRecord | None:
        found = self.sessions.get(id_hash)
        if found is None:
            return None
        return replace(found, token_active=found.token_hash in self.active)

    def touch_session(self, id_hash: str, at: float) -> None:
        self.sessions[id_hash] = replace(self.sessions[id_hash], last_seen_at=at)

    def end_session(self, id_hash: str) -> None:
        self.sessions.pop(id_hash, None)

    def purge_sessions(self, now: float, idle: float) -> int:
        return 0

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        return None


def cookies_of(
    secret: str = "admin-token", idle: float = 1800.0, store: Sessions | None = None
) -> SessionCookies:
    store = store or Sessions()
    access = AccessService(lambda: store, secret)  # type: ignore[arg-type, return-value]
    return SessionCookies(secret, access, idle)


def request_with(cookie: str | None) -> Request:
    headers = [] if cookie is None else [(b"cookie", f"{COOKIE}={cookie}".encode())]
    scope = {"type": "http", "headers": headers, "scheme": "http", "path": "/", "server": None}
    return Request(scope)


def cookie_of(response: Response) -> str:
    header = response.headers["set-cookie"]
    assert "httponly" in header.lower()
    assert "samesite=lax" in header.lower()
    return header.split(";")[0].split("=", 1)[1].strip('"')


def written(cookies: SessionCookies, session: object) -> str:
    response = Response()
    cookies.write(response, session, request_with(None))  # type: ignore[arg-type]
    return cookie_of(response)


def test_a_session_reads_back_only_with_its_signature() -> None:
    cookies = cookies_of()
    for session in (cookies.new(), cookies.sign_in(ADMIN_CALLER, "admin-token")):
        value = written(cookies, session)
        assert cookies.read(request_with(value)) == session
        assert cookies_of("another-admin-token").read(request_with(value)) is None
        payload, signature = value.split(".")
        assert cookies.read(request_with(f"{payload}x.{signature}")) is None
        assert cookies.read(request_with(f"{payload}.{signature[::-1]}")) is None
        assert cookies.read(request_with("garbage")) is None
        assert "admin-token" not in value


def test_a_signed_in_cookie_holds_only_the_session_id() -> None:
    store = Sessions()
    cookies = cookies_of(store=store)
    token = "alices-token-of-43-characters-abcdefghijkl"
    store.active.add(token_hash(token))
    session = cookies.sign_in(Caller("alice", Role.OPERATOR), token)
    value = written(cookies, session)
    read = cookies.read(request_with(value))
    assert read is not None
    assert (read.actor, read.role, read.signed_in) == ("alice", "operator", True)
    assert "alice" not in value and session.csrf not in value
    store.active.clear()  # the token revoked
    assert cookies.read(request_with(value)) is None
    store.active.add(token_hash(token))
    assert cookies.read(request_with(value)) is None  # and the session ended with it
    again = cookies.sign_in(Caller("alice", Role.OPERATOR), token)
    cookies.sign_out(again)
    assert cookies.read(request_with(written(cookies, again))) is None  # signed out


def test_an_expired_or_idle_session_is_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    cookies = cookies_of(idle=600.0)
    anonymous = written(cookies, cookies.new())
    signed_in = written(cookies, cookies.sign_in(ADMIN_CALLER, "admin-token"))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 300)
    assert cookies.read(request_with(signed_in)) is not None  # used: its idle clock restarts
    monkeypatch.setattr(time, "time", lambda: now + 300 + 601)
    assert cookies.read(request_with(signed_in)) is None  # idle past the timeout
    monkeypatch.setattr(time, "time", lambda: now + 2 * 3600)
    assert cookies.read(request_with(anonymous)) is None


def test_a_session_of_a_replaced_admin_token_ends() -> None:
    store = Sessions()
    old = cookies_of("old-admin-token", store=store)
    value = written(old, old.sign_in(ADMIN_CALLER, "old-admin-token"))
    assert old.read(request_with(value)) is not None
    access = AccessService(lambda: store, "new-admin-token")  # type: ignore[arg-type, return-value]
    same_key = SessionCookies("old-admin-token", access)
    assert same_key.read(request_with(value)) is None


def test_csrf_tokens_must_match_exactly() -> None:
    session = cookies_of("s").sign_in(ADMIN_CALLER, "s")
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, session.csrf + "x")
