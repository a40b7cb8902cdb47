"""Tests for reading delimited exports: encodings, delimiters, quoting, headers and rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from staffsync.sources import DelimitedSource, RawRecord, RecordIssue, SourceError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from staffsync.sources import Source

HR_DATA = Path(__file__).parents[1] / "data" / "hr"


def source(name: str, **options: Any) -> DelimitedSource:
    return DelimitedSource(HR_DATA / name, **options)


def read_all(source: Source, fields: Sequence[str]) -> list[RawRecord | RecordIssue]:
    return list(source.read(fields))


class TestEncodings:
    @pytest.mark.parametrize(
        ("name", "options", "fields", "expected"),
        [
            pytest.param(
                "bom_utf8.csv",
                {"encoding": "utf-8"},
                ["employee_id", "first_name"],
                [RawRecord(2, ("E1", "Renée"))],
                id="utf8-bom-declared-utf8",
            ),
            pytest.param(
                "bom_utf8.csv",
                {"encoding": "utf-8-sig"},
                ["employee_id", "first_name"],
                [RawRecord(2, ("E1", "Renée"))],
                id="utf8-bom-declared-utf8-sig",
            ),
            pytest.param(
                "cp1252.csv",
                {"encoding": "cp1252"},
                ["employee_id", "first_name", "department"],
                [
                    RawRecord(2, ("E1", "Renée", "Français")),
                    RawRecord(3, ("E2", "Zoë", "€ Finance")),
                ],
                id="cp1252",
            ),
            pytest.param(
                "cp1252_bom.csv",
                {"encoding": "cp1252"},
                ["employee_id", "first_name"],
                [RawRecord(2, ("E1", "Renée"))],
                id="cp1252-with-utf8-bom",
            ),
            pytest.param(
                "utf16.csv",
                {"encoding": "utf-16", "delimiter": "\t"},
                ["employee_id", "first_name"],
                [RawRecord(2, ("E1", "Renée")), RawRecord(3, ("E2", "Zoë"))],
                id="utf16-bom",
            ),
            pytest.param(
                "utf16.csv",
                {"encoding": "utf-16-le", "delimiter": "auto"},
                ["employee_id", "first_name"],
                [RawRecord(2, ("E1", "Renée")), RawRecord(3, ("E2", "Zoë"))],
                id="utf16le-declared-bom-dropped",
            ),
        ],
    )
    def test_declared_encoding(
        self, name: str, options: dict[str, object], fields: list[str], expected: list[RawRecord]
    ) -> None:
        """Values decode exactly in the declared encoding and a leading BOM is ignored."""
        assert read_all(source(name, **options), fields) == expected

    def test_cp1252_declared_utf8(self) -> None:
        """A Windows-1252 file read as UTF-8 fails naming line, byte and the likely encoding."""
        with pytest.raises(SourceError) as caught:
            read_all(source("cp1252.csv"), ["employee_id"])

        message = str(caught.value)
        assert str(HR_DATA / "cp1252.csv") in message
        assert "line 2 " in message
        assert "byte 0xE9" in message
        assert 'encoding = "cp1252"' in message

    def test_decode_error_line_past_chunks(self, tmp_path: Path) -> None:
        """The reported line is exact when the bad byte lies far beyond the first read."""
        path = tmp_path / "late.csv"
        rows = b"".join(b"E%d,Name%d\r\n" % (n, n) for n in range(120_000))
        path.write_bytes(b"employee_id,first_name\r\n" + rows + b"E120000,Ren\xe9e\r\n")

        with pytest.raises(SourceError, match=r"line 120002 is not valid utf-8: byte 0xE9"):
            read_all(DelimitedSource(path), ["employee_id"])

    def test_utf16_bom_declared_utf8(self) -> None:
        """A UTF-16 file declared UTF-8 fails before any record, naming utf-16."""
        with pytest.raises(SourceError, match='set encoding = "utf-16"'):
            read_all(source("utf16.csv"), ["employee_id"])

    def test_suggests_utf8(self, tmp_path: Path) -> None:
        """A UTF-8 file that does not decode as the declared encoding suggests UTF-8."""
        path = tmp_path / "utf8.csv"
        path.write_bytes("employee_id\nÁ\n".encode())  # 0xC3 0x81: 0x81 is unassigned in cp1252

        with pytest.raises(SourceError, match=r'line 2 .* byte 0x81.*encoding = "utf-8"'):
            read_all(DelimitedSource(path, encoding="cp1252"), ["employee_id"])


class TestDelimiters:
    @pytest.mark.parametrize(
        ("name", "delimiter"),
        [
            pytest.param("semicolon.csv", ";", id="semicolon"),
            pytest.param("semicolon.csv", "auto", id="auto-semicolon"),
            pytest.param("tab.tsv", "\t", id="tab"),
            pytest.param("tab.tsv", "auto", id="auto-tab"),
        ],
    )
    def test_delimiter(self, name: str, delimiter: str) -> None:
        """Declared and detected delimiters split rows the same way."""
        records = read_all(source(name, delimiter=delimiter), ["employee_id", "department"])

        assert records[0] == RawRecord(2, ("E1", "Sales, EMEA"))

    def test_auto_keeps_quoted_delimiter(self) -> None:
        """A quoted delimiter stays inside its value."""
        records = read_all(source("semicolon.csv", delimiter="auto"), ["first_name"])

        assert records[1] == RawRecord(3, ("Bob; Jr",))

    def test_auto_pipe(self) -> None:
        """Auto detection also recognises the pipe."""
        records = read_all(source("pipe.csv", delimiter="auto"), ["employee_id", "department"])

        assert records == [RawRecord(2, ("E1", "Sales"))]

    def test_wrong_delimiter_hint(self) -> None:
        """A single-column header names the delimiter that would split it."""
        with pytest.raises(SourceError) as caught:
            read_all(source("semicolon.csv"), ["employee_id", "department"])

        message = str(caught.value)
        assert "lacks the columns ['employee_id', 'department']" in message
        assert "unused header columns: ['employee_id;first_name;department']" in message
        assert "delimiter is probably ';'" in message
        assert 'delimiter = ";"' in message

    def test_wrong_delimiter_hint_tab(self) -> None:
        """The tab hint is written as a TOML escape."""
        with pytest.raises(SourceError, match=r'delimiter = "\\t"'):
            read_all(source("tab.tsv", delimiter=";"), ["employee_id"])


class TestQuoting:
    def test_quoted_values(self) -> None:
        """Quoted delimiters, doubled quotes and line breaks are read exactly."""
        records = read_all(source("quoted.csv"), ["employee_id", "title", "note"])

        assert records == [
            RawRecord(2, ("E1", "Head of Sales, EMEA", 'She said "hi"')),
            RawRecord(3, ("E2", "Engineer", "first line\nsecond line")),
            RawRecord(5, ("E3", "Designer", "plain")),
            RawRecord(6, ("E4", 'Lead\nmulti, "quoted"\nthree lines', "end")),
            RawRecord(9, ("E5", "Analyst", "last")),
        ]

    def test_crlf_in_quotes(self) -> None:
        """In a CRLF file a quoted line break keeps its bytes and lines still count right."""
        records = read_all(source("crlf.csv"), ["employee_id", "note"])

        assert records == [
            RawRecord(2, ("E1", "one")),
            RawRecord(4, ("E2", "two\r\nlines")),
            RawRecord(6, ("E3", "three")),
        ]

    def test_cr_only(self) -> None:
        """Carriage returns alone end lines."""
        records = read_all(source("cr_only.csv"), ["employee_id", "first_name"])

        assert records == [RawRecord(2, ("E1", "Ann")), RawRecord(3, ("E2", "Bob"))]

    def test_unclosed_quote(self) -> None:
        """A quote never closed fails the file instead of swallowing the rows after it."""
        with pytest.raises(SourceError, match="line 3 opens a quoted value that is never closed"):
            read_all(source("unclosed_quote.csv"), ["employee_id"])

    def test_bad_quoting(self) -> None:
        """Text after a closing quote rejects that row only."""
        records = read_all(source("bad_quoting.csv"), ["employee_id", "first_name"])

        assert len(records) == 2
        issue = records[0]
        assert isinstance(issue, RecordIssue)
        assert issue.line == 2
        assert "the row cannot be parsed" in issue.message
        assert records[1] == RawRecord(3, ("E2", "Bob"))


class TestHeader:
    def test_case_and_whitespace(self) -> None:
        """Header names match ignoring case and surrounding spaces; trailing empties are ignored."""
        records = read_all(source("messy_header.csv"), ["employee_id", "first_name", "work_email"])

        assert records[:3] == [
            RawRecord(2, ("E1", "Ann", "ann@example.com")),
            RawRecord(3, ("E2", "Bob", "bob@example.com")),
            RawRecord(4, ("E3", "Cem", "cem@example.com")),
        ]

    def test_value_in_unnamed_column(self) -> None:
        """A value under an empty trailing header cell rejects the row."""
        issue = read_all(source("messy_header.csv"), ["employee_id"])[3]

        assert issue == RecordIssue(
            line=5,
            key="E4",
            field=None,
            value=None,
            message=(
                "the row has 5 values but the header has 3 columns; the row is skipped:"
                " quote values that contain the delimiter ','"
            ),
        )

    def test_two_header_rows(self) -> None:
        """header_rows = 2 skips the label row; lines still count from the file's top."""
        records = read_all(
            source("successfactors_udf.csv", header_rows=2), ["USERID", "STATUS", "MANAGER"]
        )

        assert records == [
            RawRecord(3, ("1001", "active", "NO_MANAGER")),
            RawRecord(4, ("1002", "inactive", "1001")),
        ]

    def test_duplicate_name(self) -> None:
        """A column named twice (ignoring case) fails the file."""
        with pytest.raises(SourceError, match=r"names column 'email' twice \(columns 2 and 4\)"):
            read_all(source("duplicate_header.csv"), ["employee_id"])

    def test_bad_header_quoting(self, tmp_path: Path) -> None:
        """A header that cannot be parsed fails the file naming its line."""
        path = tmp_path / "header.csv"
        path.write_text('employee_id,"name"x\nE1,Ann\n', encoding="utf-8")

        with pytest.raises(SourceError, match="header line 1 cannot be parsed"):
            read_all(DelimitedSource(path), ["employee_id"])

    def test_missing_columns(self) -> None:
        """Missing columns fail before the first record, listing the unused ones."""
        records = source("basic.csv").read(["employee_id", "mail", "dept"])

        with pytest.raises(SourceError) as caught:
            next(records)

        message = str(caught.value)
        assert "lacks the columns ['mail', 'dept']" in message
        assert (
            "unused header columns: ['first_name', 'last_name', 'work_email', 'title',"
            " 'department', 'location', 'manager_id', 'status', 'start_date']"
        ) in message
        assert "delimiter" not in message

    def test_header_only(self) -> None:
        """A header without rows reads as no records."""
        assert read_all(source("header_only.csv"), ["employee_id"]) == []

    def test_empty_file(self) -> None:
        """An empty file fails: it has no header to check."""
        with pytest.raises(SourceError, match="the file is empty"):
            read_all(source("empty.csv"), ["employee_id"])

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that does not exist fails naming the path."""
        path = tmp_path / "nope.csv"

        with pytest.raises(SourceError, match=r"nope\.csv: the file does not exist"):
            read_all(DelimitedSource(path), ["employee_id"])


class TestRows:
    def test_ragged_rows(self) -> None:
        """Short and long rows become issues naming counts and key; blank rows are skipped."""
        records = read_all(source("ragged.csv"), ["employee_id", "department"])

        assert records == [
            RawRecord(2, ("E1", "Sales")),
            RecordIssue(
                line=3,
                key="E2",
                field=None,
                value=None,
                message=(
                    "the row has 2 values but the header has 3 columns; the row is skipped:"
                    " a value may be missing, or a line break in a value may lack quotes"
                ),
            ),
            RecordIssue(
                line=4,
                key="E3",
                field=None,
                value=None,
                message=(
                    "the row has 4 values but the header has 3 columns; the row is skipped:"
                    " quote values that contain the delimiter ','"
                ),
            ),
            RawRecord(5, ("E4", "Legal")),
            RawRecord(8, ("E5", "IT")),
        ]

    def test_leading_zeros_kept(self) -> None:
        """Ids are read as text: 0042 and 42 stay apart."""
        records = read_all(source("basic.csv"), ["employee_id"])

        assert records == [RawRecord(2, ("0042",)), RawRecord(3, ("42",)), RawRecord(4, ("E7",))]

    def test_field_order(self) -> None:
        """Values come in the order of the requested fields, not of the header."""
        records = read_all(source("basic.csv"), ["status", "employee_id", "status"])

        assert records[0] == RawRecord(2, ("active", "0042", "active"))

    def test_raw_values_untrimmed(self) -> None:
        """The source hands values over as written; trimming is the mapping's job."""
        records = read_all(source("unicode_whitespace.csv"), ["employee_id", "last_name"])

        assert records == [RawRecord(2, ("\u00a0E1\u00a0", "\u200bMu\u0308ller\ufeff"))]
