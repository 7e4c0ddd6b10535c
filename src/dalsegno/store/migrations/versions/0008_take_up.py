"""The kind of take-up an execution waits for: `take_up` (docs/design.md, "The lifecycle").

A resume handed to a manager leaves the execution `pending` (or `queued` behind its lock
key); the manager that claims it reads here whether it starts a new run or resumes, instead
of guessing it from whether graphs are stored. Executions pending before this migration
are read as they were: a new start unless they have graphs.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("take_up", sa.String(20)))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("take_up")
