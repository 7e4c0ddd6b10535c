"""Agent claims in task order without a sort: `ix_tasks_agent_status_id`.

A claim takes the queue's oldest sent tasks (`ORDER BY tasks.id LIMIT n`). With an index
on `(agent, status)` only, PostgreSQL either sorts every queued task of the queue or walks
the primary key past every task already done, so a claim cost grew with the run (2,900
rows removed by its filter for one task, near the end of a run of 3,000). On
`(agent, status, id)` it reads the first `n` entries and stops. It replaces the index on
`(agent, status)`, which it covers. (SQLite's index already ends with the rowid, the id.)

`ix_tasks_execution_id` goes too: `ix_tasks_execution_id_holder` (0007) begins with the
same column and serves every read it served, and a task's every write (an agent's claim,
the owner's end of it) updated both.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_agent_status_id", "tasks", ["agent", "status", "id"])
    op.drop_index("ix_tasks_agent_status", table_name="tasks")
    op.drop_index("ix_tasks_execution_id", table_name="tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_execution_id", "tasks", ["execution_id"])
    op.create_index("ix_tasks_agent_status", "tasks", ["agent", "status"])
    op.drop_index("ix_tasks_agent_status_id", table_name="tasks")
