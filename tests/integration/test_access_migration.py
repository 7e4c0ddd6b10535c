"""Migration 0004 moves the agent tokens a 0003 store holds into `tokens`, where they are
listed and revoked like people's tokens, and keep serving their queue."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from dalsegno.model.access import Role
from dalsegno.service.access import AccessService
from dalsegno.service.tokens import token_hash
from dalsegno.store import open_store
from dalsegno.store.migrate import MIGRATIONS


def test_agent_tokens_of_a_0003_store_become_named_agent_tokens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.execute(
            text("INSERT INTO agent_tokens VALUES (:hash, 'web', 1700000000.0)"),
            {"hash": token_hash("an-old-agent-token")},
        )
    engine.dispose()

    store = open_store(url)
    try:
        (record,) = store.list_tokens()
        assert record.name == "agent-" + token_hash("an-old-agent-token")[:12]
        assert (record.role, record.queue, record.created_at) == (Role.AGENT, "web", 1700000000.0)
        access = AccessService.on(store)
        caller = access.caller_of("an-old-agent-token")
        assert caller is not None and caller.serves("web") and not caller.serves("db")
        access.revoke(record.name, "admin")
        assert access.caller_of("an-old-agent-token") is None
    finally:
        store.close()
