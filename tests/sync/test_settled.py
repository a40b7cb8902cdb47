"""Inactive people are mapped once: while their record stays the same, later runs skip it.

A leaver stays in most HR exports for months. Whether Staffbase has a user for them
(deactivated) or not (never created, or deleted), an unchanged inactive record needs
nothing, so its hash is kept and the next run counts it as unchanged without mapping it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from staffsync.settings import StateSettings
from staffsync.state import schema
from staffsync.state.database import create_state_engine
from tests.sync.harness import person

if TYPE_CHECKING:
    from staffsync.report import RunReport
    from tests.sync.harness import Bench


def sync_counting_mapped(bench: Bench, **request: Any) -> tuple[RunReport, int]:
    """Sync, and return the report and how many records the planner mapped."""
    mapped = [0]

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "map":
            mapped[0] = total

    report = bench.sync(progress=progress, **request)
    return report, mapped[0]


def settled_keys(bench: Bench) -> list[str]:
    engine = create_state_engine(StateSettings(url=bench.state_url))
    try:
        with engine.connect() as connection:
            table = schema.settled_records
            return list(connection.execute(sa.select(table.c.key).order_by(table.c.key)).scalars())
    finally:
        engine.dispose()


class TestSettledRecords:
    def test_leaver_without_user_is_mapped_once(self, bench: Bench) -> None:
        bench.write_export([person(1), person(2), person(3, status="terminated")])

        first, first_mapped = sync_counting_mapped(bench)
        second, second_mapped = sync_counting_mapped(bench)

        assert first.counts["created"] == 2
        assert first_mapped == 3
        assert settled_keys(bench) == ["E0003"]
        assert second_mapped == 0
        assert second.counts["unchanged"] == 3
        assert "E0003" not in bench.users()

    def test_dry_run_settles_nothing(self, bench: Bench) -> None:
        bench.write_export([person(1), person(3, status="terminated")])

        bench.sync(dry_run=True)

        assert settled_keys(bench) == []

    def test_deactivated_user_is_mapped_once(self, bench: Bench) -> None:
        bench.write_export([person(1), person(2)])
        bench.sync()
        bench.sign_in()
        bench.write_export([person(1), person(2, status="terminated")])
        left = bench.sync()

        again, mapped = sync_counting_mapped(bench)

        assert left.counts["deactivated"] == 1
        assert mapped == 0
        assert again.counts["unchanged"] == 2
        assert bench.users()["E0002"]["status"] == "deactivated"

    def test_settled_person_who_returns_is_created(self, bench: Bench) -> None:
        """A changed record is mapped again: the returning person gets a user."""
        bench.write_export([person(1), person(3, status="terminated")])
        bench.sync()

        bench.write_export([person(1), person(3)])
        back = bench.sync()

        assert back.counts["created"] == 1
        assert bench.users()["E0003"]["status"] == "pending"

    def test_leaving_again_after_a_deletion_is_quiet(self, bench: Bench) -> None:
        """A settled hash from before the person had a user still means: nothing to do."""
        rows = [person(1), person(3, status="terminated")]
        bench.write_export(rows)
        bench.sync()
        bench.write_export([person(1), person(3)])
        bench.sync()
        bench.write_export(rows)
        deleted = bench.sync()
        writes = bench.writes()

        again, mapped = sync_counting_mapped(bench)

        assert deleted.counts["deleted"] == 1
        assert mapped == 0
        assert again.counts["unchanged"] == 2
        assert bench.writes() == writes
        assert "E0003" not in bench.users()

    def test_manager_who_left_still_warns(self, bench: Bench) -> None:
        """A changed record naming a settled leaver as manager gets the same warning."""
        bench.write_export([person(1), person(9, status="terminated")])
        bench.sync()

        bench.write_export([person(1, manager_id="E0009"), person(9, status="terminated")])
        report, mapped = sync_counting_mapped(bench)

        assert mapped == 1
        assert [w["message"] for w in report.warnings] == [
            "manager 'E0009' (line 3) has no Staffbase user: HR lists them as inactive, their"
            " row was rejected, or creating their user failed; the person is synced without a"
            " manager until the manager has one"
        ]
