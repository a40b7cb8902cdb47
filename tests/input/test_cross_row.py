"""Checks across rows, end to end: one key on several rows, one e-mail address on two
keys, and manager references wherever the manager's row is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.input.bench import issues
from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.input.bench import InputBench

UNKNOWN = "manager {!r} is not in the export or the state; the person is synced without a manager"
SELF = "the record names the person as their own manager; the person is synced without a manager"
CYCLE = "manager references form a cycle: {}; the person is synced without a manager"


def managers(bench: InputBench) -> dict[str, str | None]:
    return {key: user.get("manager") for key, user in bench.stored().items()}


class TestDuplicateKeys:
    def test_every_row_rejected(self, any_bench: InputBench) -> None:
        """Both rows of E2 are rejected, naming the key and both lines; E2 is left as is."""
        settings = any_bench.settings_for(any_bench.use("roster.csv"))
        any_bench.sync(settings)
        any_bench.sign_in()
        before = any_bench.stored()
        settings = any_bench.settings_for(any_bench.use("duplicate_keys.csv"))

        report = any_bench.sync(settings)

        message = (
            "employee key 'E2' appears on lines 3, 5; every one of these rows is rejected and"
            " the person is left as they are until the export lists them once"
        )
        assert issues(report.rejected) == [
            (3, "E2", "employee_id", "E2"),
            (5, "E2", "employee_id", "E2"),
        ]
        assert [r["message"] for r in report.rejected] == [message, message]
        assert any_bench.stored()["E2"] == before["E2"]
        assert any_bench.stored()["E3"]["position"] == "Lead Designer"
        assert report.counts["deactivated"] == 0
        any_bench.assert_quiet_rerun(settings)


class TestDuplicateEmails:
    def test_both_keys_rejected(self, any_bench: InputBench) -> None:
        """An address on two keys, in any letter case, rejects both rows; both stay as they are."""
        settings = any_bench.settings_for(any_bench.use("roster.csv"))
        any_bench.sync(settings)
        before = any_bench.stored()
        settings = any_bench.settings_for(any_bench.use("email_clash.csv"))

        report = any_bench.sync(settings)

        assert sorted(issues(report.rejected)) == [
            (2, "E1", "work_email", "ann@example.com"),
            (3, "E2", "work_email", "cem@example.com"),
            (4, "E3", "work_email", "cem@example.com"),
            (6, "E5", "work_email", "ann@example.com"),
        ]
        assert (
            sorted(r["message"] for r in report.rejected)
            == [
                "e-mail 'ann@example.com' is used by several people: E1 (line 2), E5 (line 6);"
                " these rows are rejected and the people are left as they are",
            ]
            * 2
            + [
                "e-mail 'cem@example.com' is used by several people: E2 (line 3), E3 (line 4);"
                " these rows are rejected and the people are left as they are",
            ]
            * 2
        )
        stored = any_bench.stored()
        assert sorted(stored) == ["E1", "E2", "E3", "E4"]
        assert {key: stored[key] for key in ("E1", "E2", "E3")} == {
            key: before[key] for key in ("E1", "E2", "E3")
        }
        assert stored["E4"]["position"] == "Staff Engineer"
        any_bench.assert_quiet_rerun(settings)


class TestManagers:
    def test_resolved_wherever_the_row_is(self, any_bench: InputBench) -> None:
        """Managers before and after resolve; unknown, self and cycles warn with lines."""
        settings = any_bench.settings_for(any_bench.use("managers.csv"))

        report = any_bench.sync(settings)

        assert managers(any_bench) == {
            "E1": "E5",
            "E2": "E1",
            "E3": None,
            "E4": None,
            "E5": None,
            "E6": None,
            "E7": None,
        }
        assert issues(report.warnings) == [
            (4, "E3", "manager_id", "E404"),
            (5, "E4", "manager_id", "E4"),
            (7, "E6", "manager_id", "E7"),
            (8, "E7", "manager_id", "E6"),
        ]
        assert [w["message"] for w in report.warnings] == [
            UNKNOWN.format("E404"),
            SELF,
            CYCLE.format("E6 (line 7) -> E7 (line 8) -> E6"),
            CYCLE.format("E7 (line 8) -> E6 (line 7) -> E7"),
        ]
        assert report.counts["created"] == 7
        assert report.status == "succeeded"

    def test_warnings_repeat_without_writes(self, bench: InputBench) -> None:
        """A second sync repeats every manager warning and sends nothing."""
        settings = bench.settings_for(bench.use("managers.csv"))
        first = bench.sync(settings)

        second = bench.assert_quiet_rerun(settings)

        assert issues(second.warnings) == issues(first.warnings)

    def test_manager_added_later_is_set(self, bench: InputBench) -> None:
        """A reference unknown in one run is set once the manager's row appears."""
        bench.write_export([person(1, manager_id="E0009")])
        bench.sync()

        bench.write_export([person(1, manager_id="E0009"), person(9)])
        report = bench.sync()

        assert managers(bench) == {"E0001": "E0009", "E0009": None}
        assert report.warnings == []
        assert report.counts["created"] == 1
        assert report.counts["updated"] == 1

    def test_manager_activated_later_is_set(self, bench: InputBench) -> None:
        """A reference to an inactive person warns until that person is active again."""
        bench.write_export([person(1, manager_id="E0009"), person(9, status="terminated")])
        first = bench.sync()

        bench.write_export([person(1, manager_id="E0009"), person(9)])
        second = bench.sync()

        assert [w["message"] for w in first.warnings] == [
            "manager 'E0009' (line 3) has no Staffbase user: HR lists them as inactive, their"
            " row was rejected, or creating their user failed; the person is synced without a"
            " manager until the manager has one"
        ]
        assert second.warnings == []
        assert managers(bench) == {"E0001": "E0009", "E0009": None}
