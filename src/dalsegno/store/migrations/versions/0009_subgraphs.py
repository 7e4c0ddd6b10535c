"""Subgraphs and failure policies (docs/design.md, "Subgraphs"): `subgraphs`,
`subgraph_edges`, and the task's `subgraph` and `on_failure`.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("subgraph", sa.String(255)))
        batch.add_column(sa.Column("on_failure", sa.String(10)))
    op.create_table(
        "subgraphs",
        sa.Column("graph_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("parent", sa.String(255)),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("retry_interval", sa.Float, nullable=False),
        sa.Column("on_failure", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_run_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["graphs.id"], name="fk_subgraphs_graph_id_graphs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("graph_id", "key", name="pk_subgraphs"),
    )
    op.create_table(
        "subgraph_edges",
        sa.Column("graph_id", sa.Integer, nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("depends_on", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["graph_id"],
            ["graphs.id"],
            name="fk_subgraph_edges_graph_id_graphs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("graph_id", "node", "depends_on", name="pk_subgraph_edges"),
    )


def downgrade() -> None:
    op.drop_table("subgraph_edges")
    op.drop_table("subgraphs")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("on_failure")
        batch.drop_column("subgraph")
