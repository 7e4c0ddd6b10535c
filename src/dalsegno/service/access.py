"""People's and agents' tokens: issued, listed, revoked, and told apart on each request.

A token is 43 URL-safe characters from `secrets` (256 bits); the store keeps its SHA-256
only, so the secret is shown once, when it is made. The manager's admin token (a file,
`dalsegno.service.tokens`) is not in the store: it is compared in constant time here.
"""

from __future__ import annotations

import getpass
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from dalsegno.model.access import (
    ADMIN_CALLER,
    LOCAL_PREFIX,
    PEOPLE_ROLES,
    Caller,
    Role,
    SessionRecord,
    TokenRecord,
    parse_role,
    token_name_problem,
)
from dalsegno.model.errors import NotFoundError, RefusedError
from dalsegno.model.names import check_name
from dalsegno.service.tokens import same_token, token_hash
from dalsegno.store.access_records import AccessStore

TOUCH_EVERY = 60.0  # seconds: how stale a session's last use may be in the store


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just made: the only time its secret is known."""

    record: TokenRecord
    secret: str


def local_actor() -> str:
    """The actor of the CLI working on the store itself: `local:` and the login name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        import os

        user = str(os.getuid())
    return f"{LOCAL_PREFIX}{user}"


def token_json(record: TokenRecord) -> dict[str, object]:
    """A token as `tokens list --json` and `GET /api/v1/tokens` show it (never a secret)."""
    return {
        "name": record.name,
        "role": record.role.value,
        "queue": record.queue,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "revoked_at": record.revoked_at,
        "revoked_by": record.revoked_by,
    }


class AccessService:
    """Tokens in the store, and who a presented token is.

    `store_of` gives the store when it is needed (the REST API builds this before its
    service has opened one, to describe itself).
    """

    def __init__(self, store_of: Callable[[], AccessStore], admin_token: str | None = None) -> None:
        self._store_of = store_of
        self._admin_token = admin_token

    @classmethod
    def on(cls, store: AccessStore, admin_token: str | None = None) -> AccessService:
        """The service on `store`."""
        return cls(lambda: store, admin_token)

    @property
    def store(self) -> AccessStore:
        return self._store_of()

    def caller_of(self, token: str) -> Caller | None:
        """Who presents `token`: the admin, a person, an agent; None for an unknown one."""
        if self._admin_token is not None and same_token(token, self._admin_token):
            return ADMIN_CALLER
        found = self.store.token_by_hash(token_hash(token))
        if found is None:
            return None
        return Caller(found.name, found.role, found.queue)

    def issue(self, name: str, role: str, created_by: str, queue: str | None = None) -> IssuedToken:
        """A new token named `name` with `role`; an agent's also names its `queue`."""
        problem = token_name_problem(name)
        if problem is not None:
            raise RefusedError(problem)
        try:
            parsed = parse_role(role)
        except ValueError as exc:
            raise RefusedError(str(exc)) from None
        if parsed is Role.AGENT:
            if queue is None:
                msg = "an agent token serves one queue: give its name (--queue)"
                raise RefusedError(msg)
            check_name("a queue name", queue)
        elif queue is not None:
            roles = ", ".join(role.value for role in PEOPLE_ROLES)
            msg = f"only an agent token has a queue, not a token of role {parsed} ({roles})"
            raise RefusedError(msg)
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(name, parsed, queue, time.time(), created_by)
        self.store.add_token(token_hash(secret), record)
        return IssuedToken(record, secret)

    def issue_agent_token(
        self, queue: str, created_by: str, name: str | None = None
    ) -> IssuedToken:
        """A token that serves `queue` only; named `agent-` and 8 hex digits unless given."""
        check_name("a queue name", queue)
        return self.issue(name or f"agent-{secrets.token_hex(4)}", Role.AGENT, created_by, queue)

    def list(self, include_revoked: bool = False) -> list[TokenRecord]:
        return self.store.list_tokens(include_revoked)

    # web UI sessions --------------------------------------------------------------

    def open_session(self, key: str, caller: Caller, token: str, lasts: float) -> SessionRecord:
        """Store a signed-in session named by the secret `key` (kept as its hash)."""
        now = time.time()
        record = SessionRecord(
            token_hash=token_hash(token),
            name=caller.name,
            role=caller.role,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lasts,
            token_active=True,
        )
        self.store.purge_sessions(now, lasts)  # the ended ones of everyone, now and then
        self.store.add_session(token_hash(key), record)
        return record

    def session(self, key: str, idle: float) -> SessionRecord | None:
        """The signed-in session `key` names, while it lasts: not expired, not idle for
        `idle` seconds, its token not revoked (nor the admin token replaced)."""
        id_hash = token_hash(key)
        record = self.store.get_session(id_hash)
        if record is None:
            return None
        now = time.time()
        if (
            record.expires_at <= now
            or record.last_seen_at + idle <= now
            or not (record.token_active or self._is_admin_token(record.token_hash))
        ):
            self.store.end_session(id_hash)
            return None
        if now - record.last_seen_at >= min(TOUCH_EVERY, idle / 10):
            self.store.touch_session(id_hash, now)  # not on every request: a write each
        return record

    def close_session(self, key: str) -> None:
        """Sign out: the session ends here and on every manager of the store."""
        self.store.end_session(token_hash(key))

    def _is_admin_token(self, hashed: str) -> bool:
        if self._admin_token is None:
            return False
        return same_token(hashed, token_hash(self._admin_token))

    def revoke(self, name: str, revoked_by: str) -> TokenRecord:
        """Revoke the token `name`: it is refused from now on, and its sessions end."""
        revoked = self.store.revoke_token(name, revoked_by, time.time())
        if revoked is None:
            msg = f"no such token: {name!r} (see `dalsegno tokens list`)"
            raise NotFoundError(msg)
        return revoked
