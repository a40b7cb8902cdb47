"""Tests for reading JSON exports: lists, wrapped lists, JSON Lines and invalid documents."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from staffsync.sources import MISSING, JsonSource, RawRecord, RecordIssue, SourceError

if TYPE_CHECKING:
    from collections.abc import Sequence

HR_DATA = Path(__file__).parents[1] / "data" / "hr"


def read(name: str, fields: Sequence[str], **options: Any) -> list[RawRecord | RecordIssue]:
    return list(JsonSource(HR_DATA / name, **options).read(fields))


class TestValues:
    def test_scalar_values(self) -> None:
        """Strings stay, numbers and booleans become their JSON text, null becomes None."""
        fields = ["employee_id", "active", "level", "salary_band", "note", "title", "missing"]

        first = read("list.json", fields)[0]

        assert first == RawRecord(1, ("0042", "true", "3", "1.50", None, "", MISSING))

    def test_array_of_scalars(self) -> None:
        """An array of scalars becomes a list of texts, as written."""
        first = read("list.json", ["employee_id", "groups"])[0]

        assert first == RawRecord(1, ("0042", ["Engineering", " Berlin ", "7"]))

    def test_dotted_paths(self) -> None:
        """Dotted names read nested objects; a null on the way reads as None."""
        records = read("list.json", ["employee_id", "office.name", "manager.id"])

        assert records[0] == RawRecord(1, ("0042", "London", "E1"))
        assert records[1] == RawRecord(2, ("E2", None, MISSING))

    def test_record_not_an_object(self) -> None:
        """A record that is not an object becomes an issue with its number."""
        issue = read("list.json", ["employee_id"])[2]

        assert issue == RecordIssue(
            line=3,
            key=None,
            field=None,
            value='"not an object"',
            message=(
                "record 3 is a string, not an object; the record is skipped:"
                " each record must be a JSON object"
            ),
        )

    def test_object_where_value_needed(self) -> None:
        """An object in a field becomes an issue naming members to map instead."""
        issue = read("list.json", ["employee_id", "first_name"])[3]

        assert issue == RecordIssue(
            line=4,
            key="E3",
            field="first_name",
            value='{"given": "Cem"}',
            message=(
                "'first_name' contains an object where a single value is needed; the record is"
                " skipped: map one of its members instead, such as 'first_name.given'"
            ),
        )

    def test_array_of_objects(self) -> None:
        """An array of objects becomes an issue."""
        issue = read("list.json", ["employee_id", "groups"])[4]

        assert isinstance(issue, RecordIssue)
        assert issue.line == 5
        assert issue.key == "E4"
        assert issue.field == "groups"
        assert "contains an array of objects" in issue.message

    def test_path_through_scalar(self) -> None:
        """A path through a value that is not an object becomes an issue."""
        issue = read("list.json", ["employee_id", "first_name.given"])[0]

        assert isinstance(issue, RecordIssue)
        assert issue.field == "first_name.given"
        assert issue.message.startswith("'first_name' contains a string, not an object")


class TestLayouts:
    def test_workday_report_entry(self) -> None:
        """records_path reads the list inside a Workday RaaS response."""
        fields = ["Employee_ID", "Work_Email", "Manager_ID", "Cost_Center_ID"]

        records = read("workday_raas.json", fields, records_path="Report_Entry")

        assert records == [
            RawRecord(1, ("21001", "maria.garcia@example.com", None, "")),
            RawRecord(2, ("21002", MISSING, "21001", MISSING)),
        ]

    def test_json_lines(self) -> None:
        """A .jsonl file holds one record per line; blank lines are skipped."""
        records = read("records.jsonl", ["employee_id", "first_name", "manager_id"])

        assert records == [
            RawRecord(1, ("E1", "Ann", MISSING)),
            RawRecord(2, ("E2", "Bob", "E1")),
            RawRecord(3, ("E3", None, MISSING)),
        ]

    def test_json_lines_detected(self) -> None:
        """One object per line is recognised without the .jsonl extension."""
        records = read("records_no_extension.json", ["employee_id", "first_name"])

        assert records == [RawRecord(1, ("E1", "Ann")), RawRecord(2, ("E2", "Bob"))]

    @pytest.mark.parametrize(
        ("name", "options"),
        [
            pytest.param("empty_list.json", {}, id="list"),
            pytest.param("empty_report.json", {"records_path": "Report_Entry"}, id="report"),
        ],
    )
    def test_empty_list(self, name: str, options: dict[str, str]) -> None:
        """An empty list of records reads as no records."""
        assert read(name, ["employee_id"], **options) == []

    def test_object_without_records_path(self) -> None:
        """A wrapper object read without records_path fails, naming the lists it holds."""
        with pytest.raises(SourceError) as caught:
            read("workday_raas.json", ["Employee_ID"])

        message = str(caught.value)
        assert "the document is a JSON object, not a list of records" in message
        assert "lists in the document: ['Report_Entry']" in message

    def test_wrong_records_path(self) -> None:
        """A records_path that is not in the document fails instead of reading no one."""
        with pytest.raises(SourceError, match="records_path 'Report_Entries' is not in the"):
            read("empty_report.json", ["Employee_ID"], records_path="Report_Entries")

    def test_records_path_on_list(self) -> None:
        """A records_path on a document that is itself the list fails."""
        with pytest.raises(SourceError, match='set records_path = ""'):
            read("empty_list.json", ["employee_id"], records_path="Report_Entry")


class TestInvalid:
    def test_syntax_error_position(self) -> None:
        """Invalid JSON fails naming line and column."""
        with pytest.raises(SourceError) as caught:
            read("invalid.json", ["employee_id"])

        message = str(caught.value)
        assert "line 3, column 24: the file is not valid JSON" in message
        assert "invalid object key" in message

    def test_truncated(self) -> None:
        """A document that ends early fails as truncated after yielding what it read."""
        records = JsonSource(HR_DATA / "truncated.json").read(["employee_id"])

        assert next(records) == RawRecord(1, ("E1",))
        with pytest.raises(SourceError, match="probably truncated"):
            next(records)

    def test_broken_json_line(self) -> None:
        """A bad line in JSON Lines fails naming line and column."""
        with pytest.raises(SourceError, match=r"line 2, column 43: the line is not valid JSON"):
            read("broken.jsonl", ["employee_id"])

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A JSON file in another encoding fails naming the byte and the encoding."""
        path = tmp_path / "latin.json"
        path.write_bytes(b'[{"employee_id": "E1", "first_name": "Ren\xe9e"}]')

        with pytest.raises(SourceError, match=r'line 1 .* byte 0xE9 .*encoding = "cp1252"'):
            list(JsonSource(path).read(["employee_id"]))

    def test_declared_encoding(self, tmp_path: Path) -> None:
        """A declared encoding other than UTF-8 is decoded before parsing."""
        path = tmp_path / "latin.json"
        path.write_bytes(b'[{"employee_id": "E1", "first_name": "Ren\xe9e"}]')

        records = list(JsonSource(path, encoding="cp1252").read(["first_name"]))

        assert records == [RawRecord(1, ("Renée",))]

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that does not exist fails naming the path."""
        with pytest.raises(SourceError, match=r"nope\.json: the file does not exist"):
            list(JsonSource(tmp_path / "nope.json").read(["employee_id"]))

    def test_csv_read_as_json(self) -> None:
        """A CSV file configured as JSON fails with a hint to the csv kind."""
        with pytest.raises(SourceError, match='set \\[source\\] kind = "csv"'):
            read("basic.csv", ["employee_id"])
