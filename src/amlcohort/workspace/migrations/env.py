"""Alembic environment: run migrations on the connection the workspace hands over."""

from __future__ import annotations

from alembic import context

from amlcohort.workspace.db import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the workspace always passes its connection
    raise RuntimeError("run migrations through amlcohort.workspace.migrate.upgrade(engine)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
