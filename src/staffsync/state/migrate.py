"""Alembic migrations of the state database, run in-process under a lock."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock

from staffsync.state.database import is_sqlite, sqlite_path
from staffsync.state.lock import advisory_key

if TYPE_CHECKING:
    from collections.abc import Iterator

    import sqlalchemy as sa

__all__ = ["SchemaOutdated", "current_revision", "ensure_schema", "head_revision", "upgrade"]

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constant that distinguishes staffsync's migration lock from other advisory locks.
MIGRATION_LOCK_CLASS = 0x57AF_5C01


class SchemaOutdated(Exception):
    """The state database is not at the schema this staffsync version needs."""


def _alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """Return the newest migration revision shipped with this version."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """Return the revision the database is at, or None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Hold a lock that makes concurrent upgrades (two replicas starting) take turns."""
    if is_sqlite(engine.url):
        lock_path = sqlite_path(engine.url).with_name(
            sqlite_path(engine.url).name + ".migrate.lock"
        )
        with FileLock(lock_path), engine.connect() as connection:
            yield connection
        return

    with engine.connect() as connection:
        key = advisory_key(connection, MIGRATION_LOCK_CLASS)
        key.call(connection, "pg_advisory_lock")
        connection.commit()
        try:
            yield connection
        finally:
            connection.rollback()
            key.call(connection, "pg_advisory_unlock")
            connection.commit()


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Upgrade the database to the newest revision; return (revision before, revision after)."""
    with _migration_lock(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(_alembic_config(connection), "head")
        connection.commit()
        after = MigrationContext.configure(connection).get_current_revision()

    if before != after:
        log.info("state_db_migrated", revision_before=before, revision_after=after)
    return before, after or head_revision()


def ensure_schema(engine: sa.Engine, *, allow_upgrade: bool) -> None:
    """Make sure the schema is current before a run uses the database.

    A database never migrated is always set up, because that only creates tables. An
    older schema is upgraded when ``allow_upgrade`` is true; otherwise (dry runs, which
    must not change the database) it raises :class:`SchemaOutdated`.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None or allow_upgrade:
        upgrade(engine)
        return

    msg = (
        f"the state database is at schema revision {current!r} but this staffsync needs"
        f" {head!r}; run 'staffsync db upgrade' first"
    )
    raise SchemaOutdated(msg)
