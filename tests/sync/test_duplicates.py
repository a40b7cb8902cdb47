"""A key on two rows, or one e-mail address on two keys: the rows are rejected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.sync.harness import Bench


class TestDuplicateEmails:
    def test_changed_row_takes_kept_address(self, any_bench: Bench) -> None:
        """A changed row that takes the address of an unchanged one rejects both rows."""
        any_bench.write_export([person(1), person(2), person(3)])
        any_bench.sync()
        any_bench.write_export([person(1), person(2, work_email="person3@example.com"), person(3)])

        report = any_bench.sync()

        rejected = {(issue["key"], issue["line"]) for issue in report.rejected}
        assert rejected == {("E0002", 3), ("E0003", 4)}
        assert report.counts["updated"] == 0
        assert "E0002 (line 3), E0003 (line 4)" in report.rejected[0]["message"]

    def test_two_new_rows_share_address(self, bench: Bench) -> None:
        """Two new rows with one address (any letter case) are both rejected."""
        bench.write_export([person(1), person(2, work_email="PERSON1@example.com")])

        report = bench.sync()

        assert sorted(issue["key"] for issue in report.rejected) == ["E0001", "E0002"]
        assert report.counts["created"] == 0
        assert bench.users() == {}


class TestDuplicateKeys:
    def test_every_row_of_key_rejected(self, any_bench: Bench) -> None:
        """A key on two rows rejects both, names both lines, and the others are synced."""
        any_bench.write_export([person(1), person(2), person(2, title="Director"), person(3)])

        report = any_bench.sync()

        rejected = {(issue["key"], issue["line"]) for issue in report.rejected}
        assert rejected == {("E0002", 3), ("E0002", 4)}
        assert "appears on lines 3, 4" in report.rejected[0]["message"]
        assert sorted(any_bench.users()) == ["E0001", "E0003"]

    def test_duplicate_person_left_alone(self, any_bench: Bench) -> None:
        """A synced person whose key comes twice is neither changed nor deactivated."""
        any_bench.write_export([person(1), person(2)])
        any_bench.sync()
        any_bench.write_export([person(1), person(2, title="A"), person(2, title="B")])

        report = any_bench.sync()

        assert report.counts["updated"] == 0
        assert report.counts["deactivated"] == 0
        assert any_bench.users()["E0002"]["position"] == "Engineer"
