"""Agents: claims of agent tasks, reported results of agent attempts, agents, their tokens.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("holder", sa.String(255)))
        batch.add_column(sa.Column("attempt_id", sa.String(64)))
        batch.add_column(sa.Column("claimed_at", sa.Float()))
        batch.create_index("ix_tasks_agent_status", ["agent", "status"])
        batch.create_index("ix_tasks_attempt_id", ["attempt_id"])
        batch.create_index("ix_tasks_holder", ["holder"])
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("attempt_id", sa.String(64)))
        batch.add_column(sa.Column("report_outcome", sa.String(20)))
        batch.add_column(sa.Column("report_result", sa.Text()))
        batch.add_column(sa.Column("report_error", sa.Text()))
        batch.add_column(sa.Column("report_recoverable", sa.Integer()))
        batch.add_column(sa.Column("report_retry_after", sa.Float()))
        batch.add_column(sa.Column("reported_at", sa.Float()))
        batch.create_index("ix_attempts_attempt_id", ["attempt_id"], unique=True)
    op.create_table(
        "agents",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.Float(), nullable=False),
        sa.Column("last_heartbeat_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_agents"),
    )
    op.create_table(
        "agent_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_agent_tokens"),
    )


def downgrade() -> None:
    op.drop_table("agent_tokens")
    op.drop_table("agents")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_index("ix_attempts_attempt_id")
        for column in (
            "reported_at",
            "report_retry_after",
            "report_recoverable",
            "report_error",
            "report_result",
            "report_outcome",
            "attempt_id",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_holder")
        batch.drop_index("ix_tasks_attempt_id")
        batch.drop_index("ix_tasks_agent_status")
        for column in ("claimed_at", "attempt_id", "holder"):
            batch.drop_column(column)
