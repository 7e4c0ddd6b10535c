"""A lifecycle task run on an agent: the instance changes its result reports.

`attempts.report_instances`: the runtime properties an agent's successful attempt set and
removed, per instance, as JSON (`dalsegno.engine.instances.changes_json`), kept with the
rest of its result until the owner applies them with the task's success.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("report_instances", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("report_instances")
