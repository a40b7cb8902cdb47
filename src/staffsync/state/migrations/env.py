"""Alembic environment for the state database.

staffsync runs migrations in-process (``staffsync db upgrade`` and at daemon start) and
passes its own connection in ``config.attributes["connection"]``. Logging is left alone:
the usual ``fileConfig`` call would replace staffsync's log configuration.
"""

from __future__ import annotations

from alembic import context

from staffsync.state.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    msg = "run migrations through 'staffsync db upgrade', which supplies the database connection"
    raise RuntimeError(msg)

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
