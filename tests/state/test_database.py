"""Tests for state database engines against a PostgreSQL port that never responds."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from staffsync.ops import make_readiness
from staffsync.settings import StateSettings
from staffsync.state import database
from staffsync.state.database import create_state_engine

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections and never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    listener.close()
    for connection in accepted:
        connection.close()


@pytest.mark.timeout(60)
class TestPostgresConnectTimeout:
    """A PostgreSQL server that never responds fails a connection instead of hanging it."""

    def test_default_timeout(self, silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without connect_timeout in the URL, the default limit ends the attempt."""
        monkeypatch.setattr(database, "POSTGRES_CONNECT_TIMEOUT_SECONDS", 2)
        url = f"postgresql+psycopg://staffsync@127.0.0.1:{silent_port}/staffsync"
        engine = create_state_engine(StateSettings(url=url))

        with pytest.raises(sa.exc.OperationalError, match="timeout"):
            engine.connect()
        engine.dispose()

    def test_url_timeout_kept(self, silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
        """A connect_timeout in the URL replaces the default."""
        monkeypatch.setattr(database, "POSTGRES_CONNECT_TIMEOUT_SECONDS", 3600)
        url = f"postgresql+psycopg://staffsync@127.0.0.1:{silent_port}/db?connect_timeout=2"
        engine = create_state_engine(StateSettings(url=url))

        with pytest.raises(sa.exc.OperationalError, match="timeout"):
            engine.connect()
        engine.dispose()

    def test_readiness_not_ready(self, silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
        """The daemon's readiness check reports the timeout as not ready."""
        monkeypatch.setattr(database, "POSTGRES_CONNECT_TIMEOUT_SECONDS", 2)
        url = f"postgresql+psycopg://staffsync@127.0.0.1:{silent_port}/staffsync"
        engine = create_state_engine(StateSettings(url=url))

        def check_db() -> None:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

        readiness = make_readiness(check_db, lambda: (None, None), max_failed_age_s=60)
        ready, reason = readiness()
        engine.dispose()

        assert ready is False
        assert reason.startswith("state database check failed: OperationalError")
        assert "timeout" in reason


class TestStateUrl:
    def test_password_with_sqlite_is_refused(self, tmp_path: Path) -> None:
        """A password given for a SQLite file is reported as a configuration mistake."""
        url = f"sqlite:///{tmp_path / 's.db'}"
        settings = StateSettings(url=url, password="pw")  # type: ignore[arg-type]

        with pytest.raises(database.StateDatabaseError, match=r"\[state\] password is for"):
            database.state_url(settings)
