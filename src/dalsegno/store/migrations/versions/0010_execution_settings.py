"""How an execution runs at every take-up: `dry_run`, `task_retries`, `task_retry_interval`
(docs/design.md, "Retry settings" and "Dry runs").

They are written when the execution is created and read by whoever runs it (its first
start, a resume, a takeover), so the settings and the dry-run marker never change between
runs. Executions created before this migration are real runs with no settings of their own.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("dry_run", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("task_retries", sa.Integer))
        batch.add_column(sa.Column("task_retry_interval", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("task_retry_interval")
        batch.drop_column("task_retries")
        batch.drop_column("dry_run")
