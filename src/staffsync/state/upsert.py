"""Insert-or-update rows with each dialect's ON CONFLICT clause."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from collections.abc import Sequence

    import sqlalchemy as sa

__all__ = ["upsert"]

# SQLite allows 32766 bound variables per statement; stay well below with wide rows.
CHUNK_ROWS = 500


def upsert(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key_columns: Sequence[str],
) -> None:
    """Insert ``rows`` into ``table``, updating the other given columns on a key conflict.

    SQLAlchemy has no portable upsert, so this picks PostgreSQL's or SQLite's
    ``INSERT … ON CONFLICT DO UPDATE``; both need a unique index on ``key_columns``.
    """
    if not rows:
        return
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert

    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        statement = insert(table).values(list(chunk))
        updated = {name: statement.excluded[name] for name in chunk[0] if name not in key_columns}
        if updated:
            statement = statement.on_conflict_do_update(index_elements=key_columns, set_=updated)
        else:
            statement = statement.on_conflict_do_nothing(index_elements=key_columns)
        connection.execute(statement)
