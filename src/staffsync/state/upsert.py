"""Insert-or-update rows with each dialect's ON CONFLICT clause."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from collections.abc import Sequence

    import sqlalchemy as sa

__all__ = ["upsert"]


def upsert(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key_columns: Sequence[str],
) -> None:
    """Insert ``rows`` into ``table``, updating the other given columns on a key conflict.

    SQLAlchemy has no portable upsert, so this picks PostgreSQL's or SQLite's
    ``INSERT … ON CONFLICT DO UPDATE``; both need a unique index on ``key_columns``.
    Every row must have the same columns. The rows are sent as one executemany of a
    single-row statement, which SQLAlchemy compiles once and caches, where a multi-row
    VALUES list would be compiled anew for every number of rows.
    """
    if not rows:
        return
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert

    statement = insert(table)
    updated = {name: statement.excluded[name] for name in rows[0] if name not in key_columns}
    if updated:
        statement = statement.on_conflict_do_update(index_elements=key_columns, set_=updated)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=key_columns)
    connection.execute(statement, list(rows))
