"""Reading the Staffbase users of a full resync into temporary tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from staffsync.planning.remote import load_remote_users
from staffsync.settings import StateSettings
from staffsync.state.database import create_state_engine
from staffsync.state.migrate import ensure_schema

if TYPE_CHECKING:
    from collections.abc import Iterator


class RepeatingClient:
    """Lists the same users the way a listing shifted by new users does: one of them twice."""

    def __init__(self, users: list[dict[str, Any]]) -> None:
        self.users = users

    def iter_users(self) -> Iterator[dict[str, Any]]:
        yield from self.users
        yield self.users[0]


def user(number: int, *, external_id: str | None) -> dict[str, Any]:
    return {
        "id": f"id{number:04d}",
        "externalID": external_id,
        "status": "activated",
        "firstName": f"First{number}",
        "emails": [{"value": f"person{number}@example.com", "primary": True}],
    }


class TestLoadRemoteUsers:
    def test_repeated_keyed_user_kept_once(self, state_url: str) -> None:
        """A user listed twice becomes one remote row instead of failing the resync."""
        engine = create_state_engine(StateSettings(url=state_url))
        ensure_schema(engine, allow_upgrade=True)
        users = [user(n, external_id=f"E{n}") for n in range(3)]

        with engine.connect() as connection:
            tables = load_remote_users(
                connection,
                RepeatingClient(users),
                now=datetime.now(UTC),  # type: ignore[arg-type]
            )
            rows = connection.execute(sa.select(tables.remote.c.key)).scalars().all()
        engine.dispose()

        assert sorted(rows) == ["E0", "E1", "E2"]

    def test_repeated_unkeyed_user_kept_once(self, state_url: str) -> None:
        """A user without externalID listed twice becomes one unkeyed row."""
        engine = create_state_engine(StateSettings(url=state_url))
        ensure_schema(engine, allow_upgrade=True)
        users = [user(n, external_id=None) for n in range(2)]

        with engine.connect() as connection:
            tables = load_remote_users(
                connection,
                RepeatingClient(users),
                now=datetime.now(UTC),  # type: ignore[arg-type]
            )
            rows = connection.execute(sa.select(tables.unkeyed.c.staffbase_id)).scalars().all()
        engine.dispose()

        assert sorted(rows) == ["id0000", "id0001"]
