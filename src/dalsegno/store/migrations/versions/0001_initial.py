"""Executions, graphs, tasks, dependencies, attempts and events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("workflow", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float()),
        sa.Column("ended_at", sa.Float()),
        sa.Column("lease_host", sa.String(255)),
        sa.Column("lease_pid", sa.Integer()),
        sa.Column("lease_proc_start", sa.String(64)),
        sa.Column("lease_expires_at", sa.Float()),
        sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
    )
    op.create_index("ix_executions_status", "executions", ["status"])
    op.create_index("ix_executions_created_at", "executions", ["created_at"])
    op.create_table(
        "graphs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name="fk_graphs_execution_id_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_graphs"),
        sa.UniqueConstraint("execution_id", "name", name="uq_graphs_execution_id_name"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("graph_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("agent", sa.String(255)),
        sa.Column("kwargs", sa.Text(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("retry_interval", sa.Float(), nullable=False),
        sa.Column("timeout", sa.Float()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text()),
        sa.Column("result", sa.Text()),
        sa.Column("next_run_at", sa.Float()),
        sa.Column("started_at", sa.Float()),
        sa.Column("ended_at", sa.Float()),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name="fk_tasks_execution_id_executions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["graphs.id"], name="fk_tasks_graph_id_graphs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.UniqueConstraint("graph_id", "key", name="uq_tasks_graph_id_key"),
    )
    op.create_index("ix_tasks_execution_id", "tasks", ["execution_id"])
    op.create_table(
        "dependencies",
        sa.Column("graph_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("depends_on_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["graph_id"],
            ["graphs.id"],
            name="fk_dependencies_graph_id_graphs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_dependencies_task_id_tasks", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["tasks.id"],
            name="fk_dependencies_depends_on_id_tasks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "depends_on_id", name="pk_dependencies"),
    )
    op.create_index("ix_dependencies_graph_id", "dependencies", ["graph_id"])
    op.create_index("ix_dependencies_depends_on_id", "dependencies", ["depends_on_id"])
    op.create_table(
        "attempts",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float()),
        sa.Column("error", sa.Text()),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_attempts_task_id_tasks", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "number", name="pk_attempts"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("graph", sa.String(255)),
        sa.Column("task_key", sa.String(255)),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name="fk_events_execution_id_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_execution_id_id", "events", ["execution_id", "id"])


def downgrade() -> None:
    for table in ("events", "attempts", "dependencies", "tasks", "graphs", "executions"):
        op.drop_table(table)
