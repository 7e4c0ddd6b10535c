"""The owner's reads of its agent tasks: an index on (execution_id, holder).

An execution's owner reads its claimed tasks (holder set) on every agent result; with an
index on the execution alone, each read walked every task of the execution.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_execution_id_holder", "tasks", ["execution_id", "holder"])


def downgrade() -> None:
    op.drop_index("ix_tasks_execution_id_holder", table_name="tasks")
