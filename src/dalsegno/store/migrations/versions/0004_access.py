"""Access: people's and agents' tokens with roles, web UI sessions, the actor of an event.

Agent tokens move from `agent_tokens` into `tokens` (role `agent`, named `agent-` and the
first 12 hex digits of their hash), so every token is listed and revoked the same way.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("actor", sa.String(255)))
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("queue", sa.String(255)),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("revoked_at", sa.Float()),
        sa.Column("revoked_by", sa.String(255)),
        sa.PrimaryKeyConstraint("token_hash", name="pk_tokens"),
    )
    op.create_index(
        "ix_tokens_name_active",
        "tokens",
        ["name"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.execute(
        "INSERT INTO tokens (token_hash, name, role, queue, created_at)"
        " SELECT token_hash, 'agent-' || substr(token_hash, 1, 12), 'agent', queue, created_at"
        " FROM agent_tokens"
    )
    op.drop_table("agent_tokens")
    op.create_table(
        "ui_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_ui_sessions"),
    )
    op.create_index("ix_ui_sessions_token_hash", "ui_sessions", ["token_hash"])


def downgrade() -> None:
    op.drop_index("ix_ui_sessions_token_hash", "ui_sessions")
    op.drop_table("ui_sessions")
    op.create_table(
        "agent_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_agent_tokens"),
    )
    op.execute(
        "INSERT INTO agent_tokens (token_hash, queue, created_at)"
        " SELECT token_hash, queue, created_at FROM tokens"
        " WHERE role = 'agent' AND revoked_at IS NULL"
    )
    op.drop_index("ix_tokens_name_active", "tokens")
    op.drop_table("tokens")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("actor")
