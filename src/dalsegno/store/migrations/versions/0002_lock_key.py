"""Lock keys: an execution that names a key waits in `queued` while another holds it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("lock_key", sa.String(255)))
        batch.create_index("ix_executions_lock_key", ["lock_key"])


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_lock_key")
        batch.drop_column("lock_key")
