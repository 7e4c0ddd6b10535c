"""An agent task's `ctx.resume`, decided by the owner when it sends the task.

`tasks.resume`: true when the task goes back to its queue because its attempt was lost on
its agent (resumable), false for any other send (a first run, a retry, a reset by a
subgraph retry, `--reset-operations` or a manual resume). A claim reads it; before, a
claim guessed it from the outcome of the previous attempt, which a reset does not change.
Tasks already `sent` after a lost or interrupted attempt keep the old answer (true).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tasks", sa.Column("resume", sa.Boolean, nullable=False, server_default=sa.false())
    )
    tasks = sa.table(
        "tasks",
        sa.column("id", sa.Integer),
        sa.column("agent", sa.String),
        sa.column("status", sa.String),
        sa.column("attempts", sa.Integer),
        sa.column("resume", sa.Boolean),
    )
    attempts = sa.table(
        "attempts",
        sa.column("task_id", sa.Integer),
        sa.column("number", sa.Integer),
        sa.column("outcome", sa.String),
    )
    previous = (
        sa.select(attempts.c.task_id)
        .where(
            attempts.c.task_id == tasks.c.id,
            attempts.c.number == tasks.c.attempts - 1,
            attempts.c.outcome.in_(["lost", "interrupted"]),
        )
        .exists()
    )
    op.execute(
        tasks.update()
        .where(tasks.c.agent.is_not(None), tasks.c.status == "sent", previous)
        .values(resume=sa.true())
    )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("resume")
