"""The Alembic migrations against the table definitions the code queries."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from staffsync.settings import StateSettings
from staffsync.state.database import create_state_engine
from staffsync.state.migrate import current_revision, ensure_schema, head_revision, upgrade
from staffsync.state.schema import metadata


class TestMigrations:
    def test_upgrade_creates_head_schema(self, state_url: str) -> None:
        """An empty database upgraded to head matches the table definitions exactly."""
        engine = create_state_engine(StateSettings(url=state_url))

        before, after = upgrade(engine)

        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
        engine.dispose()
        assert before is None
        assert after == head_revision()
        assert differences == []

    def test_upgrade_twice_changes_nothing(self, state_url: str) -> None:
        """Upgrading a database already at head keeps its revision."""
        engine = create_state_engine(StateSettings(url=state_url))
        upgrade(engine)

        again = upgrade(engine)

        assert again == (head_revision(), head_revision())
        assert current_revision(engine) == head_revision()
        engine.dispose()

    def test_ensure_schema_sets_up_empty_database(self, sqlite_url: str) -> None:
        """A database never migrated is set up even for a dry run, which only adds tables."""
        engine = create_state_engine(StateSettings(url=sqlite_url))

        ensure_schema(engine, allow_upgrade=False)

        assert "users" in sa.inspect(engine).get_table_names()
        engine.dispose()
