"""Tests for validating and mapping raw HR records into desired Staffbase users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from staffsync.mapping import DesiredUser, RecordMapper, clean_text
from staffsync.settings import MappingSettings
from staffsync.sources import MISSING, DelimitedSource, RawRecord, RawValue, RecordIssue

HR_DATA = Path(__file__).parent / "data" / "hr"

FIELDS = {
    "firstName": "first_name",
    "email": "work_email",
    "position": "title",
    "manager": "manager_id",
}


def mapper(**settings: Any) -> RecordMapper:
    settings.setdefault("fields", FIELDS)
    return RecordMapper(MappingSettings(**settings))


def record(mapper: RecordMapper, line: int = 2, **values: RawValue) -> RawRecord:
    """Build a record for ``mapper`` from field values; unnamed fields are empty strings."""
    return RawRecord(line, tuple(values.get(name, "") for name in mapper.source_fields))


def valid(**values: RawValue) -> dict[str, RawValue]:
    base: dict[str, RawValue] = {
        "employee_id": "E1",
        "first_name": "Ann",
        "work_email": "ann@example.com",
        "title": "Engineer",
        "manager_id": "E0",
        "status": "active",
    }
    base.update(values)
    return base


def only_issue(result: DesiredUser | list[RecordIssue]) -> RecordIssue:
    assert isinstance(result, list)
    assert len(result) == 1
    return result[0]


class TestSourceFields:
    def test_order_without_duplicates(self) -> None:
        """The key comes first, then every needed field once."""
        subject = mapper(
            key="id",
            fields={"email": "mail", "profile.id": "id", "position": "title", "manager": "boss"},
            date_fields=["start", "title"],
            groups={"field": "teams"},
            manager_match="uid",
        )

        assert subject.source_fields == (
            "id", "mail", "title", "boss", "status", "teams", "start", "uid"
        )  # fmt: skip

    def test_no_status_field(self) -> None:
        """An empty status field is not read."""
        subject = mapper(status={"field": ""})

        assert "" not in subject.source_fields


class TestActiveRecord:
    def test_maps_fields(self) -> None:
        """A valid active record maps every field, the manager apart."""
        subject = mapper()

        result = subject.map(record(subject, **valid()))

        assert result == DesiredUser(
            key="E1",
            line=2,
            active=True,
            fields={"firstName": "Ann", "email": "ann@example.com", "position": "Engineer"},
            manager_ref="E0",
            match_value="E1",
        )

    def test_empty_clears_field(self) -> None:
        """An empty value clears the field and an empty manager means no manager."""
        subject = mapper()

        result = subject.map(record(subject, **valid(title="  ", manager_id="")))

        assert isinstance(result, DesiredUser)
        assert result.fields["position"] is None
        assert result.manager_ref is None

    def test_json_null_and_missing(self) -> None:
        """JSON null clears a field; a missing key leaves the field and the manager alone."""
        subject = mapper()

        result = subject.map(
            record(subject, **valid(title=None, first_name=MISSING, manager_id=MISSING))
        )

        assert isinstance(result, DesiredUser)
        assert result.fields == {"email": "ann@example.com", "position": None}
        assert result.manager_ref is MISSING

    def test_sentinels(self) -> None:
        """Declared sentinels read as no value, compared exactly after trimming."""
        subject = mapper(empty_values=["NO_MANAGER", "n/a"])

        result = subject.map(record(subject, **valid(manager_id=" NO_MANAGER ", title="N/A")))

        assert isinstance(result, DesiredUser)
        assert result.manager_ref is None
        assert result.fields["position"] == "N/A"

    def test_match_value_from_field(self) -> None:
        """match_value is the manager_match field's value."""
        subject = mapper(manager_match="uid")

        result = subject.map(record(subject, **valid(uid=" ann.lee ")))

        assert isinstance(result, DesiredUser)
        assert result.match_value == "ann.lee"

    def test_list_in_single_field(self) -> None:
        """A list where one value is needed is an issue."""
        subject = mapper()

        issue = only_issue(subject.map(record(subject, **valid(title=["a", "b"]))))

        assert issue.field == "title"
        assert issue.value == "a, b"
        assert issue.message.startswith(
            "'title' contains a list of 2 values where one value is needed"
        )

    def test_all_issues_reported(self) -> None:
        """Every invalid field of a record is reported, each with line and key."""
        subject = mapper(date_fields=["title"])

        result = subject.map(record(subject, line=9, **valid(work_email="x", title="soon")))

        assert isinstance(result, list)
        assert [(issue.line, issue.key, issue.field) for issue in result] == [
            (9, "E1", "work_email"),
            (9, "E1", "title"),
        ]


class TestText:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            pytest.param("  Ann  ", "Ann", id="spaces"),
            pytest.param("\u00a0Ann\u00a0", "Ann", id="no-break-space"),
            pytest.param("\u2003\u202fAnn\u3000", "Ann", id="unicode-spaces"),
            pytest.param("\u200bAnn\ufeff", "Ann", id="zero-width-and-bom"),
            pytest.param("Rene\u0301e", "Ren\u00e9e", id="nfd-to-nfc"),
            pytest.param("Jean\u00a0Paul", "Jean\u00a0Paul", id="inner-space-kept"),
            pytest.param("a\r\nb\rc", "a\nb\nc", id="line-breaks"),
            pytest.param(" \u00a0\u200b ", None, id="blank"),
            pytest.param("0042", "0042", id="leading-zeros"),
        ],
    )
    def test_clean_text(self, raw: str, expected: str | None) -> None:
        """Values are trimmed of every kind of space and normalised to NFC."""
        assert clean_text(raw) == expected

    def test_leading_zeros(self) -> None:
        """Keys are text: 0042 and 42 are two people."""
        subject = mapper()

        first = subject.map(record(subject, **valid(employee_id="0042")))
        second = subject.map(record(subject, **valid(employee_id="42")))

        assert isinstance(first, DesiredUser)
        assert isinstance(second, DesiredUser)
        assert (first.key, second.key) == ("0042", "42")

    def test_from_file(self) -> None:
        """NFD, no-break spaces and zero-width characters read from a file come out clean."""
        subject = mapper(fields={"email": "work_email", "lastName": "last_name"})
        source = DelimitedSource(HR_DATA / "unicode_whitespace.csv")

        (raw,) = source.read(subject.source_fields)
        assert isinstance(raw, RawRecord)
        result = subject.map(raw)

        assert result == DesiredUser(
            key="E1",
            line=2,
            active=True,
            fields={"email": "renee@example.com", "lastName": "M\u00fcller"},
            match_value="E1",
        )


class TestKey:
    @pytest.mark.parametrize(
        "raw", ["", "  \u00a0", None, MISSING], ids=["empty", "blank", "null", "missing"]
    )
    def test_key_required(self, raw: RawValue) -> None:
        """A record without a key is rejected, naming the key field."""
        subject = mapper()

        issue = only_issue(subject.map(record(subject, **valid(employee_id=raw))))

        assert issue.field == "employee_id"
        assert issue.key is None
        assert issue.message.startswith("the employee key 'employee_id' is empty")


class TestStatus:
    @pytest.mark.parametrize(
        ("raw", "active"),
        [
            pytest.param("active", True, id="active"),
            pytest.param(" ACTIVE ", True, id="upper-case"),
            pytest.param("Terminated", False, id="terminated"),
            pytest.param("inactive", False, id="inactive"),
        ],
    )
    def test_known_values(self, raw: str, active: bool) -> None:
        """Status values compare ignoring case and surrounding spaces."""
        subject = mapper()

        result = subject.map(record(subject, **valid(status=raw)))

        assert isinstance(result, DesiredUser)
        assert result.active is active

    @pytest.mark.parametrize(
        "raw", ["leave", "", None, MISSING], ids=["unknown", "empty", "null", "missing"]
    )
    def test_unknown_value(self, raw: RawValue) -> None:
        """An unknown or empty status is an issue naming the accepted values, never inactive."""
        subject = mapper()

        issue = only_issue(subject.map(record(subject, **valid(status=raw))))

        assert issue.field == "status"
        assert issue.key == "E1"
        assert (
            "the accepted values are ['active'] (active) and ['terminated', 'inactive']"
            in issue.message
        )

    def test_unknown_value_message(self) -> None:
        """The message quotes the value and says the person is left alone."""
        subject = mapper()

        issue = only_issue(subject.map(record(subject, **valid(status="onLeave"))))

        assert issue.value == "onLeave"
        assert issue.message.startswith(
            "status 'onLeave' is neither active nor inactive; the person is left as they are"
        )

    @pytest.mark.parametrize(
        ("raw", "active"),
        [pytest.param("false", True, id="false"), pytest.param("TRUE", False, id="true")],
    )
    def test_boolean_field(self, raw: str, active: bool) -> None:
        """A boolean-style field works through the same lists."""
        subject = mapper(status={"field": "inactive", "active": ["false"], "inactive": ["true"]})

        result = subject.map(record(subject, **valid(inactive=raw)))

        assert isinstance(result, DesiredUser)
        assert result.active is active

    def test_no_status_field(self) -> None:
        """Without a status field everyone listed is active."""
        subject = mapper(status={"field": ""})

        result = subject.map(record(subject, **valid(status="terminated")))

        assert isinstance(result, DesiredUser)
        assert result.active is True

    def test_inactive_skips_other_checks(self) -> None:
        """An inactive record with otherwise invalid fields still deactivates the person."""
        subject = mapper(date_fields=["title"], groups={"field": "teams"})
        values = valid(status="terminated", work_email="broken", title="30.02.2023", teams=["x"])

        result = subject.map(record(subject, **values))

        assert result == DesiredUser(key="E1", line=2, active=False, match_value="E1")


class TestDates:
    @pytest.mark.parametrize(
        ("date_format", "raw", "expected"),
        [
            pytest.param("%Y-%m-%d", "2023-02-28", "2023-02-28", id="iso"),
            pytest.param("%d.%m.%Y", "03.04.2023", "2023-04-03", id="day-first"),
            pytest.param("%m/%d/%Y", "03/04/2023", "2023-03-04", id="month-first"),
            pytest.param(
                "%Y-%m-%dT%H:%M:%S%z", "2012-02-01T00:00:00+0100", "2012-02-01", id="offset"
            ),
            pytest.param("%Y-%m-%d", "0000-00-00", None, id="sentinel"),
            pytest.param("%Y-%m-%d", "", None, id="empty"),
        ],
    )
    def test_valid(self, date_format: str, raw: str, expected: str | None) -> None:
        """Dates read in the declared format become ISO dates; sentinels clear them."""
        subject = mapper(
            fields={**FIELDS, "profile.start": "start_date"},
            date_fields=["start_date"],
            date_format=date_format,
            empty_values=["0000-00-00"],
        )

        result = subject.map(record(subject, **valid(start_date=raw)))

        assert isinstance(result, DesiredUser)
        assert result.fields["profile.start"] == expected

    def test_other_format(self) -> None:
        """A date in another format is an issue; day and month are never guessed."""
        subject = mapper(date_fields=["start_date"])

        issue = only_issue(subject.map(record(subject, **valid(start_date="03/04/2023"))))

        assert issue == RecordIssue(
            line=2,
            key="E1",
            field="start_date",
            value="03/04/2023",
            message=(
                "date '03/04/2023' does not match the declared format %Y-%m-%d; the record is"
                " skipped: fix the export or change [mapping] date_format"
            ),
        )

    def test_impossible_date(self) -> None:
        """A date that does not exist is an issue."""
        subject = mapper(date_fields=["start_date"])

        issue = only_issue(subject.map(record(subject, **valid(start_date="2023-02-30"))))

        assert issue.field == "start_date"
        assert issue.message.startswith("date '2023-02-30' is not a real calendar date")

    def test_unmapped_date_validated(self) -> None:
        """A date field that is not mapped is still checked."""
        subject = mapper(date_fields=["end_date"])

        issue = only_issue(subject.map(record(subject, **valid(end_date="tomorrow"))))

        assert issue.field == "end_date"


class TestEmail:
    @pytest.mark.parametrize(
        "raw",
        ["Ann.Lee@Example.COM", "a+b@sub.example.co.uk", "o'brien@example.ie"],
    )
    def test_valid(self, raw: str) -> None:
        """A valid address is kept with its letter case."""
        subject = mapper()

        result = subject.map(record(subject, **valid(work_email=f" {raw} ")))

        assert isinstance(result, DesiredUser)
        assert result.fields["email"] == raw

    @pytest.mark.parametrize(
        "raw",
        [
            "ann",
            "@example.com",
            "ann@example",
            "ann@@example.com",
            "ann@x@example.com",
            "ann lee@example.com",
            "ann@.com",
            "ann@example.",
            "a@example.com;b@example.com",
        ],
    )
    def test_invalid(self, raw: str) -> None:
        """Anything but one plain address is an issue."""
        subject = mapper()

        issue = only_issue(subject.map(record(subject, **valid(work_email=raw))))

        assert issue.field == "work_email"
        assert issue.value == raw
        assert issue.message.startswith(f"{raw!r} is not a valid e-mail address")

    @pytest.mark.parametrize("raw", ["", None, MISSING], ids=["empty", "null", "missing"])
    def test_required(self, raw: RawValue) -> None:
        """Active records need an address."""
        subject = mapper()

        issue = only_issue(subject.map(record(subject, **valid(work_email=raw))))

        assert issue.message.startswith("the e-mail address 'work_email' is empty")


class TestGroups:
    @pytest.mark.parametrize(
        ("separator", "raw", "expected"),
        [
            pytest.param(
                ",", "Sales, berlin ,,Berlin, sales ,All", ("All", "berlin", "Sales"), id="split"
            ),
            pytest.param(";", "b; a;b", ("a", "b"), id="semicolon"),
            pytest.param(",", [" Zeta ", "alpha", "ZETA"], ("alpha", "Zeta"), id="json-list"),
            pytest.param(",", "", (), id="empty"),
            pytest.param(",", None, (), id="null"),
            pytest.param(",", MISSING, None, id="missing"),
        ],
    )
    def test_groups(self, separator: str, raw: RawValue, expected: tuple[str, ...] | None) -> None:
        """Groups are split, trimmed, de-duplicated ignoring case and sorted."""
        subject = mapper(groups={"field": "teams", "separator": separator})

        result = subject.map(record(subject, **valid(teams=raw)))

        assert isinstance(result, DesiredUser)
        assert result.groups == expected

    def test_not_mapped(self) -> None:
        """Without [mapping.groups] groups are left alone."""
        subject = mapper()

        result = subject.map(record(subject, **valid()))

        assert isinstance(result, DesiredUser)
        assert result.groups is None
