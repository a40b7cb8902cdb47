"""Exports that must not deactivate anyone: unreadable keys, and every row rejected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from staffsync.settings import PolicySettings
from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.input.bench import InputBench


def synced_roster(bench: InputBench) -> dict[str, dict[str, object]]:
    """Sync the four-person roster, sign everyone in and return the stored users."""
    bench.sync(bench.settings_for(bench.use("roster.csv")))
    bench.sign_in()
    return bench.stored()


class TestWithheldLeavers:
    def test_empty_keys_deactivate_no_one(self, any_bench: InputBench) -> None:
        """People missing from an export with an unreadable key stay active, with a warning."""
        before = synced_roster(any_bench)
        settings = any_bench.settings_for(any_bench.use("missing_keys.csv"))

        report = any_bench.sync(settings)

        assert [(r["line"], r["key"], r["field"]) for r in report.rejected] == [
            (4, None, "employee_id")
        ]
        assert report.counts["deactivated"] == 0
        assert report.warnings[-1]["message"] == (
            "2 people missing from the export were not deactivated, because some rows could"
            " not be read and may be theirs; fix the rejected rows to let leavers go"
        )
        assert any_bench.stored() == before

    def test_all_rejected_deactivates_no_one(self, any_bench: InputBench) -> None:
        """An export whose every row is rejected leaves everyone, listed or not, as they are."""
        before = synced_roster(any_bench)
        writes = any_bench.writes()
        settings = any_bench.settings_for(any_bench.use("all_rejected.csv"))

        report = any_bench.sync(settings)

        assert [(r["line"], r["key"], r["value"]) for r in report.rejected] == [
            (2, "E1", "Aktiv"),
            (3, "E2", "Aktiv"),
        ]
        assert report.warnings[-1]["message"] == (
            "2 people missing from the export were not deactivated, because every row of the"
            " export was rejected, so it does not show who left; fix the rejected rows to let"
            " leavers go"
        )
        assert report.status == "partial"
        assert any_bench.writes() == writes
        assert any_bench.stored() == before

    def test_no_readable_key_reports_rows(self, bench: InputBench) -> None:
        """An export of keyless rows lists each rejected row and deactivates no one."""
        before = synced_roster(bench)
        writes = bench.writes()
        settings = bench.settings_for(bench.use("no_keys.csv"))

        report = bench.sync(settings)

        assert [(r["line"], r["key"], r["value"]) for r in report.rejected] == [
            (2, None, ""),
            (3, None, " "),
        ]
        assert report.status == "partial"
        assert report.source["records"] == 0
        assert bench.writes() == writes
        assert bench.stored() == before

    def test_leavers_go_once_rows_fixed(self, bench: InputBench) -> None:
        """With every key readable again, people missing from the export are deactivated."""
        synced_roster(bench)
        bench.sync(bench.settings_for(bench.use("missing_keys.csv")))
        fixed = bench.use("missing_keys.csv")
        fixed.write_text(fixed.read_text().replace(",Cem,", "E3,Cem,"))

        report = bench.sync(bench.settings_for(fixed))

        assert report.counts["deactivated"] == 1
        assert bench.stored()["E4"]["status"] == "deactivated"


def seed_activated(bench: InputBench, external_id: str, number: int) -> dict[str, Any]:
    """Create an activated user by hand, as in the Studio, that staffsync never managed."""
    user: dict[str, Any] = bench.post(
        "/__emulator/users",
        {
            "externalID": external_id,
            "status": "activated",
            "firstName": f"First{number}",
            "emails": [{"value": f"hand{number}@example.com", "primary": True}],
        },
    )
    return user


class TestOrphansKept:
    def test_unreadable_key_keeps_orphans(self, bench: InputBench) -> None:
        """With orphans = "deactivate", a row without a key keeps every orphan activated."""
        seed_activated(bench, "X1", 1)
        bench.write_export([person(1), person(2, employee_id="")])
        settings = bench.settings(policy=PolicySettings(orphans="deactivate"))

        report = bench.sync(settings, mode="full")

        assert bench.stored()["X1"]["status"] == "activated"
        assert [(o["external_id"], o["action"]) for o in report.orphans] == [("X1", "none")]
        assert report.counts["deactivated"] == 0

    def test_rejected_row_keeps_its_orphan(self, bench: InputBench) -> None:
        """A user whose row the source rejected is not deactivated as an orphan."""
        seed_activated(bench, "X1", 1)
        seed_activated(bench, "X2", 2)
        export = bench.write(
            "export.csv",
            "employee_id,first_name,last_name,work_email,title,department,location,manager_id,status\n"
            "E1,Ann,Ng,ann@example.com,CEO,Board,Berlin,,active\n"
            "X1,Hand,One,hand1@example.com,Lead,Sales,Berlin,,active,stray\n",
        )
        settings = bench.settings(
            source=bench.settings_for(export).source, policy=PolicySettings(orphans="deactivate")
        )

        report = bench.sync(settings, mode="full")

        assert [(r["line"], r["key"]) for r in report.rejected] == [(3, "X1")]
        assert bench.stored()["X1"]["status"] == "activated"
        assert bench.stored()["X2"]["status"] == "deactivated"
