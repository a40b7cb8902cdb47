"""Engines for the state database: SQLite (the default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event

if TYPE_CHECKING:
    from staffsync.settings import StateSettings

__all__ = [
    "StateDatabaseError",
    "create_state_engine",
    "is_sqlite",
    "sqlite_path",
    "state_url",
    "unreachable_message",
]

SQLITE_BUSY_TIMEOUT_SECONDS = 30
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
"""How long a PostgreSQL connection may take, unless the URL sets ``connect_timeout``.

Without a limit, a server or proxy that accepts the TCP connection but never responds
would hang the run and ``/readyz`` for good.
"""


class StateDatabaseError(Exception):
    """The state database URL is invalid or the database cannot be used."""


def state_url(settings: StateSettings) -> sa.URL:
    """Return the configured URL with ``[state] password`` filled in when the URL has none."""
    try:
        url = sa.make_url(settings.url)
    except sa.exc.ArgumentError:
        msg = (
            f"[state] url {settings.url!r} is not a database URL; use e.g."
            " 'sqlite:///staffsync.db' or 'postgresql+psycopg://user@host/db'"
        )
        raise StateDatabaseError(msg) from None

    if url.get_backend_name() not in ("sqlite", "postgresql"):
        msg = (
            f"[state] url uses {url.get_backend_name()!r}; staffsync supports sqlite and postgresql"
        )
        raise StateDatabaseError(msg)
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if settings.password is not None and url.get_backend_name() == "sqlite":
        msg = "[state] password is for PostgreSQL; a SQLite URL takes none, so remove it"
        raise StateDatabaseError(msg)
    if settings.password is not None and url.password is None:
        url = url.set(password=settings.password.get_secret_value())
    return url


def unreachable_message(exc: sa.exc.DBAPIError) -> str:
    """Describe a failure to use the state database, from the driver's own first line."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return (
        f"the state database cannot be used: {reason}; check [state] url, that the server"
        " runs and that the database exists (staffsync creates the tables, not the database)"
    )


def is_sqlite(url: sa.URL) -> bool:
    """Tell whether ``url`` names a SQLite database."""
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: sa.URL) -> Path:
    """Return the file of a SQLite URL; in-memory databases are refused."""
    if not url.database or url.database == ":memory:":
        msg = "[state] url must name a SQLite file; an in-memory database would forget every run"
        raise StateDatabaseError(msg)
    return Path(url.database)


def create_state_engine(settings: StateSettings) -> sa.Engine:
    """Create the engine for the state database, with SQLite tuned for one daemon.

    PostgreSQL connections time out after ``POSTGRES_CONNECT_TIMEOUT_SECONDS`` unless
    the URL sets ``connect_timeout`` itself.

    SQLite gets WAL journaling, a busy timeout, foreign keys, and real transactions:
    Python 3.11's sqlite3 module does not begin a transaction before SELECT statements, so
    autocommit is turned off in the driver and SQLAlchemy emits BEGIN itself.
    """
    url = state_url(settings)
    if not is_sqlite(url):
        connect_args = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
        engine = sa.create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args
        )

        @event.listens_for(engine, "connect")
        def _configure_postgresql(dbapi_connection: Any, _record: Any) -> None:
            # The planner joins a few thousand changed rows with a large users table.
            # With the default costs (tuned for spinning disks) PostgreSQL scans the whole
            # table instead of probing its indexes, and JIT-compiles those scans, which
            # takes longer than running them.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET jit = off")
                cursor.execute("SET random_page_cost = 1.1")
            dbapi_connection.commit()

        return engine

    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        # Planning stages a whole export in temporary tables; keep them on disk.
        cursor.execute("PRAGMA temp_store=FILE")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine
