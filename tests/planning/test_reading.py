"""Batch reading: the quick whole-batch paths give what the record-by-record paths give."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pytest

from staffsync.mapping import RecordMapper
from staffsync.planning.reading import RecordComparer
from staffsync.planning.staging import encode_values, record_hasher
from staffsync.settings import MappingSettings
from staffsync.sources import MISSING, DelimitedSource, JsonSource, RawRecord, RecordIssue
from staffsync.sources import delimited as delimited_module
from staffsync.sources.base import RecordBatch, batch_records

if TYPE_CHECKING:
    from pathlib import Path

    from staffsync.sources.base import RawValue

SALT = b"s" * 32
FIELDS = {"firstName": "first_name", "email": "work_email"}
HEADER = "employee_id,first_name,work_email\n"


def mapper(**settings: object) -> RecordMapper:
    settings.setdefault("fields", FIELDS)
    return RecordMapper(MappingSettings(**settings))  # type: ignore[arg-type]


def flatten(batches: list[RecordBatch]) -> list[RawRecord | RecordIssue]:
    items: list[RawRecord | RecordIssue] = []
    for batch in batches:
        items.extend(batch.issues)
        pairs = zip(batch.lines, batch.values, strict=True)
        items.extend(RawRecord(line, values) for line, values in pairs)
    return sorted(items, key=lambda item: item.line)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8", newline="")
    return path


class TestDelimitedBatches:
    ROWS: ClassVar[list[str]] = [
        "E1,Ann,ann@example.com\n",
        "E2,Bob,bob@example.com\r\n",
        "\n",
        'E3,"Cara\nMarie",cara@example.com\n',
        ",,\n",
        "E4,Dan\n",
        'E5,"Eve, Jr.","eve@example.com"\n',
        ",Fay,fay@example.com\n",
        "E6,Gus,gus@example.com,,\n",
        "E7,Hal,hal@example.com,x\n",
        'E8,"Ivy ""I""",ivy@example.com\n',
        "E9,Jo,jo@example.com\n",
    ]

    @pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 5, 100])
    def test_batches_equal_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int
    ) -> None:
        """Every batch size gives read()'s records and issues, also when a quoted value
        continues past the end of a batch."""
        monkeypatch.setattr(delimited_module, "BATCH_SIZE", batch_size)
        path = write(tmp_path, HEADER + "".join(self.ROWS))
        fields = ["employee_id", "first_name", "work_email"]

        expected = list(DelimitedSource(path).read(fields))
        batches = list(DelimitedSource(path).read_batches(fields))

        assert flatten(batches) == expected
        assert RawRecord(5, ("E3", "Cara\nMarie", "cara@example.com")) in expected
        assert RawRecord(14, ("E9", "Jo", "jo@example.com")) in expected
        assert [issue.line for issue in expected if isinstance(issue, RecordIssue)] == [8, 12]

    def test_plain_batch_is_split_whole(self, tmp_path: Path) -> None:
        """Lines without quotes, all as wide as the header, come as one batch of line numbers."""
        path = write(tmp_path, HEADER + "E1,Ann,a@x.io\nE2,Bob,b@x.io\n")

        (batch,) = DelimitedSource(path).read_batches(["work_email", "employee_id"])

        assert batch.lines == range(2, 4)
        assert batch.values == [("a@x.io", "E1"), ("b@x.io", "E2")]
        assert batch.issues == []

    def test_separator_characters_are_flagged(self, tmp_path: Path) -> None:
        """A batch is plain only when no value contains an ASCII separator character."""
        plain = write(tmp_path, HEADER + "E1,Ann,a@x.io\n")
        marked = tmp_path / "marked.csv"
        marked.write_text(HEADER + "E1,A\x1fnn,a@x.io\n", encoding="utf-8", newline="")
        fields = ["employee_id", "first_name"]

        (first,) = DelimitedSource(plain).read_batches(fields)
        (second,) = DelimitedSource(marked).read_batches(fields)

        assert first.plain is True
        assert second.plain is False
        assert second.values == [("E1", "A\x1fnn")]


class TestJsonBatches:
    def test_batches_equal_read(self, tmp_path: Path) -> None:
        path = tmp_path / "export.json"
        path.write_text(
            '[{"employee_id": "E1", "first_name": null}, 7, {"employee_id": "E2"}]',
            encoding="utf-8",
        )
        fields = ["employee_id", "first_name"]

        expected = list(JsonSource(path).read(fields))
        batches = list(JsonSource(path).read_batches(fields))

        assert flatten(batches) == expected
        assert expected[0] == RawRecord(1, ("E1", None))
        assert expected[2] == RawRecord(3, ("E2", MISSING))


def batch(rows: list[tuple[int, tuple[RawValue, ...]]], *, plain: bool = False) -> RecordBatch:
    return RecordBatch([line for line, _ in rows], [values for _, values in rows], [], plain)


def stored(values: tuple[RawValue, ...]) -> bytes:
    return record_hasher(SALT)(encode_values(values))


class TestRecordComparer:
    BATCHES: ClassVar[list[list[tuple[int, tuple[RawValue, ...]]]]] = [
        # Plain and clean: compared whole.
        [(2, ("E1", "Ann", "ann@x.io")), (3, ("E2", "Bob", "bob@x.io"))],
        # Keys to trim and normalize, and an empty key.
        [(4, (" E3 ", "Cara", "cara@x.io")), (5, ("", "Nobody", "n@x.io"))],
        # A key seen in an earlier batch, and one twice within this one.
        [(6, ("E1", "Ann", "ann@x.io")), (7, ("E4", "Dan", "d@x.io")), (8, ("E4", "D", "d@x.io"))],
        # A value that is not text, and a value holding the field separator.
        [(9, ("E5", None, "e@x.io")), (10, ("E6", "a\x1fb", "f@x.io"))],
        # An empty value.
        [(11, ("N/A", "Gus", "g@x.io"))],
    ]

    def state(self) -> dict[str, bytes | int]:
        return {
            "E1": stored(("E1", "Ann", "ann@x.io")),
            "E2": stored(("E2", "Robert", "bob@x.io")),
            "E6": stored(("E6", "a\x1fb", "f@x.io")),
            "E9": b"",
        }

    @pytest.mark.parametrize("indexed", [True, False])
    def test_whole_batches_equal_record_by_record(self, indexed: bool) -> None:
        records = mapper(empty_values=["N/A"])
        quick = RecordComparer(records, SALT, self.state() if indexed else None)
        careful = RecordComparer(records, SALT, self.state() if indexed else None)

        for rows in self.BATCHES:
            assert quick.compare(batch(rows)) == careful._compare_each(batch(rows))
        joiners = [(12, ("E7", "Hal", "h@x.io")), (13, ("E8", "Ivy", "i@x.io"))]
        assert quick.compare(batch(joiners, plain=True)) == careful._compare_each(batch(joiners))

        assert (quick.records, quick.unchanged) == (careful.records, careful.unchanged)
        assert quick.duplicates == careful.duplicates
        assert quick.index == careful.index

    def test_result(self) -> None:
        """Unchanged records are left out, changed and new ones staged, duplicates noted."""
        comparer = RecordComparer(mapper(empty_values=["N/A"]), SALT, self.state())
        staged: list[tuple[object, ...]] = []
        rejected: list[RecordIssue] = []
        for rows in self.BATCHES:
            batch_rows, _, batch_rejected = comparer.compare(batch(rows))
            staged.extend(batch_rows)
            rejected.extend(batch_rejected)

        assert [(row[0], row[1]) for row in staged] == [
            (3, "E2"),
            (4, "E3"),
            (7, "E4"),
            (9, "E5"),
        ]
        assert [(issue.line, issue.field, issue.value) for issue in rejected] == [
            (5, "employee_id", ""),
            (11, "employee_id", "N/A"),
        ]
        assert comparer.duplicates == {"E1": [2, 6], "E4": [7, 8]}
        assert (comparer.records, comparer.unchanged) == (8, 2)
        assert comparer.index is not None
        assert comparer.index["E9"] == b""

    def test_batch_records_groups_by_size(self) -> None:
        items: list[RawRecord | RecordIssue] = [RawRecord(n, (f"E{n}",)) for n in range(1, 601)]
        batches = list(batch_records(items))

        assert [len(b.values) for b in batches] == [256, 256, 88]
        assert batches[2].lines[0] == 513
