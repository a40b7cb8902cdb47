"""The run lock: one run at a time per state database, across processes and hosts.

SQLite uses an OS file lock beside the database file; PostgreSQL a session advisory lock
held on the run's own connection. Both are released by the operating system or the
server when the holder dies, so a killed run never blocks the next one.

A PostgreSQL state database is one schema (the first one on the search path), so the
advisory lock is keyed by that schema: deployments that keep their state in different
schemas of one database do not wait for each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
import structlog
from filelock import FileLock, Timeout

from staffsync.state.database import is_sqlite, sqlite_path

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["AdvisoryKey", "RunLock", "RunLockHeld", "acquire_run_lock", "advisory_key"]

log = structlog.get_logger(__name__)

# Arbitrary constant that distinguishes staffsync's run lock from other advisory locks.
RUN_LOCK_CLASS = 0x57AF_5C02
POLL_SECONDS = 0.5

AdvisoryFunction = Literal["pg_advisory_lock", "pg_try_advisory_lock", "pg_advisory_unlock"]


class RunLockHeld(Exception):
    """Another run holds the run lock and the caller chose not to wait (longer)."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(f"another staffsync run holds the run lock: {holder}")


@dataclass(frozen=True)
class RunLock:
    """A held run lock; ``connection`` is the PostgreSQL connection that holds it, if any."""

    holder: str
    connection: sa.Connection | None

    def check(self) -> None:
        """Raise if the lock may have been lost, such as when its PostgreSQL session dropped."""
        if self.connection is None:
            return
        self.connection.execute(sa.text("SELECT 1"))


@dataclass(frozen=True)
class AdvisoryKey:
    """The two 32-bit keys of a PostgreSQL advisory lock: its purpose and the schema."""

    purpose: int
    schema: int

    def call(self, connection: sa.Connection, function: AdvisoryFunction) -> bool:
        """Call an advisory lock function with this key and return its result as a bool."""
        statement = f"SELECT {function}(CAST(:purpose AS integer), CAST(:schema AS integer))"
        params = {"purpose": self.purpose, "schema": self.schema}
        return bool(connection.execute(sa.text(statement), params).scalar())


def advisory_key(connection: sa.Connection, purpose: int) -> AdvisoryKey:
    """Return the advisory lock key of ``purpose`` for the connection's current schema."""
    schema = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
    # CRC-32 gives the same number in every process and version, unlike Python's hash().
    # The top bit is cleared, so the key reads the same as an int4 and as pg_locks' oid.
    return AdvisoryKey(purpose, zlib.crc32(str(schema).encode("utf-8")) & 0x7FFF_FFFF)


def describe_holder(run_id: str) -> str:
    """Return a short text naming this process, for the other side's log line."""
    return f"run {run_id} (pid {os.getpid()} on {socket.gethostname()})"


@contextlib.contextmanager
def acquire_run_lock(
    engine: sa.Engine, *, run_id: str, wait_seconds: float | None
) -> Iterator[RunLock]:
    """Hold the run lock for the duration of the ``with`` block.

    Args:
        engine: the state database engine.
        run_id: the id of the run asking, stored so a waiting process can name it.
        wait_seconds: how long to wait for another run to finish: 0 to give up at once,
            None to wait as long as it takes.

    Raises:
        RunLockHeld: the lock was still held when ``wait_seconds`` ran out; the message
            names the run that holds it.
    """
    holder = describe_holder(run_id)
    if is_sqlite(engine.url):
        with _file_lock(sqlite_path(engine.url), holder, wait_seconds):
            yield RunLock(holder=holder, connection=None)
        return

    with _advisory_lock(engine, holder, wait_seconds) as connection:
        yield RunLock(holder=holder, connection=connection)


@contextlib.contextmanager
def _file_lock(database: Path, holder: str, wait_seconds: float | None) -> Iterator[None]:
    lock_path = database.with_name(database.name + ".lock")
    info_path = database.with_name(database.name + ".lock.json")
    lock = FileLock(lock_path, timeout=-1 if wait_seconds is None else wait_seconds)
    try:
        lock.acquire()
    except Timeout:
        raise RunLockHeld(_read_holder(info_path)) from None

    try:
        info = {"holder": holder, "since": datetime.now(UTC).isoformat()}
        info_path.write_text(json.dumps(info), encoding="utf-8")
        yield
    finally:
        with contextlib.suppress(OSError):
            info_path.unlink()
        lock.release()


def _read_holder(info_path: Path) -> str:
    try:
        info: dict[str, Any] = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "a process that did not record its name"
    return f"{info.get('holder')} since {info.get('since')}"


@contextlib.contextmanager
def _advisory_lock(
    engine: sa.Engine, holder: str, wait_seconds: float | None
) -> Iterator[sa.Connection]:
    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
    connection = engine.connect()
    key: AdvisoryKey | None = None
    try:
        # The application name lets a waiting process name the holder from pg_stat_activity.
        connection.execute(
            sa.text("SELECT set_config('application_name', :name, false)"),
            {"name": f"staffsync {holder}"[:63]},
        )
        key = advisory_key(connection, RUN_LOCK_CLASS)
        while not key.call(connection, "pg_try_advisory_lock"):
            if deadline is not None and time.monotonic() >= deadline:
                raise RunLockHeld(_advisory_holder(connection, key))
            connection.commit()
            time.sleep(POLL_SECONDS if deadline is None else min(POLL_SECONDS, wait_seconds or 0))
        connection.commit()

        yield connection
    finally:
        with contextlib.suppress(sa.exc.DBAPIError):
            connection.rollback()
            if key is not None:
                key.call(connection, "pg_advisory_unlock")
            connection.commit()
        connection.close()


def _advisory_holder(connection: sa.Connection, key: AdvisoryKey) -> str:
    # pg_locks lists the advisory locks of every database on the server, so the query
    # keeps to this one. The two-key form stores its keys in classid and objid.
    row = connection.execute(
        sa.text(
            "SELECT a.application_name, a.client_addr, a.backend_start"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid::bigint = :purpose AND l.objid::bigint = :schema"
        ),
        {"purpose": key.purpose, "schema": key.schema},
    ).first()
    connection.rollback()
    if row is None:
        return "a session that has just released it"
    return (
        f"{row.application_name or 'an unnamed session'} from {row.client_addr or 'local socket'}"
    )
