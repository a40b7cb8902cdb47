"""Rejected rows end to end: named in the log and the report, the rest synced, and the
rejected person's Staffbase user left exactly as it was."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from staffsync.settings import MappingSettings
from tests.input.bench import log_events
from tests.sync.harness import COLUMNS, person

if TYPE_CHECKING:
    import io

    from tests.input.bench import InputBench

START = "start_date"
DATED_COLUMNS = (*COLUMNS, START)
DATED_MAPPING = MappingSettings(
    fields={
        "firstName": "first_name",
        "lastName": "last_name",
        "email": "work_email",
        "position": "title",
        "manager": "manager_id",
        "profile.startdate": START,
    },
    date_fields=[START],
)

BROKEN_ROWS = [
    pytest.param(
        {START: "2021-02-30"},
        START,
        "2021-02-30",
        "date '2021-02-30' is not a real calendar date (day is out of range for month);"
        " the record is skipped: correct it in the HR system",
        id="impossible-date",
    ),
    pytest.param(
        {START: "30.01.2021"},
        START,
        "30.01.2021",
        "date '30.01.2021' does not match the declared format %Y-%m-%d; the record is"
        " skipped: fix the export or change [mapping] date_format",
        id="undeclared-date-format",
    ),
    pytest.param(
        {"status": "Sabbatical"},
        "status",
        "Sabbatical",
        "status 'Sabbatical' is neither active nor inactive; the person is left as they are:"
        " the accepted values are ['active'] (active) and ['terminated', 'inactive']"
        " (inactive), compared ignoring case; add the value to [mapping.status]",
        id="unknown-status",
    ),
    pytest.param(
        {"work_email": ""},
        "work_email",
        "",
        "the e-mail address 'work_email' is empty; the record is skipped: active employees"
        " need one, because Staffbase identifies and invites users by it",
        id="empty-email",
    ),
    pytest.param(
        {"work_email": "person2 at example.com"},
        "work_email",
        "person2 at example.com",
        "'person2 at example.com' is not a valid e-mail address; the record is skipped: an"
        " address has one '@', a name before it, a domain with a dot after it and no spaces;"
        " correct it in the HR system",
        id="invalid-email",
    ),
    pytest.param(
        {"first_name": "Ann\0e"},
        "first_name",
        "Ann\\x00e",
        "the value of 'first_name' contains a NUL character (shown as \\x00), which Staffbase"
        " and the state database cannot store; the row is skipped: remove it in the HR"
        " system, or set [source] encoding if the file is UTF-16",
        id="nul-character",
    ),
]


def dated(number: int, **overrides: str) -> dict[str, str]:
    return person(number, **{START: f"2020-01-{number:02d}", **overrides})


class TestRejectedRow:
    @pytest.mark.parametrize(("broken", "field", "value", "message"), BROKEN_ROWS)
    def test_existing_user_untouched(
        self,
        bench: InputBench,
        log_stream: io.StringIO,
        broken: dict[str, str],
        field: str,
        value: str,
        message: str,
    ) -> None:
        """A broken row is reported and logged; its user keeps every value and stays."""
        settings = bench.settings(mapping=DATED_MAPPING)
        bench.write_export([dated(1), dated(2, manager_id="E0001"), dated(3)], DATED_COLUMNS)
        bench.sync(settings)
        bench.sign_in()
        before = bench.stored()
        writes = bench.writes()

        bench.write_export(
            [
                dated(1),
                dated(2, manager_id="E0001", title="Changed", **broken),
                dated(3, title="CTO"),
            ],
            DATED_COLUMNS,
        )
        report = bench.sync(settings)

        expected = {
            "file": str(bench.export),
            "line": 3,
            "key": "E0002",
            "field": field,
            "value": value,
            "message": message,
        }
        assert report.status == "partial"
        assert report.exit_code == 4
        assert report.rejected == [expected]
        assert report.counts["rejected"] == 1
        assert report.counts["updated"] == 1
        assert report.counts["deactivated"] == 0
        assert bench.writes() == writes + 1
        assert bench.stored()["E0002"] == before["E0002"]
        assert bench.stored()["E0003"]["position"] == "CTO"
        logged = log_events(log_stream, "record_rejected")
        assert [{k: e[k] for k in expected} for e in logged] == [expected]
        assert [e["level"] for e in logged] == ["warning"]

    def test_nul_character_on_every_state_database(self, any_bench: InputBench) -> None:
        """PostgreSQL cannot store a NUL: the row is rejected before anything is staged."""
        any_bench.write_export([person(1), person(2)])
        any_bench.sync()
        any_bench.write_export([person(1, title="Chief"), person(2, last_name="Nu\0ll")])

        report = any_bench.sync()

        assert report.status == "partial"
        assert [(r["key"], r["field"]) for r in report.rejected] == [("E0002", "last_name")]
        assert report.counts["updated"] == 1
        assert report.counts["deactivated"] == 0
        assert any_bench.users()["E0002"]["lastName"] == "Last2"

    def test_fixed_row_syncs_again(self, bench: InputBench) -> None:
        """Once the row is fixed, the next run applies it and reports nothing rejected."""
        settings = bench.settings(mapping=DATED_MAPPING)
        bench.write_export([dated(1), dated(2)], DATED_COLUMNS)
        bench.sync(settings)
        bench.write_export([dated(1), dated(2, status="Sabbatical")], DATED_COLUMNS)
        bench.sync(settings)

        bench.write_export([dated(1), dated(2, title="Fixed")], DATED_COLUMNS)
        report = bench.sync(settings)

        assert report.status == "succeeded"
        assert report.rejected == []
        assert bench.stored()["E0002"]["position"] == "Fixed"

    def test_rejected_row_rejected_again(self, bench: InputBench) -> None:
        """Syncing the same export again rejects the row again and writes nothing."""
        settings = bench.settings(mapping=DATED_MAPPING)
        bench.write_export([dated(1), dated(2, **{START: "2021-02-30"})], DATED_COLUMNS)
        bench.sync(settings)

        report = bench.assert_quiet_rerun(settings)

        assert [(e["line"], e["key"]) for e in report.rejected] == [(3, "E0002")]

    def test_other_rows_synced(self, bench: InputBench) -> None:
        """A new person with a broken row is not created; everyone else is."""
        bench.write_export([person(1), person(2, status="Sabbatical"), person(3)])

        report = bench.sync()

        assert sorted(bench.stored()) == ["E0001", "E0003"]
        assert report.counts["created"] == 2
        assert report.source == {
            "records": 3,
            "rejected": 1,
            "location": str(bench.export),
        }


class TestRejectLogging:
    def test_many_rejects_capped(self, bench: InputBench, log_stream: io.StringIO) -> None:
        """Past 100 rejected rows, one summary event gives the total; the report has all."""
        rows = [person(1)] + [person(n, status="unknown") for n in range(2, 152)]
        bench.write_export(rows)

        report = bench.sync()

        logged = log_events(log_stream, "record_rejected")
        summary = log_events(log_stream, "record_issues_not_logged")
        assert len(logged) == 100
        assert [e["line"] for e in logged] == list(range(3, 103))
        assert [(e["kind"], e["logged"], e["total"]) for e in summary] == [("rejected", 100, 150)]
        assert len(report.rejected) == 150

    def test_long_value_shortened(self, bench: InputBench, log_stream: io.StringIO) -> None:
        """A huge rejected value is cut to 200 characters in the log, not in the report."""
        huge = "x" * 5000
        bench.write_export([person(1), person(2, work_email=huge)])

        report = bench.sync()

        logged = log_events(log_stream, "record_rejected")
        assert [len(e["value"]) for e in logged] == [200]
        assert logged[0]["value"].endswith("...")
        assert report.rejected[0]["value"] == huge

    def test_warnings_logged(self, bench: InputBench, log_stream: io.StringIO) -> None:
        """A manager warning is logged with file, line, key, field and value."""
        bench.write_export([person(1, manager_id="E0404")])

        bench.sync()

        logged = log_events(log_stream, "record_warning")
        assert [(e["file"], e["line"], e["key"], e["field"], e["value"]) for e in logged] == [
            (str(bench.export), 2, "E0001", "manager_id", "E0404")
        ]
