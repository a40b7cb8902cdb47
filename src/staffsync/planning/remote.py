"""Read every Staffbase user into a temporary baseline table for a full resync.

A full resync compares the export with the users Staffbase really has rather than with
the ones the state database recorded, so that hand edits in the Studio (a changed field, a user
deactivated or deleted by hand) are found and repaired. The ``remote`` table has the
columns of the state's ``users`` table, so the planner treats it the same way; users
without an externalID (candidates for adoption by e-mail, or orphans) sit in
``unkeyed``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from staffsync.staffbase.model import read_user_fields
from staffsync.state import schema
from staffsync.state.upsert import upsert

if TYPE_CHECKING:
    from collections.abc import Callable

    from staffsync.staffbase.client import StaffbaseClient

__all__ = ["RemoteTables", "load_remote_users", "rebuild_state"]

BATCH = 2000
ACTIVE_STATUSES = ("pending", "activated")


@dataclass
class RemoteTables:
    """The temporary tables holding one read of the tenant."""

    metadata: sa.MetaData
    remote: sa.Table
    unkeyed: sa.Table
    users_read: int = 0
    fingerprint: str = ""

    def drop(self, connection: sa.Connection) -> None:
        """Drop the tables."""
        self.metadata.drop_all(connection, checkfirst=True)


def _remote_tables() -> RemoteTables:
    metadata = sa.MetaData()
    remote = sa.Table(
        "remote",
        metadata,
        *(column._copy() for column in schema.users.columns),
        sa.Column("manager_staffbase_id", sa.Text, nullable=True),
        sa.Column("adopt", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("managed", sa.Boolean, nullable=False, server_default=sa.false()),
        prefixes=["TEMPORARY"],
    )
    unkeyed = sa.Table(
        "unkeyed",
        metadata,
        sa.Column("staffbase_id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("email_key", sa.Text, nullable=True, index=True),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("manager_staffbase_id", sa.Text, nullable=True),
        sa.Column("adopted_by", sa.Text, nullable=True),
        prefixes=["TEMPORARY"],
    )
    return RemoteTables(metadata, remote, unkeyed)


def load_remote_users(
    connection: sa.Connection,
    client: StaffbaseClient,
    *,
    now: Any,
    progress: Callable[[int], None] | None = None,
) -> RemoteTables:
    """Read every user of every status from Staffbase into temporary tables.

    A user with an externalID becomes a ``remote`` row keyed by it. Its ``hr_active``
    is true when Staffbase shows it pending or activated, and ``managed`` when the state
    database has a row for it: only managed users that HR no longer lists are leavers, the
    others are orphans. ``fingerprint`` hashes what was read, so that approving a held
    resync plan can tell whether the tenant changed since.
    """
    tables = _remote_tables()
    tables.metadata.drop_all(connection, checkfirst=True)
    tables.metadata.create_all(connection)

    keyed: list[dict[str, Any]] = []
    unkeyed: list[dict[str, Any]] = []
    digest = hashlib.blake2b(digest_size=16)
    for user in client.iter_users():
        tables.users_read += 1
        digest.update(json.dumps(user, sort_keys=True, default=str).encode())
        fields = read_user_fields(user)
        manager = fields.pop("manager", None)
        email = fields.get("email")
        email_key = email.casefold() if email else None
        external_id = user.get("externalID") or None
        if external_id is None:
            unkeyed.append(
                {
                    "staffbase_id": user["id"],
                    "status": user.get("status") or "pending",
                    "email_key": email_key,
                    "fields": fields,
                    "manager_staffbase_id": manager,
                }
            )
        else:
            keyed.append(
                {
                    "key": external_id,
                    "staffbase_id": user["id"],
                    "status": user.get("status") or "pending",
                    "hr_active": False,
                    "fields": fields,
                    "email_key": email_key,
                    "manager_staffbase_id": manager,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if len(keyed) >= BATCH:
            _insert_new(connection, tables.remote, keyed)
            keyed = []
        if len(unkeyed) >= BATCH:
            _insert_new(connection, tables.unkeyed, unkeyed)
            unkeyed = []
        if progress is not None and tables.users_read % BATCH == 0:
            progress(tables.users_read)

    tables.fingerprint = digest.hexdigest()
    _insert_new(connection, tables.remote, keyed)
    _insert_new(connection, tables.unkeyed, unkeyed)
    _link_state(connection, tables)
    return tables


def _insert_new(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, skipping users read twice (a listing can repeat one)."""
    if not rows:
        return
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(insert(table).on_conflict_do_nothing(), rows)


def _link_state(connection: sa.Connection, tables: RemoteTables) -> None:
    """Resolve manager ids to keys and copy what only the state records (left_at, groups)."""
    remote, users = tables.remote, schema.users
    connection.execute(sa.text("CREATE INDEX remote_key ON remote (key)"))
    connection.execute(sa.text("CREATE INDEX remote_staffbase_id ON remote (staffbase_id)"))

    manager = remote.alias("manager")
    connection.execute(
        sa.update(remote).values(
            manager_key=sa.select(manager.c.key)
            .where(manager.c.staffbase_id == remote.c.manager_staffbase_id)
            .scalar_subquery()
        )
    )
    state = sa.select(users.c.key).where(users.c.key == remote.c.key)
    connection.execute(
        sa.update(remote).values(
            managed=sa.exists(state),
            hr_active=remote.c.status.in_(ACTIVE_STATUSES),
            left_at=sa.select(users.c.left_at).where(users.c.key == remote.c.key).scalar_subquery(),
            groups=sa.select(users.c.groups).where(users.c.key == remote.c.key).scalar_subquery(),
            match_value=sa.select(users.c.match_value)
            .where(users.c.key == remote.c.key)
            .scalar_subquery(),
        )
    )


def rebuild_state(connection: sa.Connection, tables: RemoteTables, staging: sa.Table) -> int:
    """Replace the state's users with what was read from Staffbase; return how many remain.

    Kept are the users staffsync managed that still exist, and users the export lists
    that already carried the HR key as externalID (adopted). Users deleted in the Studio
    are forgotten, so the plan's creates for them are recorded as new. Record hashes are
    cleared: the plan being applied stores the current ones.
    """
    users, remote = schema.users, tables.remote
    connection.execute(
        sa.delete(users).where(
            ~sa.exists().where(remote.c.key == users.c.key, sa.not_(remote.c.adopt))
        )
    )

    columns = [column.name for column in users.columns]
    kept = sa.select(*(remote.c[name] for name in columns)).where(
        sa.not_(remote.c.adopt),
        sa.or_(remote.c.managed, sa.exists().where(staging.c.key == remote.c.key)),
    )
    # Read a page at a time: the tenant may hold a million users.
    count = 0
    last: str | None = None
    while True:
        page = kept.order_by(remote.c.key).limit(BATCH)
        if last is not None:
            page = page.where(remote.c.key > last)
        rows = connection.execute(page).mappings().all()
        if not rows:
            return count
        upsert(connection, users, [{**row, "record_hash": None} for row in rows], ["key"])
        count += len(rows)
        last = rows[-1]["key"]
