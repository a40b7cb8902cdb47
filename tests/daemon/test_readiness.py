"""``/readyz`` and the daemon's behaviour while its PostgreSQL state database is unreachable.

The test closes the daemon's database to new connections and ends its sessions, as
when the server restarts or fails over, and opens it again later.
"""

from __future__ import annotations

import signal
import uuid
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from tests.daemon.processes import (
    MetricSamples,
    daemon_config,
    free_port,
    wait_until,
    write_export,
)
from tests.sync.harness import person

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.daemon.processes import EmulatorProcess, StaffsyncProcess

WAIT_SECONDS = 30.0


class Database:
    """A throw-away PostgreSQL database that the test can close and open again."""

    def __init__(self, server: sa.URL) -> None:
        self.name = f"staffsync_ready_{uuid.uuid4().hex[:12]}"
        self.url = server.set(database=self.name)
        self.admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        self._execute(f'CREATE DATABASE "{self.name}"')

    def _execute(self, statement: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(sa.text(statement))

    def close(self) -> None:
        """Refuse new connections and end every open session."""
        self._execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
        self._execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"
        )

    def open(self) -> None:
        self._execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()


@pytest.fixture
def database(postgres_server: sa.URL) -> Iterator[Database]:
    database = Database(postgres_server)
    try:
        yield database
    finally:
        database.drop()


@pytest.mark.slow
class TestStateDatabaseOutage:
    """The daemon reports not ready during an outage, keeps living, and recovers."""

    def test_readyz_follows_database(
        self,
        tmp_path: Path,
        database: Database,
        emulator_process: EmulatorProcess,
        spawn: Callable[..., StaffsyncProcess],
    ) -> None:
        """/readyz turns 503 while the database is closed, /healthz stays 200, runs resume."""
        export = tmp_path / "export.csv"
        write_export(export, (person(n) for n in range(1, 11)))
        port = free_port()
        config = daemon_config(
            tmp_path / "staffsync.toml",
            emulator_url=emulator_process.url,
            state_url=database.url.render_as_string(hide_password=False),
            export=export,
            ops_port=port,
        )
        daemon = spawn("daemon", config, "run")
        daemon.wait_for_event("run_finished")
        wait_until(
            lambda: daemon.ops_get("/readyz", port).status_code == 200, WAIT_SECONDS, "ready"
        )

        database.close()
        wait_until(
            lambda: daemon.ops_get("/readyz", port).status_code == 503, WAIT_SECONDS, "not ready"
        )
        reason = daemon.ops_get("/readyz", port).text
        health = daemon.ops_get("/healthz", port)
        crash = daemon.wait_for_event("run_crashed", WAIT_SECONDS)
        failed_runs = MetricSamples(daemon.ops_get("/metrics", port).text).value(
            "staffsync_runs_total", mode="incremental", status="failed"
        )

        database.open()
        runs_before = len(daemon.events("run_finished"))
        wait_until(
            lambda: len(daemon.events("run_finished")) > runs_before, WAIT_SECONDS, "a new run"
        )
        ready_again = daemon.ops_get("/readyz", port)
        daemon.signal(signal.SIGTERM)
        code = daemon.wait()

        assert reason.startswith("not ready: state database check failed: OperationalError")
        assert health.status_code == 200
        assert crash["level"] == "error"
        assert crash["exception"][0]["exc_type"] == "OperationalError"
        frames = [frame for error in crash["exception"] for frame in error["frames"]]
        assert frames != []
        assert [frame for frame in frames if "locals" in frame] == []
        assert failed_runs >= 1
        assert daemon.events("run_finished")[-1]["status"] == "succeeded"
        assert ready_again.status_code == 200
        assert code == 0
