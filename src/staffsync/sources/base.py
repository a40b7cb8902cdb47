"""Types shared by every HR source: raw records, row issues and fatal source errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "MISSING",
    "Missing",
    "RawRecord",
    "RawValue",
    "RecordBatch",
    "RecordIssue",
    "Source",
    "SourceError",
    "batch_records",
]

SEPARATORS = ("\x1c", "\x1d", "\x1e", "\x1f")
"""The ASCII separator characters that :attr:`RecordBatch.plain` rules out."""


def has_separator(text: str) -> bool:
    """Tell whether ``text`` contains one of :data:`SEPARATORS`.

    Four substring tests, each a fast scan for one character, take a fiftieth of the
    time of one regular expression for the four.
    """
    return any(separator in text for separator in SEPARATORS)


BATCH_SIZE = 256
"""Records per :class:`RecordBatch`: enough to pay for the per-batch calls, and few
enough that a batch's objects stay in the processor's cache (at 1M records, 4096 took
1.7 times as long as 256)."""


class Missing:
    """Type of :data:`MISSING`, the value of a field that a JSON record does not contain."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = Missing()
"""A field absent from a record: the person's Staffbase value is left as it is.

Delimited files never produce it, because every row has every column. JSON sources do,
for a key that a record leaves out; ``None`` (JSON ``null``) and ``""`` clear the value.
"""

RawValue = str | list[str] | None | Missing
"""One field of a source record: text, a list of texts (JSON arrays), null, or missing."""


class RawRecord(NamedTuple):
    """One record as read from the source, before validation.

    ``values`` lines up with the field names passed to :meth:`Source.read`. ``line`` is the
    physical 1-based line where the record starts in a delimited file (the header is line
    1), or the 1-based record number in a JSON source. A named tuple rather than a frozen
    dataclass, because a source builds a million of them per run and a tuple is built in
    half the time.
    """

    line: int
    values: tuple[RawValue, ...]


@dataclass(frozen=True, slots=True)
class RecordIssue:
    """A problem with one record: a rejected row, or a warning about one of its fields.

    ``key`` is the employee key when it could be read, ``field`` the source field at fault
    and ``value`` the offending value as read (None when the whole record is at fault).
    """

    line: int
    key: str | None
    field: str | None
    value: str | None
    message: str

    def as_report(self) -> dict[str, object]:
        """Return the run-report form: line, key, field, value and message."""
        return {
            "line": self.line,
            "key": self.key,
            "field": self.field,
            "value": self.value,
            "message": self.message,
        }


class RecordBatch(NamedTuple):
    """Consecutive records of a source, column-wise, and the issues met among them.

    ``lines[i]`` is the line of the record whose values are ``values[i]``. Issues are in
    the order they were met, apart from the records. ``plain`` promises that every value
    is text without NUL and without the ASCII separator characters U+001C to U+001F,
    which spares the planner from checking each value; False promises nothing.
    """

    lines: Sequence[int]
    values: list[tuple[RawValue, ...]]
    issues: list[RecordIssue]
    plain: bool = False


class SourceError(Exception):
    """The source cannot be read as a whole: the run fails and nothing is written.

    ``location`` names the file (and line, where one is at fault) so the message can be
    acted on without opening the code.
    """

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class Source(Protocol):
    """An HR connector that yields raw records one at a time, never the whole export."""

    @property
    def location(self) -> str:
        """Where the records come from, for messages (a file path or a URL)."""
        ...

    def read(self, fields: Sequence[str]) -> Iterator[RawRecord | RecordIssue]:
        """Yield every record with the values of ``fields`` in that order.

        A record that cannot be read as a whole (a row with too many columns, a JSON
        record that is not an object) is yielded as a :class:`RecordIssue` instead.

        Raises:
            SourceError: the source cannot be opened or decoded, or lacks a column that
                ``fields`` names; raised before the first record where that is knowable.
        """
        ...

    def read_batches(self, fields: Sequence[str]) -> Iterator[RecordBatch]:
        """Yield what :meth:`read` yields, in batches of up to :data:`BATCH_SIZE` records.

        The planner reads the export this way: a batch lets it check and hash a few
        hundred records in a few calls instead of a few calls per record.
        """
        ...


def batch_records(items: Iterable[RawRecord | RecordIssue]) -> Iterator[RecordBatch]:
    """Group what a source's :meth:`Source.read` yields into :class:`RecordBatch` objects."""
    lines: list[int] = []
    values: list[tuple[RawValue, ...]] = []
    issues: list[RecordIssue] = []
    for item in items:
        if isinstance(item, RecordIssue):
            issues.append(item)
            continue
        lines.append(item.line)
        values.append(item.values)
        if len(values) >= BATCH_SIZE:
            yield RecordBatch(lines, values, issues)
            lines, values, issues = [], [], []
    if values or issues:
        yield RecordBatch(lines, values, issues)
