"""Housekeeping and runs: an execution being deleted, how many times it was taken up, and
when it first started.

- `deleting_at`: set when a delete or a purge begins; the execution is then gone for every
  reader while its rows are removed in bounded batches (a delete cut short is finished by
  the next one).
- `runs` and `first_started_at`: how many times the execution was taken up (its first start,
  each resume, each takeover), and when it first started, so its duration is from its first
  start to its last end. Executions that started before this migration count one run.

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("deleting_at", sa.Float()))
        batch.add_column(sa.Column("runs", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("first_started_at", sa.Float()))
        batch.create_index("ix_executions_ended_at", ["ended_at"])
    op.execute(
        "UPDATE executions SET first_started_at = started_at,"
        " runs = CASE WHEN started_at IS NULL THEN 0 ELSE 1 END"
    )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_ended_at")
        batch.drop_column("first_started_at")
        batch.drop_column("runs")
        batch.drop_column("deleting_at")
