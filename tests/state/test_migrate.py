"""Tests for the in-process Alembic migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from staffsync.settings import StateSettings
from staffsync.state.database import create_state_engine
from staffsync.state.migrate import (
    SchemaOutdated,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

STARTERS = 4


@pytest.fixture
def engine(state_url: str) -> Iterator[sa.Engine]:
    engine = create_state_engine(StateSettings(url=state_url))
    yield engine
    engine.dispose()


class TestUpgrade:
    """Migrations bring an empty database to the newest revision, once."""

    def test_empty_database(self, engine: sa.Engine) -> None:
        """An empty database is upgraded to the head revision."""
        before, after = upgrade(engine)

        assert before is None
        assert after == head_revision()
        assert current_revision(engine) == head_revision()

    def test_concurrent_starts(self, state_url: str) -> None:
        """Processes starting at once on an empty database all come up, migrated once."""
        barrier = threading.Barrier(STARTERS)
        results: list[tuple[str | None, str]] = []
        errors: list[BaseException] = []

        def start() -> None:
            engine = create_state_engine(StateSettings(url=state_url))
            try:
                barrier.wait(10)
                results.append(upgrade(engine))
            except BaseException as exc:
                errors.append(exc)
            finally:
                engine.dispose()

        threads = [threading.Thread(target=start) for _ in range(STARTERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        engine = create_state_engine(StateSettings(url=state_url))
        try:
            with engine.connect() as connection:
                versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
                rows = [row[0] for row in versions]
        finally:
            engine.dispose()
        assert errors == []
        assert results.count((None, head_revision())) == 1
        assert results.count((head_revision(), head_revision())) == STARTERS - 1
        assert rows == [head_revision()]


class TestEnsureSchema:
    """A run checks the schema before it touches the database."""

    def test_dry_run_sets_up_empty_database(self, engine: sa.Engine) -> None:
        """Even a dry run creates the tables of a database never migrated."""
        ensure_schema(engine, allow_upgrade=False)

        assert current_revision(engine) == head_revision()

    def test_dry_run_refuses_old_schema(self, engine: sa.Engine) -> None:
        """A dry run on an older schema raises SchemaOutdated and changes nothing."""
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))

        with pytest.raises(SchemaOutdated, match=r"run 'staffsync db upgrade' first"):
            ensure_schema(engine, allow_upgrade=False)
        assert current_revision(engine) == "0000"
