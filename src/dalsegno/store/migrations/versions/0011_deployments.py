"""Blueprints, deployments and node instances (issue 16; docs/lifecycle.md).

`blueprints` keeps a blueprint as uploaded and as parsed; `deployments` a blueprint with
its resolved inputs; `node_instances` each instance's state, runtime properties and links.
An execution may run against a deployment (`executions.deployment_id`), and a lifecycle
task names the instance it acts on (`tasks.instance`, JSON). Existing executions and tasks
have none.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blueprints",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blueprints"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("blueprint_id", sa.String(255), nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.ForeignKeyConstraint(
            ["blueprint_id"],
            ["blueprints.id"],
            name="fk_deployments_blueprint_id_blueprints",
        ),
    )
    op.create_index("ix_deployments_blueprint_id", "deployments", ["blueprint_id"])
    op.create_table(
        "node_instances",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("deployment_id", sa.String(255), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("runtime_properties", sa.Text, nullable=False),
        sa.Column("links", sa.Text, nullable=False),
        sa.Column("host_id", sa.String(255)),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_node_instances"),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_node_instances_deployment_id_deployments",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_node_instances_deployment_id", "node_instances", ["deployment_id"])
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("deployment_id", sa.String(255)))
        batch.create_index("ix_executions_deployment_id", ["deployment_id"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("instance", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("instance")
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_deployment_id")
        batch.drop_column("deployment_id")
    op.drop_index("ix_node_instances_deployment_id", "node_instances")
    op.drop_table("node_instances")
    op.drop_index("ix_deployments_blueprint_id", "deployments")
    op.drop_table("deployments")
    op.drop_table("blueprints")
