"""The part of the `Store` protocol that keeps tokens and web UI sessions.

Secrets never reach the store: tokens and session ids are kept as SHA-256 hashes, so a
copy of the database lets nobody in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from dalsegno.model.access import SessionRecord, TokenRecord

if TYPE_CHECKING:
    from dalsegno.model.records import EventRecord


class AccessStore(Protocol):
    """Tokens (people's and agents') and signed-in sessions."""

    def add_token(self, token_hash: str, token: TokenRecord) -> None:
        """Store a new token; ConflictError when an active token has its name."""
        ...

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The active (not revoked) token with this hash."""
        ...

    def agent_token_queue(self, token_hash: str) -> str | None:
        """The queue of the active agent token with this hash."""
        ...

    def list_tokens(self, include_revoked: bool = False) -> list[TokenRecord]: ...

    def revoke_token(self, name: str, revoked_by: str, at: float) -> TokenRecord | None:
        """Revoke the active token `name` and end its sessions, in one transaction."""
        ...

    def list_actions(self, execution_id: str, limit: int = 200) -> list[EventRecord]:
        """The execution's events that record who asked for them, oldest first."""
        ...

    def add_session(self, id_hash: str, session: SessionRecord) -> None: ...

    def get_session(self, id_hash: str) -> SessionRecord | None: ...

    def touch_session(self, id_hash: str, at: float) -> None: ...

    def end_session(self, id_hash: str) -> None: ...

    def end_sessions_of(self, token_hash: str) -> int:
        """End every session signed in with this token (a new admin token, say)."""
        ...

    def purge_sessions(self, now: float, idle: float) -> int:
        """Delete sessions that expired or idled past `idle` seconds; how many."""
        ...
