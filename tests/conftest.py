"""Fixtures shared by the whole suite: state databases on SQLite and PostgreSQL, and the
Staffbase emulator."""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from staffsync.emulator import EmulatorServer
from tests.postgres_gate import PostgresGate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(PostgresGate(), "staffsync-postgres-gate")


def _postgres_admin_url() -> str:
    return os.environ.get("STAFFSYNC_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[sa.URL]:
    """A throw-away database on the PostgreSQL server, dropped after the session.

    Skips when no server answers, except under CI (``CI=true``), where PostgreSQL tests
    must run and a missing server fails them.
    """
    admin_url = sa.make_url(_postgres_admin_url())
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        reason = (
            f"PostgreSQL is not reachable at {admin_url.render_as_string(hide_password=True)}"
            f" ({type(exc.orig).__name__}); set STAFFSYNC_TEST_POSTGRES_URL to a server"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the PostgreSQL tests")
        pytest.skip(reason)

    database = f"staffsync_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    try:
        yield admin_url.set(database=database)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: sa.URL) -> Iterator[str]:
    """A URL to an empty schema of its own in the session's PostgreSQL database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = postgres_server.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL to a new SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest) -> str:
    """A state-database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One Staffbase emulator on a free 127.0.0.1 port, shared by the whole session.

    It accepts the default demo credentials of ``EmulatorConfig``.
    """
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    """The session's emulator, reset to an empty tenant without faults or statistics.

    The reset runs on the server's event loop, with the same effect as
    ``POST /__emulator/reset`` but without opening a connection.
    """
    emulator_server.call(emulator_server.emulator.reset)
    return emulator_server
