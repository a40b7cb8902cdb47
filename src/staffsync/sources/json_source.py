"""JSON exports: a list of records, a list inside a wrapper object, or JSON Lines.

Workday RaaS wraps its rows in ``{"Report_Entry": [...]}``, BambooHR in ``employees`` and
Personio in ``data``; ``records_path`` names that list. Documents are parsed with ijson, so
only the current record is held in memory.
"""

from __future__ import annotations

import codecs
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, BinaryIO

import ijson  # type: ignore[import-untyped]
import structlog

from staffsync.sources.base import (
    MISSING,
    RawRecord,
    RawValue,
    RecordBatch,
    RecordIssue,
    SourceError,
    batch_records,
)
from staffsync.sources.decoding import describe_decode_error, is_utf8, open_binary, open_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path
    from typing import TypeAlias

    Lookup: TypeAlias = Callable[[dict[str, Any]], Any]

__all__ = ["JSON_LINES_SUFFIXES", "JsonSource"]

logger = structlog.get_logger(__name__)

JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})
"""File name endings read as JSON Lines without looking at the content."""

_BUFFER_SIZE = 64 * 1024
_SNIFF_CHARS = 1 << 20
_SHOWN_VALUE_CHARS = 200
_LISTED_PATHS = 10


class NotAnObject:
    """Result of a dotted path that runs into a value that is not an object."""

    def __init__(self, prefix: str, value: object) -> None:
        self.prefix = prefix
        self.value = value


class JsonSource:
    """Reads records from a JSON document or a JSON Lines file.

    Values become text as the mapping expects: strings as they are, numbers and booleans
    as their JSON text (``42``, ``true``), ``null`` as None, an absent key as
    :data:`MISSING` and an array of scalars as a list of texts. A field name with dots is
    a path into nested objects (``office.name``); a ``null`` on the way reads as None.
    """

    def __init__(
        self,
        path: Path,
        *,
        encoding: str = "utf-8",
        records_path: str = "",
        json_lines: bool | None = None,
    ) -> None:
        """Create the source; ``json_lines=None`` detects JSON Lines from the file."""
        self.path = path
        self.encoding = encoding
        self.records_path = records_path.strip(".")
        self.json_lines = json_lines

    @property
    def location(self) -> str:
        """The file path, for messages."""
        return str(self.path)

    def read_batches(self, fields: Sequence[str]) -> Iterator[RecordBatch]:
        """Yield what :meth:`read` yields, in batches."""
        return batch_records(self.read(fields))

    def read(self, fields: Sequence[str]) -> Iterator[RawRecord | RecordIssue]:
        """Yield each record's values for ``fields``; the first field names the employee key.

        A record that is not an object, or whose field contains an object or an array of
        objects, is yielded as one :class:`RecordIssue`.

        Raises:
            SourceError: the file cannot be opened or decoded, is not valid JSON, or
                ``records_path`` does not lead to a list.
        """
        lookups = [self.lookup_for(field) for field in fields]
        unseen = set(fields)
        number = 0

        for number, record in enumerate(self._records(), start=1):
            if not isinstance(record, dict):
                yield _not_an_object_issue(number, record)
                continue

            values = [lookup(record) for lookup in lookups]
            if unseen:
                unseen.difference_update(
                    field
                    for field, value in zip(fields, values, strict=True)
                    if value is not MISSING
                )
            yield _to_raw_record(number, fields, values)

        if unseen and number:
            # Usually a misspelt field name; its values would be left as they are forever.
            logger.warning(
                "source_field_never_present", source=self.location, fields=sorted(unseen)
            )

    def lookup_for(self, field: str) -> Lookup:
        """Return a function that reads ``field`` from a record, as raw JSON."""
        if "." not in field:
            return lambda record: record.get(field, MISSING)
        return lambda record: _lookup_path(record, field)

    def _records(self) -> Iterator[object]:
        json_lines = self.json_lines
        if json_lines is None:
            json_lines = self.path.suffix.lower() in JSON_LINES_SUFFIXES or self._looks_like_lines()
        if json_lines:
            return self._read_lines()
        return self._read_document()

    def _looks_like_lines(self) -> bool:
        """Tell whether the file starts with one whole object on its first line and goes on."""
        if self.records_path:
            return False
        text, _ = open_text(self.path, self.encoding)
        with text:
            try:
                head = text.read(_SNIFF_CHARS).lstrip("\ufeff \t\r\n")
            except UnicodeDecodeError:
                raise describe_decode_error(self.path, self.encoding) from None

        first, _, rest = head.partition("\n")
        if not first.startswith("{") or not rest.strip():
            return False
        try:
            return isinstance(json.loads(first), dict)
        except ValueError:
            return False

    def _read_lines(self) -> Iterator[object]:
        text, _ = open_text(self.path, self.encoding)
        with text:
            try:
                for line_number, line in enumerate(text, start=1):
                    content = line.removeprefix("\ufeff") if line_number == 1 else line
                    content = content.rstrip("\r\n")
                    if content.strip():
                        yield _parse_json_line(content, line_number, self.location)
            except UnicodeDecodeError:
                raise describe_decode_error(self.path, self.encoding) from None

    def _read_document(self) -> Iterator[object]:
        prefix = f"{self.records_path}.item" if self.records_path else "item"
        stream = self._open_utf8()
        with stream:
            count = 0
            try:
                for record in ijson.items(stream, prefix, buf_size=_BUFFER_SIZE):
                    count += 1
                    yield record
            except ijson.JSONError as exc:
                raise self._syntax_error(exc, stream.position) from None
            except UnicodeDecodeError:
                raise describe_decode_error(self.path, self.encoding) from None

        if count == 0:
            self._check_empty_document()

    def _open_utf8(self, slow_after: int | None = None) -> ByteCounter:
        handle, _ = open_binary(self.path, self.encoding)
        if is_utf8(self.encoding):
            return ByteCounter(handle, slow_after)
        # ijson parses UTF-8 only, so other encodings are decoded and re-encoded on the fly.
        return ByteCounter(Utf8Reencoder(handle, self.encoding), slow_after)

    def _syntax_error(self, exc: Exception, failing_end: int) -> SourceError:
        reason = _parser_reason(exc)
        if "invalid bytes in UTF8" in reason:
            return describe_decode_error(self.path, self.encoding)

        line, column = self._locate_syntax_error(failing_end)
        msg = f"line {line}, column {column}: the file is not valid JSON ({reason})"
        if "premature EOF" in reason:
            msg += "; the document ends early, so the file is probably truncated"
        elif "trailing garbage" in reason:
            msg += (
                "; more than one JSON value follows: for one record per line, name the file"
                " .jsonl or .ndjson"
            )
        if self.path.suffix.lower() in (".csv", ".tsv", ".txt"):
            msg += '; for a delimited file set [source] kind = "csv"'
        return SourceError(msg, location=self.location)

    def _locate_syntax_error(self, failing_end: int) -> tuple[int, int]:
        """Parse again, a byte at a time over the last buffer, to find the failing byte.

        The column counts bytes, and yajl reports a bad token where the token ends: so the
        position is at or just after the fault, never before it.
        """
        stream = self._open_utf8(slow_after=max(failing_end - _BUFFER_SIZE, 0))
        with stream:
            try:
                for _ in ijson.parse(stream, buf_size=_BUFFER_SIZE):
                    pass
            except (ijson.JSONError, UnicodeDecodeError):
                pass
        return stream.line, stream.column

    def _check_empty_document(self) -> None:
        """Raise unless the document really contains an empty list where the records belong.

        A wrong ``records_path`` also yields no records, and must not read as an empty
        roster: that would deactivate everyone.
        """
        stream = self._open_utf8()
        with stream:
            shape = _DocumentShape.scan(stream, self.records_path)

        if shape.target_event == "start_array":
            return

        lists = f" (lists in the document: {shape.lists!r})" if shape.lists else ""
        if not self.records_path and shape.top_event == "start_map":
            msg = (
                "the document is a JSON object, not a list of records; set [source]"
                f" records_path to the list that contains them{lists}"
            )
        elif not self.records_path:
            msg = f"the document is a single {_event_kind(shape.top_event)}, not a list of records"
        elif shape.top_event == "start_array":
            msg = (
                f"[source] records_path is {self.records_path!r} but the document is itself"
                ' the list of records; set records_path = ""'
            )
        elif shape.target_event is None:
            msg = f"[source] records_path {self.records_path!r} is not in the document{lists}"
        else:
            msg = (
                f"[source] records_path {self.records_path!r} leads to"
                f" {_event_kind(shape.target_event)}, not to a list of records{lists}"
            )
        raise SourceError(msg, location=self.location)


class _DocumentShape:
    """The outline of a document: its top-level value, the records path and its lists."""

    def __init__(self) -> None:
        self.top_event: str | None = None
        self.target_event: str | None = None
        self.lists: list[str] = []

    @classmethod
    def scan(cls, stream: ByteCounter, records_path: str) -> _DocumentShape:
        """Read events until the records path is found, or to the end to list the lists."""
        shape = cls()
        try:
            for prefix, event, _ in ijson.parse(stream, buf_size=_BUFFER_SIZE):
                if event == "map_key":
                    continue
                if shape.top_event is None:
                    shape.top_event = event
                if prefix == records_path and shape.target_event is None:
                    shape.target_event = event
                    if records_path or event != "start_map":
                        return shape
                if event == "start_array" and prefix and "item" not in prefix.split("."):
                    shape.lists.append(prefix)
                    if len(shape.lists) >= _LISTED_PATHS:
                        return shape
        except ijson.JSONError:
            pass
        return shape


class ByteCounter:
    """A binary reader that counts the bytes and lines it hands out.

    From byte ``slow_after`` on it hands out one byte per read, so that a parser failing
    there stops exactly at the offending byte.
    """

    def __init__(self, raw: BinaryIO | Utf8Reencoder, slow_after: int | None = None) -> None:
        self.raw = raw
        self.slow_after = slow_after
        self.position = 0
        self.line = 1
        self.column = 0

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes, or one byte past ``slow_after``."""
        if self.slow_after is not None and size != 0:
            remaining = self.slow_after - self.position
            size = 1 if remaining <= 0 else min(size, remaining) if size > 0 else remaining
        data = self.raw.read(size)

        self.position += len(data)
        breaks = data.count(b"\n")
        if breaks:
            self.line += breaks
            self.column = len(data) - data.rfind(b"\n") - 1
        else:
            self.column += len(data)
        return data

    def close(self) -> None:
        """Close the underlying file."""
        self.raw.close()

    def __enter__(self) -> ByteCounter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Utf8Reencoder:
    """A binary reader that decodes a file in another encoding and hands out UTF-8."""

    def __init__(self, handle: BinaryIO, encoding: str) -> None:
        self.handle = handle
        self.decoder = codecs.getincrementaldecoder(encoding)("strict")
        self.buffer = b""
        self.started = False

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes of UTF-8."""
        while size < 0 or len(self.buffer) < size:
            chunk = self.handle.read(_BUFFER_SIZE if size < 0 else max(size, 4096))
            text = self.decoder.decode(chunk, final=not chunk)
            if text and not self.started:
                # A UTF-16 or UTF-32 codec that does not consume its mark leaves U+FEFF.
                text = text.removeprefix("\ufeff")
                self.started = True
            self.buffer += text.encode("utf-8")
            if not chunk:
                break
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def close(self) -> None:
        """Close the underlying file."""
        self.handle.close()


def _lookup_path(record: dict[str, Any], field: str) -> Any:
    """Follow a dotted path; a literal key with dots in its name wins over the path."""
    if field in record:
        return record[field]

    current: Any = record
    walked: list[str] = []
    for part in field.split("."):
        if current is None:
            return None
        if not isinstance(current, dict):
            return NotAnObject(".".join(walked), current)
        if part not in current:
            return MISSING
        current = current[part]
        walked.append(part)
    return current


def _to_raw_record(
    number: int, fields: Sequence[str], values: list[Any]
) -> RawRecord | RecordIssue:
    texts: list[RawValue] = []
    for field, value in zip(fields, values, strict=True):
        if type(value) is str or value is None or value is MISSING:
            texts.append(value)
            continue
        text = _json_text(value)
        if text is None:
            return _unusable_value_issue(number, fields, values, field, value)
        texts.append(text)
    return RawRecord(number, tuple(texts))


def _json_text(value: object) -> str | list[str] | None:
    """Return a value's text form, or None for a value that no field can hold."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return str(value)
    if isinstance(value, list):
        items = [_json_text(item) for item in value if item is not None]
        if all(isinstance(item, str) for item in items):
            return items  # type: ignore[return-value]  # checked just above
    return None


def _unusable_value_issue(
    number: int,
    fields: Sequence[str],
    values: list[Any],
    field: str,
    value: object,
) -> RecordIssue:
    key = values[0] if values and isinstance(values[0], str) else None
    if isinstance(value, NotAnObject):
        message = (
            f"{value.prefix!r} contains {_describe(value.value)}, not an object, so {field!r}"
            " cannot be read; the record is skipped: check the field name in [mapping]"
        )
        shown = _shown(value.value)
    elif isinstance(value, dict):
        members = ", ".join(repr(f"{field}.{name}") for name in list(value)[:5])
        message = (
            f"{field!r} contains an object where a single value is needed; the record is skipped:"
            f" map one of its members instead, such as {members}"
        )
        shown = _shown(value)
    else:
        message = (
            f"{field!r} contains an array of objects or arrays where values are needed;"
            " the record is skipped: map a field that contains text"
        )
        shown = _shown(value)
    return RecordIssue(line=number, key=key, field=field, value=shown, message=message)


def _not_an_object_issue(number: int, record: object) -> RecordIssue:
    message = (
        f"record {number} is {_describe(record)}, not an object; the record is skipped:"
        " each record must be a JSON object"
    )
    return RecordIssue(line=number, key=None, field=None, value=_shown(record), message=message)


def _parse_json_line(text: str, line_number: int, location: str) -> object:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        msg = (
            f"line {line_number}, column {exc.colno}: the line is not valid JSON ({exc.msg});"
            " in JSON Lines each line contains one complete JSON value"
        )
        raise SourceError(msg, location=location) from None


def _parser_reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason).strip().splitlines()[0] if str(reason).strip() else type(exc).__name__


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number or boolean"


def _event_kind(event: str | None) -> str:
    kinds = {
        "start_map": "an object",
        "start_array": "a list",
        "string": "a string",
        None: "nothing",
    }
    return kinds.get(event, "a number, boolean or null")


def _shown(value: object) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[: _SHOWN_VALUE_CHARS - 3] + "..."
