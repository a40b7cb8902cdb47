"""Safety guards, held plans and approval, leaver policies, and dry runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from staffsync.settings import PolicySettings, SafetySettings
from staffsync.state import schema
from staffsync.state.database import create_state_engine
from tests.sync.harness import COLUMNS, person

if TYPE_CHECKING:
    from tests.sync.harness import Bench


def roster(count: int) -> list[dict[str, str]]:
    return [person(n) for n in range(1, count + 1)]


def strict(bench: Bench) -> SafetySettings:
    return SafetySettings(max_deactivations=50, max_deactivation_percent=10)


class TestGuards:
    def test_truncated_export_is_held(self, any_bench: Bench) -> None:
        """An export cut to a third holds the whole plan: nothing written, exit 3."""
        rows = roster(60)
        any_bench.write_export(rows)
        any_bench.sync()
        any_bench.sign_in()
        writes = any_bench.writes()

        any_bench.write_export(rows[:20])
        report = any_bench.sync(any_bench.settings(safety=strict(any_bench)))

        assert report.status == "blocked"
        assert report.exit_code == 3
        assert report.held is not None
        assert "40 of 60" in report.held["reason"]
        assert any_bench.writes() == writes
        assert {u["status"] for u in any_bench.users().values()} == {"activated"}

    def test_approving_applies_exactly_the_held_plan(self, any_bench: Bench) -> None:
        """sync --approve PLAN_ID deactivates exactly the people the held plan named."""
        rows = roster(60)
        any_bench.write_export(rows)
        any_bench.sync()
        any_bench.sign_in()
        any_bench.write_export(rows[:20])
        settings = any_bench.settings(safety=strict(any_bench))
        held = any_bench.sync(settings)
        assert held.held is not None

        approved = any_bench.sync(settings, approve=held.held["plan_id"])

        users = any_bench.users()
        deactivated = {key for key, user in users.items() if user["status"] == "deactivated"}
        assert approved.status == "succeeded"
        assert approved.counts["deactivated"] == 40
        assert deactivated == {f"E{n:04d}" for n in range(21, 61)}

    def test_approval_refused_after_export_changed(self, bench: Bench) -> None:
        """A held plan is not applied once the export changed; the message says why."""
        rows = roster(30)
        bench.write_export(rows)
        bench.sync()
        bench.write_export(rows[:10])
        settings = bench.settings(safety=strict(bench))
        held = bench.sync(settings)
        assert held.held is not None
        bench.write_export(rows[:11])

        refused = bench.sync(settings, approve=held.held["plan_id"])

        assert refused.status == "failed"
        assert refused.exit_code == 1
        assert refused.error is not None
        assert "changed since plan" in refused.error
        assert len(bench.users()) == 30

    def test_approval_refused_after_state_changed(self, bench: Bench) -> None:
        """A held plan is not applied once another run changed the state."""
        rows = roster(30)
        bench.write_export(rows)
        bench.sync()
        bench.write_export(rows[:10])
        settings = bench.settings(safety=strict(bench))
        held = bench.sync(settings)
        assert held.held is not None
        rows[0]["title"] = "Chief"
        bench.write_export(rows)
        bench.sync(settings)
        bench.write_export(rows[:10])

        refused = bench.sync(settings, approve=held.held["plan_id"])

        assert refused.status == "failed"
        assert refused.error is not None
        assert "plan" in refused.error

    def test_empty_file_fails_and_deactivates_no_one(self, bench: Bench) -> None:
        """A zero-byte export fails the run; every user stays as it was."""
        bench.write_export(roster(5))
        bench.sync()
        bench.export.write_text("", encoding="utf-8")

        report = bench.sync()

        assert report.status == "failed"
        assert len(bench.users()) == 5

    def test_header_only_file_fails(self, bench: Bench) -> None:
        """An export with a header and no rows fails unless allow_empty_source is set."""
        bench.write_export(roster(5))
        bench.sync()
        bench.export.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")

        report = bench.sync()

        assert report.status == "failed"
        assert report.error is not None
        assert "allow_empty_source" in report.error
        assert {u["status"] for u in bench.users().values()} == {"pending"}


class TestLeaverPolicies:
    def test_delete_after_days(self, bench: Bench) -> None:
        """A user deactivated longer than delete_after_days is deleted."""
        rows = roster(5)
        bench.write_export(rows)
        bench.sync()
        bench.sign_in()
        bench.write_export(rows[:4])
        bench.sync()
        engine = create_state_engine(bench.settings().state)
        with engine.begin() as connection:
            connection.execute(
                sa.update(schema.users)
                .where(schema.users.c.key == "E0005")
                .values(left_at=datetime.now(UTC) - timedelta(days=31))
            )
        engine.dispose()

        kept = bench.sync(bench.settings(policy=PolicySettings(delete_after_days=40)))
        deleted = bench.sync(bench.settings(policy=PolicySettings(delete_after_days=30)))

        assert kept.counts["deleted"] == 0
        assert deleted.counts["deleted"] == 1
        assert "E0005" not in bench.users()

    def test_on_leave_delete(self, bench: Bench) -> None:
        """With on_leave = "delete", an activated leaver is deleted, not deactivated."""
        rows = roster(5)
        bench.write_export(rows)
        bench.sync()
        bench.sign_in()
        bench.write_export(rows[:4])

        report = bench.sync(bench.settings(policy=PolicySettings(on_leave="delete")))

        assert report.counts["deleted"] == 1
        assert "E0005" not in bench.users()


class TestDryRun:
    def test_writes_nothing_anywhere(self, bench: Bench) -> None:
        """A dry run sends no write and leaves the state database as it was."""
        rows = roster(6)
        bench.write_export(rows)
        bench.sync()
        bench.sign_in()
        rows[0]["title"] = "Chief"
        bench.write_export([*rows[:5], person(7)])
        engine = create_state_engine(bench.settings().state)
        with engine.connect() as connection:
            before = connection.execute(sa.select(schema.users).order_by(schema.users.c.key)).all()
            runs_before = connection.execute(
                sa.select(sa.func.count()).select_from(schema.runs)
            ).scalar()
        writes = bench.writes()

        report = bench.sync(dry_run=True)

        with engine.connect() as connection:
            after = connection.execute(sa.select(schema.users).order_by(schema.users.c.key)).all()
            runs_after = connection.execute(
                sa.select(sa.func.count()).select_from(schema.runs)
            ).scalar()
        engine.dispose()
        assert bench.writes() == writes
        assert after == before
        assert runs_after == runs_before
        assert report.counts["created"] == 1
        assert report.counts["updated"] == 1
        assert report.counts["deactivated"] == 1
        assert {(c["action"], c["key"]) for c in report.changes} == {
            ("create", "E0007"),
            ("update", "E0001"),
            ("deactivate", "E0006"),
        }


class TestOnly:
    def test_only_touches_named_people(self, bench: Bench) -> None:
        """sync --only provisions the named people and leaves everyone else as is."""
        rows = roster(5)
        bench.write_export(rows)
        bench.sync(only_keys=("E0002", "E0004"))

        assert set(bench.users()) == {"E0002", "E0004"}
        rows[0]["title"] = "Chief"
        bench.write_export(rows)
        report = bench.sync(only_keys=("E0003",))

        assert set(bench.users()) == {"E0002", "E0003", "E0004"}
        assert report.counts["created"] == 1
        assert report.counts["updated"] == 0
        assert report.warnings == []

    def test_unknown_key_is_a_warning(self, bench: Bench) -> None:
        bench.write_export(roster(3))

        report = bench.sync(only_keys=("E0002", "NOPE"))

        assert set(bench.users()) == {"E0002"}
        assert [(w["key"], w["line"]) for w in report.warnings] == [("NOPE", None)]
        assert "neither in the export nor in the state" in report.warnings[0]["message"]
