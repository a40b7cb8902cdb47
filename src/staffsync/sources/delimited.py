"""Delimited text exports (CSV, semicolon or tab separated), as Excel and HR systems write them."""

from __future__ import annotations

import csv
import itertools
import operator
import unicodedata
from typing import TYPE_CHECKING, NamedTuple

from staffsync.sources.base import (
    BATCH_SIZE,
    RawRecord,
    RawValue,
    RecordBatch,
    RecordIssue,
    SourceError,
    has_separator,
)
from staffsync.sources.decoding import describe_decode_error, open_text

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Sequence
    from pathlib import Path
    from typing import TypeAlias

    _Picker: TypeAlias = Callable[[list[str]], tuple[str, ...]]

__all__ = ["AUTO_DELIMITERS", "DelimitedSource"]

AUTO_DELIMITERS = (",", ";", "\t", "|")
"""Delimiters that ``delimiter = "auto"`` chooses from, preferred in this order on a tie."""


_STRIP_NEWLINE = operator.methodcaller("rstrip", "\r\n")


class _Layout(NamedTuple):
    """The position of a delimited file's data, and how its rows are split and picked."""

    consumed: int
    """Lines read before the first data line: blank lines and the header."""
    width: int
    indexes: list[int]
    delimiter: str


def normalize_column(name: str) -> str:
    """Return the form in which header names and requested fields are compared."""
    return unicodedata.normalize("NFC", name).strip().strip("\ufeff\u200b").casefold()


def _toml_string(value: str) -> str:
    return '"\\t"' if value == "\t" else f'"{value}"'


class DelimitedSource:
    """Reads a delimited file with one header line (two with ``header_rows = 2``).

    Rows are streamed through the csv module, so only the current record is in memory.
    Blank lines, and rows whose cells are all empty, are skipped.
    """

    def __init__(
        self,
        path: Path,
        *,
        encoding: str = "utf-8",
        delimiter: str = ",",
        header_rows: int = 1,
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.header_rows = header_rows

    @property
    def location(self) -> str:
        """The file path, for messages."""
        return str(self.path)

    def read(self, fields: Sequence[str]) -> Iterator[RawRecord | RecordIssue]:
        """Yield each data row's values for ``fields``; the first field names the employee key.

        Raises:
            SourceError: the file cannot be opened or decoded, its header lacks a field
                or repeats a name, or a quoted value is never closed.
        """
        text, _ = open_text(self.path, self.encoding)
        with text:
            try:
                layout = self._read_header(text, fields)
                yield from self._iter_rows(text, text, layout)
            except UnicodeDecodeError:
                raise describe_decode_error(self.path, self.encoding) from None

    def read_batches(self, fields: Sequence[str]) -> Iterator[RecordBatch]:
        """Yield what :meth:`read` yields, a few hundred lines at a time.

        A batch of lines without a quote character, each as wide as the header and with
        a key, is split and picked in a handful of calls for the whole batch. Any other
        batch is read line by line, exactly as :meth:`read` reads it.
        """
        text, _ = open_text(self.path, self.encoding)
        with text:
            try:
                layout = self._read_header(text, fields)
                yield from self._iter_batches(text, layout)
            except UnicodeDecodeError:
                raise describe_decode_error(self.path, self.encoding) from None

    def _read_header(self, lines: Iterator[str], fields: Sequence[str]) -> _Layout:
        """Read the header line (two with ``header_rows = 2``) and place ``fields`` in it."""
        skipped, first = _first_nonblank_line(lines)
        if first is None:
            msg = "the file is empty; expected a header line naming the columns"
            raise SourceError(msg, location=self.location)

        delimiter = _detect_delimiter(first) if self.delimiter == "auto" else self.delimiter
        reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
        header = [name.strip() for name in self._header_row(reader, skipped + 1)]
        while header and not header[-1]:
            header.pop()
        if not header:
            msg = f"line {skipped + 1}, the header, names no columns; the first line must name them"
            raise SourceError(msg, location=self.location)
        indexes = self._resolve_columns(header, fields, first, delimiter)
        if self.header_rows == 2:
            self._header_row(reader, reader.line_num + skipped + 1)

        # The csv module reads only the lines a record needs, so ``lines`` now stands at
        # the first data line.
        return _Layout(reader.line_num + skipped, len(header), indexes, delimiter)

    def _header_row(self, reader: Iterator[list[str]], line: int) -> list[str]:
        try:
            return next(reader, [])
        except csv.Error as exc:
            msg = f"header line {line} cannot be parsed ({exc}); fix the quotes on that line"
            raise SourceError(msg, location=self.location) from None

    def _iter_rows(
        self, lines: Iterator[str], more: Iterator[str], layout: _Layout
    ) -> Generator[RawRecord | RecordIssue, None, int]:
        """Yield the records of ``lines``, which follow the ``layout.consumed`` lines read.

        A line without a quote character is one whole record whose cells are exactly the
        text between delimiters, so it is split directly, which is faster than the csv
        module. Every other line goes through the csv module, which takes the lines a
        quoted value continues onto from ``more``. Returns the number of the last line read.
        """
        pick = _picker(layout.indexes)
        key_index = layout.indexes[0] if layout.indexes else 0
        width = layout.width
        delimiter = layout.delimiter
        # The tuple constructor builds the named tuple without its Python-level __new__.
        make = tuple.__new__
        line = layout.consumed

        for text in lines:
            line += 1
            start = line
            if '"' in text or "\0" in text:
                rest = itertools.chain([text], more)
                parser = csv.reader(rest, delimiter=delimiter, strict=True)
                try:
                    row = next(parser)
                except csv.Error as exc:
                    line += parser.line_num - 1
                    yield self._parse_issue(start, exc, delimiter)
                    continue
                line += parser.line_num - 1
            else:
                stripped = text.rstrip("\r\n")
                row = stripped.split(delimiter) if stripped else []

            if len(row) == width and (row[key_index] or any(row)):
                yield make(RawRecord, (start, pick(row)))
            elif len(row) != width and any(cell.strip() for cell in row):
                yield self._check_width(
                    start, row, width, key_index, pick=pick, delimiter=delimiter
                )
        return line

    def _iter_batches(self, lines: Iterator[str], layout: _Layout) -> Iterator[RecordBatch]:
        pick = _picker(layout.indexes)
        has_key = operator.itemgetter(layout.indexes[0] if layout.indexes else 0)
        split = operator.methodcaller("split", layout.delimiter)
        line = layout.consumed

        while chunk := list(itertools.islice(lines, BATCH_SIZE)):
            joined = "".join(chunk)
            if '"' not in joined and "\0" not in joined:
                rows = list(map(split, map(_STRIP_NEWLINE, chunk)))
                if set(map(len, rows)) == {layout.width} and all(map(has_key, rows)):
                    first = line + 1
                    plain = not has_separator(joined)
                    picked: list[tuple[RawValue, ...]] = list(map(pick, rows))
                    yield RecordBatch(range(first, first + len(rows)), picked, [], plain)
                    line += len(rows)
                    continue

            # Line by line; a quoted value may continue past the end of the chunk.
            numbers: list[int] = []
            values: list[tuple[RawValue, ...]] = []
            issues: list[RecordIssue] = []
            pending = iter(chunk)
            rows_read = self._iter_rows(
                pending, itertools.chain(pending, lines), layout._replace(consumed=line)
            )
            while True:
                try:
                    item = next(rows_read)
                except StopIteration as end:
                    line = end.value
                    break
                if isinstance(item, RecordIssue):
                    issues.append(item)
                else:
                    numbers.append(item.line)
                    values.append(item.values)
            yield RecordBatch(numbers, values, issues)

    def _check_width(
        self,
        line: int,
        row: list[str],
        width: int,
        key_index: int,
        *,
        pick: _Picker,
        delimiter: str,
    ) -> RawRecord | RecordIssue:
        # Excel pads rows with empty cells up to the widest row: those are not values.
        if len(row) > width and not any(cell.strip() for cell in row[width:]):
            return RawRecord(line, pick(row))

        key = row[key_index].strip() if key_index < len(row) else ""
        if len(row) > width:
            advice = f"quote values that contain the delimiter {delimiter!r}"
        else:
            advice = "a value may be missing, or a line break in a value may lack quotes"
        message = (
            f"the row has {len(row)} values but the header has {width} columns;"
            f" the row is skipped: {advice}"
        )
        return RecordIssue(line=line, key=key or None, field=None, value=None, message=message)

    def _parse_issue(self, line: int, exc: csv.Error, delimiter: str) -> RecordIssue:
        reason = str(exc)
        if "unexpected end of data" in reason:
            msg = (
                f"line {line} opens a quoted value that is never closed, so the rest of the"
                " file would be read as one value; fix the quotes on that line"
            )
            raise SourceError(msg, location=self.location)
        if "field larger than field limit" in reason:
            msg = (
                f"a value starting on line {line} is longer than {csv.field_size_limit()}"
                " characters; an opening quote without a closing quote usually causes this"
            )
            raise SourceError(msg, location=self.location)

        message = (
            f"the row cannot be parsed ({reason}); the row is skipped: a quoted value must be"
            f" followed by the delimiter {delimiter!r}, and quotes inside it must be doubled"
        )
        return RecordIssue(line=line, key=None, field=None, value=None, message=message)

    def _resolve_columns(
        self,
        header: list[str],
        fields: Sequence[str],
        first_line: str,
        delimiter: str,
    ) -> list[int]:
        positions: dict[str, int] = {}
        for index, name in enumerate(header):
            normalized = normalize_column(name)
            if not normalized:
                continue
            if normalized in positions:
                msg = (
                    f"the header names column {name!r} twice (columns {positions[normalized] + 1}"
                    f" and {index + 1}); rename one so that each field has one source"
                )
                raise SourceError(msg, location=self.location)
            positions[normalized] = index

        wanted = [normalize_column(field) for field in fields]
        missing = [
            field for field, name in zip(fields, wanted, strict=True) if name not in positions
        ]
        if missing:
            raise self._missing_columns_error(missing, header, set(wanted), first_line, delimiter)
        return [positions[name] for name in wanted]

    def _missing_columns_error(
        self,
        missing: list[str],
        header: list[str],
        wanted: set[str],
        first_line: str,
        delimiter: str,
    ) -> SourceError:
        unused = [name for name in header if name and normalize_column(name) not in wanted]
        parts = [
            f"the header lacks the columns {missing!r} that [mapping] reads",
            f"unused header columns: {unused!r}" if unused else "the header has no other columns",
        ]

        if len(header) == 1:
            better = _better_delimiter(first_line, delimiter)
            if better is not None:
                parts.append(
                    f"the header is a single column, so the delimiter is probably {better!r}"
                    f" rather than {delimiter!r}: set [source] delimiter = {_toml_string(better)}"
                    ' or "auto"'
                )
        if any("\x00" in name for name in header):
            parts.append('the header contains NUL characters: set [source] encoding = "utf-16"')

        msg = "; ".join(parts)
        return SourceError(msg, location=self.location)


def _first_nonblank_line(lines: Iterator[str]) -> tuple[int, str | None]:
    """Return how many blank lines precede the first other line, and that line."""
    skipped = 0
    for line in lines:
        text = line.removeprefix("\ufeff") if skipped == 0 else line
        if text.strip():
            return skipped, text
        skipped += 1
    return skipped, None


def _detect_delimiter(header_line: str) -> str:
    """Pick the delimiter for ``delimiter = "auto"``; ``","`` when no candidate splits the line."""
    return _better_delimiter(header_line, None) or ","


def _better_delimiter(header_line: str, current: str | None) -> str | None:
    """Return the candidate other than ``current`` that splits the header into the most columns."""
    best: str | None = None
    best_width = 1
    for candidate in AUTO_DELIMITERS:
        if candidate == current:
            continue
        width = len(next(csv.reader([header_line], delimiter=candidate), []))
        if width > best_width:
            best, best_width = candidate, width
    return best


def _picker(indexes: list[int]) -> _Picker:
    """Return a function that takes the wanted cells of a row, in the wanted order."""
    if not indexes:
        return lambda row: ()
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    getter: _Picker = operator.itemgetter(*indexes)
    return getter
