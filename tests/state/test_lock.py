"""Tests for the run lock on real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import os
import threading
import uuid
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from staffsync.settings import StateSettings
from staffsync.state.database import create_state_engine
from staffsync.state.lock import RunLockHeld, acquire_run_lock

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def engines(state_url: str) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two engines on one state database, as two processes would have."""
    first = create_state_engine(StateSettings(url=state_url))
    second = create_state_engine(StateSettings(url=state_url))
    yield first, second
    first.dispose()
    second.dispose()


class TestRunLock:
    """One run holds the lock; another skips or waits."""

    def test_second_run_skips(self, engines: tuple[sa.Engine, sa.Engine]) -> None:
        """A run that may not wait raises RunLockHeld naming the holder's run and pid."""
        first, second = engines

        with (
            acquire_run_lock(first, run_id="r-first", wait_seconds=None),
            pytest.raises(RunLockHeld) as raised,
            acquire_run_lock(second, run_id="r-second", wait_seconds=0),
        ):
            pytest.fail("the second run got the lock")

        assert "run r-first " in raised.value.holder
        assert f"(pid {os.getpid()} on " in raised.value.holder

    def test_released_after_block(self, engines: tuple[sa.Engine, sa.Engine]) -> None:
        """Once the holder's block ends, the next run gets the lock at once."""
        first, second = engines
        with acquire_run_lock(first, run_id="r-first", wait_seconds=0):
            pass

        with acquire_run_lock(second, run_id="r-second", wait_seconds=0) as lock:
            holder = lock.holder

        assert holder.startswith("run r-second ")

    def test_released_after_error(self, engines: tuple[sa.Engine, sa.Engine]) -> None:
        """A run that raises inside the block still releases the lock."""
        first, second = engines
        with pytest.raises(RuntimeError), acquire_run_lock(first, run_id="r-1", wait_seconds=0):
            raise RuntimeError("run failed")

        with acquire_run_lock(second, run_id="r-2", wait_seconds=0) as lock:
            holder = lock.holder

        assert holder.startswith("run r-2 ")

    def test_waiting_run_gets_lock(self, engines: tuple[sa.Engine, sa.Engine]) -> None:
        """A run that may wait gets the lock once the holder releases it."""
        first, second = engines
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with acquire_run_lock(first, run_id="r-first", wait_seconds=0):
                holding.set()
                release.wait(10)

        holder_thread = threading.Thread(target=hold)
        holder_thread.start()
        assert holding.wait(10)
        threading.Timer(0.3, release.set).start()
        try:
            with acquire_run_lock(second, run_id="r-second", wait_seconds=30) as lock:
                got = lock.holder
        finally:
            release.set()
            holder_thread.join(10)

        assert got.startswith("run r-second ")


@pytest.mark.postgres
class TestAdvisoryLockScope:
    """The PostgreSQL lock belongs to one schema of one database."""

    def test_other_schema_not_blocked(self, postgres_url: str, postgres_server: sa.URL) -> None:
        """Runs on state in two schemas of one database do not wait for each other."""
        other_schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{other_schema}"'))
        other_url = postgres_server.update_query_dict({"options": f"-csearch_path={other_schema}"})
        first = create_state_engine(StateSettings(url=postgres_url))
        second = create_state_engine(
            StateSettings(url=other_url.render_as_string(hide_password=False))
        )
        try:
            with (
                acquire_run_lock(first, run_id="r-first", wait_seconds=0),
                acquire_run_lock(second, run_id="r-second", wait_seconds=0) as lock,
            ):
                holder = lock.holder
        finally:
            first.dispose()
            second.dispose()
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{other_schema}" CASCADE'))
            admin.dispose()

        assert holder.startswith("run r-second ")

    def test_holder_named_from_own_database(
        self, postgres_url: str, postgres_server: sa.URL
    ) -> None:
        """A run of another database with the same schema name is never named as holder."""
        schema = sa.make_url(postgres_url).query["options"].split("=", 1)[1]
        other_database = f"staffsync_test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{other_database}"'))
        other_admin_url = postgres_server.set(database=other_database)
        other_admin = sa.create_engine(other_admin_url, isolation_level="AUTOCOMMIT")
        with other_admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        other_url = other_admin_url.update_query_dict({"options": f"-csearch_path={schema}"})
        elsewhere = create_state_engine(
            StateSettings(url=other_url.render_as_string(hide_password=False))
        )
        first = create_state_engine(StateSettings(url=postgres_url))
        second = create_state_engine(StateSettings(url=postgres_url))
        try:
            with (
                acquire_run_lock(elsewhere, run_id="r-elsewhere", wait_seconds=0),
                acquire_run_lock(first, run_id="r-here", wait_seconds=0),
                pytest.raises(RunLockHeld) as raised,
                acquire_run_lock(second, run_id="r-waiting", wait_seconds=0),
            ):
                pytest.fail("the second run got the lock")
        finally:
            for engine in (elsewhere, first, second, other_admin):
                engine.dispose()
            with admin.connect() as connection:
                connection.execute(
                    sa.text(f'DROP DATABASE IF EXISTS "{other_database}" WITH (FORCE)')
                )
            admin.dispose()

        assert "run r-here " in raised.value.holder
        assert "r-elsewhere" not in raised.value.holder
