"""Tokens and web UI sessions in the store (the queries of `AccessStore`).

A mixin `SQLStore` inherits. Secrets are never stored: a token and a session id are kept
as their SHA-256 hashes. A revoked token keeps its row (who revoked it, when), and the
revocation deletes its sessions in the same transaction, so it ends them at once on every
manager of the store.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exc, insert, or_, select, update

from dalsegno.model.access import Role, SessionRecord, TokenRecord
from dalsegno.model.errors import ConflictError
from dalsegno.model.records import EventRecord
from dalsegno.store import tables as t
from dalsegno.store.pages import event_of
from dalsegno.store.retry import retried

_TOKEN_COLUMNS = (
    t.tokens.c.name,
    t.tokens.c.role,
    t.tokens.c.queue,
    t.tokens.c.created_at,
    t.tokens.c.created_by,
    t.tokens.c.revoked_at,
    t.tokens.c.revoked_by,
)
_TOKEN_BY_HASH = select(*_TOKEN_COLUMNS).where(
    t.tokens.c.token_hash == bindparam("b_hash"), t.tokens.c.revoked_at.is_(None)
)


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        name=row.name,
        role=Role(row.role),
        queue=row.queue,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


class AccessQueries:
    """The queries of tokens and sessions; `_write` and `_read` come from `SQLStore`."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read_row(self, statement: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    # tokens ------------------------------------------------------------------------

    def add_token(self, token_hash: str, token: TokenRecord) -> None:
        try:
            with self._write() as conn:
                conn.execute(
                    insert(t.tokens).values(
                        token_hash=token_hash,
                        name=token.name,
                        role=token.role.value,
                        queue=token.queue,
                        created_at=token.created_at,
                        created_by=token.created_by,
                    )
                )
        except exc.IntegrityError:
            msg = f"a token named {token.name!r} exists: revoke it first, or choose another name"
            raise ConflictError(msg) from None

    @retried("reading a token")
    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        # every request with a token but the admin's asks: a statement built once, read
        # alone (one round trip on PostgreSQL)
        row = self._read_row(_TOKEN_BY_HASH, {"b_hash": token_hash})
        return None if row is None else _token(row)

    @retried("reading a token")
    def agent_token_queue(self, token_hash: str) -> str | None:
        """The queue of the active agent token with this hash."""
        query = select(t.tokens.c.queue).where(
            t.tokens.c.token_hash == token_hash,
            t.tokens.c.role == Role.AGENT.value,
            t.tokens.c.revoked_at.is_(None),
        )
        with self._read() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def list_tokens(self, include_revoked: bool = False) -> list[TokenRecord]:
        query = select(*_TOKEN_COLUMNS).order_by(t.tokens.c.name, t.tokens.c.created_at)
        if not include_revoked:
            query = query.where(t.tokens.c.revoked_at.is_(None))
        with self._read() as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke_token(self, name: str, revoked_by: str, at: float) -> TokenRecord | None:
        with self._write() as conn:
            row = conn.execute(
                update(t.tokens)
                .where(t.tokens.c.name == name, t.tokens.c.revoked_at.is_(None))
                .values(revoked_at=at, revoked_by=revoked_by)
                .returning(t.tokens.c.token_hash, *_TOKEN_COLUMNS)
            ).first()
            if row is None:
                return None
            conn.execute(delete(t.ui_sessions).where(t.ui_sessions.c.token_hash == row.token_hash))
        return _token(row)

    # who did what ------------------------------------------------------------------

    def list_actions(self, execution_id: str, limit: int = 200) -> list[EventRecord]:
        """The execution's events that record who asked for them, oldest first (the
        newest `limit` of them)."""
        query = (
            select(t.events)
            .where(t.events.c.execution_id == execution_id, t.events.c.actor.is_not(None))
            .order_by(t.events.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = list(conn.execute(query))
        return [event_of(row) for row in reversed(rows)]

    # sessions ----------------------------------------------------------------------

    def add_session(self, id_hash: str, session: SessionRecord) -> None:
        with self._write() as conn:
            conn.execute(
                insert(t.ui_sessions).values(
                    id_hash=id_hash,
                    token_hash=session.token_hash,
                    name=session.name,
                    role=session.role.value,
                    csrf=session.csrf,
                    created_at=session.created_at,
                    last_seen_at=session.last_seen_at,
                    expires_at=session.expires_at,
                )
            )

    @retried("reading a web UI session")
    def get_session(self, id_hash: str) -> SessionRecord | None:
        s, tokens = t.ui_sessions, t.tokens
        query = (
            select(s, tokens.c.token_hash.label("active_hash"))
            .select_from(
                s.outerjoin(
                    tokens,
                    (tokens.c.token_hash == s.c.token_hash) & tokens.c.revoked_at.is_(None),
                )
            )
            .where(s.c.id_hash == id_hash)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return SessionRecord(
            token_hash=row.token_hash,
            name=row.name,
            role=Role(row.role),
            csrf=row.csrf,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            token_active=row.active_hash is not None,
        )

    def touch_session(self, id_hash: str, at: float) -> None:
        with self._write() as conn:
            conn.execute(
                update(t.ui_sessions)
                .where(t.ui_sessions.c.id_hash == id_hash, t.ui_sessions.c.last_seen_at < at)
                .values(last_seen_at=at)
            )

    def end_session(self, id_hash: str) -> None:
        with self._write() as conn:
            conn.execute(delete(t.ui_sessions).where(t.ui_sessions.c.id_hash == id_hash))

    def end_sessions_of(self, token_hash: str) -> int:
        with self._write() as conn:
            ended = conn.execute(
                delete(t.ui_sessions).where(t.ui_sessions.c.token_hash == token_hash)
            )
        return int(ended.rowcount)

    def purge_sessions(self, now: float, idle: float) -> int:
        s = t.ui_sessions
        with self._write() as conn:
            purged = conn.execute(
                delete(s).where(or_(s.c.expires_at <= now, s.c.last_seen_at <= now - idle))
            )
        return int(purged.rowcount)
