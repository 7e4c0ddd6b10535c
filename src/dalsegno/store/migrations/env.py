"""Alembic environment: migrations run on the connection dalsegno hands over."""

from __future__ import annotations

from alembic import context

from dalsegno.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    msg = "dalsegno migrations run through dalsegno.store.migrate.upgrade(store)"
    raise RuntimeError(msg)

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
