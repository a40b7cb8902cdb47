"""Turn a raw HR record into the Staffbase user it describes, or into row errors."""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from staffsync.sources.base import MISSING, Missing, RawRecord, RecordIssue

if TYPE_CHECKING:
    from staffsync.settings import MappingSettings
    from staffsync.sources.base import RawValue

__all__ = ["DesiredUser", "RecordMapper", "clean_text"]

MANAGER_FIELD = "manager"
"""The ``[mapping.fields]`` target that names the manager rather than a Staffbase field."""

EMAIL_FIELD = "email"

# Characters trimmed from both ends of every value: everything str.isspace() accepts
# (no-break and other Unicode spaces included), plus zero-width characters and the byte
# order mark, which survive copy and paste but are invisible in the HR system.
_TRIMMED = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
    "\u180e\u200b\u200c\u200d\u2060\ufeff"
)
_STRIP_TRIMMED = operator.methodcaller("strip", _TRIMMED)

# One address: no spaces, one "@", a local part, and a domain of dot-separated labels.
_EMAIL = re.compile(r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]+")


def clean_text(value: str, empty_values: frozenset[str] = frozenset()) -> str | None:
    """Return ``value`` trimmed, with line breaks as ``\\n`` and in NFC, or None when empty.

    A value equal to one of ``empty_values`` after trimming also returns None.
    """
    text = value.strip(_TRIMMED)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if not text or text in empty_values:
        return None
    return text


def _visible(text: str) -> str:
    """Return ``text`` with each NUL character written as ``\\x00``."""
    return text.replace("\0", "\\x00")


def _setting_text(value: str) -> str:
    """Return a configured value in the form record values are compared in."""
    return unicodedata.normalize("NFC", value.strip(_TRIMMED))


@dataclass(slots=True)
class DesiredUser:
    """The Staffbase user that one valid HR record asks for.

    ``fields`` maps flat Staffbase field names (``firstName``, ``email``, ``position``,
    ``profile.<fieldId>`` …) to the wanted value; ``None`` clears the field and a field
    left out of the dict is left as it is in Staffbase. The manager is kept apart as the
    reference the record makes (``manager_ref``), because it names another record and
    becomes a Staffbase id only once that person exists. ``match_value`` is this record's
    value of the field that such references point at: ``[mapping] manager_match``, or
    else the key.
    """

    key: str
    line: int
    active: bool
    fields: dict[str, str | None] = field(default_factory=dict)
    manager_ref: str | Missing | None = MISSING
    match_value: str | None = None
    groups: tuple[str, ...] | None = None
    """Group names the person belongs to; None when groups are not mapped or not given."""

    @property
    def email_key(self) -> str | None:
        """The e-mail address as compared for uniqueness: case-folded, or None."""
        email = self.fields.get(EMAIL_FIELD)
        return email.casefold() if email else None


class _Rejected(Exception):
    """One field of a record is invalid; carries the issue to report."""

    def __init__(self, issue: RecordIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


@dataclass(frozen=True, slots=True)
class _Target:
    """One ``[mapping.fields]`` entry other than the manager."""

    name: str
    source: str
    index: int
    is_date: bool
    plain: bool
    """True for text without a format to check: neither a date nor the e-mail address."""


class RecordMapper:
    """Validates and maps raw records according to the ``[mapping]`` settings.

    Each record is checked on its own. Checks across records (a key or an e-mail address
    on two rows, managers that are unknown or form a cycle) belong to the planner.
    """

    def __init__(self, settings: MappingSettings) -> None:
        self.settings = settings
        self._empty = frozenset(_setting_text(value) for value in settings.empty_values)
        status = settings.status
        self._active_values = frozenset(_setting_text(value).casefold() for value in status.active)
        self._inactive_values = frozenset(
            _setting_text(value).casefold() for value in status.inactive
        )

        fields = list(dict.fromkeys(self._needed_fields()))
        self._source_fields = tuple(fields)
        position = {name: index for index, name in enumerate(fields)}

        dates = set(settings.date_fields)
        self._targets = tuple(
            _Target(
                name=target,
                source=source,
                index=position[source],
                is_date=source in dates,
                plain=source not in dates and target != EMAIL_FIELD,
            )
            for target, source in settings.fields.items()
            if target != MANAGER_FIELD
        )
        manager_source = settings.fields.get(MANAGER_FIELD)
        self._manager_index = position[manager_source] if manager_source else None
        self._status_index = position[status.field] if status.field else None
        self._groups_index = position[settings.groups.field] if settings.groups else None
        mapped = set(settings.fields.values())
        self._unmapped_dates = tuple(
            (name, position[name]) for name in settings.date_fields if name not in mapped
        )
        self._match_index = position[settings.manager_match] if settings.manager_match else 0

    def clean_key(self, raw: RawValue) -> str | None:
        """Return a key or a manager-match value as :meth:`map` reads it, or None if empty.

        The planner compares keys of records it does not map, so it must read them the
        same way: trimmed, in NFC, with ``empty_values`` meaning no value.
        """
        return clean_text(raw, self._empty) if isinstance(raw, str) else None

    def all_clean(self, keys: list[RawValue]) -> bool:
        """Tell whether :meth:`clean_key` returns every one of ``keys`` exactly as it is.

        Checks a whole batch of keys in a few calls. False means only that some key
        needs :meth:`clean_key`: it is text to trim or normalize, empty, or not text.
        """
        try:
            text = "".join(keys)  # type: ignore[arg-type]
        except TypeError:
            return False
        if not text.isascii() or not all(keys) or not self._empty.isdisjoint(keys):
            return False
        # Letters and digits only (the usual employee id) leave nothing to trim.
        return text.isalnum() or ("\r" not in text and list(map(_STRIP_TRIMMED, keys)) == keys)

    def nul_issue(self, line: int, values: tuple[RawValue, ...]) -> RecordIssue | None:
        """Return the rejection of a record with a NUL character in a value, else None.

        Neither Staffbase nor PostgreSQL stores the character, and it usually means the
        file is UTF-16 read as UTF-8, so the row is rejected rather than cleaned.
        """
        for field_name, raw in zip(self._source_fields, values, strict=False):
            texts = raw if isinstance(raw, list) else [raw]
            for text in texts:
                if isinstance(text, str) and "\0" in text:
                    key = values[0] if isinstance(values[0], str) else None
                    return RecordIssue(
                        line,
                        _visible(key) if key is not None else None,
                        field_name,
                        _visible(text),
                        f"the value of {field_name!r} contains a NUL character (shown as \\x00),"
                        " which Staffbase and the state database cannot store; the row is"
                        " skipped: remove it in the HR system, or set [source] encoding if the"
                        " file is UTF-16",
                    )
        return None

    @property
    def match_index(self) -> int | None:
        """Position of the ``manager_match`` field in :attr:`source_fields`, if one is set."""
        return self._match_index if self.settings.manager_match else None

    def _needed_fields(self) -> list[str]:
        settings = self.settings
        needed = [settings.key, *settings.fields.values()]
        if settings.status.field:
            needed.append(settings.status.field)
        if settings.groups:
            needed.append(settings.groups.field)
        needed.extend(settings.date_fields)
        if settings.manager_match:
            needed.append(settings.manager_match)
        return needed

    @property
    def source_fields(self) -> tuple[str, ...]:
        """Source fields to read, in the order :meth:`map` expects them; the key comes first."""
        return self._source_fields

    def map(self, record: RawRecord) -> DesiredUser | list[RecordIssue]:
        """Validate ``record`` and return the user it describes, or why it is rejected.

        An inactive record is checked for its key and status only: the person is about to
        be deactivated, and the rest of the row does not matter.
        """
        values = record.values
        if (issue := self.nul_issue(record.line, values)) is not None:
            return [issue]
        try:
            key = self._read_key(record.line, values[0])
            active = self._read_status(record.line, key, values)
        except _Rejected as rejected:
            return [rejected.issue]

        if not active:
            return DesiredUser(
                key=key, line=record.line, active=False, match_value=self._match(key, values)
            )
        return self._map_active(record.line, key, values)

    def _map_active(
        self, line: int, key: str, values: tuple[RawValue, ...]
    ) -> DesiredUser | list[RecordIssue]:
        user = DesiredUser(key=key, line=line, active=True)
        fields = user.fields
        empty = self._empty
        issues: list[RecordIssue] = []

        for target in self._targets:
            raw = values[target.index]
            # Most values are plain text: clean them without the checks below.
            if target.plain and type(raw) is str:
                fields[target.name] = clean_text(raw, empty)
                continue
            try:
                value = self._read_target(line, key, target, raw)
            except _Rejected as rejected:
                issues.append(rejected.issue)
                continue
            if not isinstance(value, Missing):
                fields[target.name] = value

        for name, index in self._unmapped_dates:
            try:
                self._read_date(line, key, name, values[index])
            except _Rejected as rejected:
                issues.append(rejected.issue)

        try:
            if self._manager_index is not None:
                user.manager_ref = self._read_single(
                    line, key, self.settings.fields[MANAGER_FIELD], values[self._manager_index]
                )
            user.match_value = self._match(key, values)
            if self._groups_index is not None:
                user.groups = self._read_groups(values[self._groups_index])
        except _Rejected as rejected:
            issues.append(rejected.issue)

        return issues or user

    def _read_key(self, line: int, raw: RawValue) -> str:
        field_name = self.settings.key
        key = self._read_single(line, None, field_name, raw)
        if isinstance(key, str):
            return key

        message = (
            f"the employee key {field_name!r} is empty; the record is skipped: every record"
            " needs the key, which becomes the person's Staffbase externalID"
        )
        raise _Rejected(_issue(line, None, field_name, raw, message))

    def _read_status(self, line: int, key: str, values: tuple[RawValue, ...]) -> bool:
        if self._status_index is None:
            return True

        status = self.settings.status
        raw = values[self._status_index]
        text = self._read_single(line, key, status.field, raw)
        folded = text.casefold() if isinstance(text, str) else ""
        if folded in self._active_values:
            return True
        if folded in self._inactive_values:
            return False

        shown = (
            f"status {text!r} is"
            if isinstance(text, str)
            else f"the status {status.field!r} is empty, which is"
        )
        message = (
            f"{shown} neither active nor inactive; the person is left as they are: the"
            f" accepted values are {status.active!r} (active) and {status.inactive!r}"
            " (inactive), compared ignoring case; add the value to [mapping.status]"
        )
        raise _Rejected(_issue(line, key, status.field, raw, message))

    def _read_target(
        self, line: int, key: str, target: _Target, raw: RawValue
    ) -> str | Missing | None:
        if target.is_date:
            return self._read_date(line, key, target.source, raw)
        if target.name == EMAIL_FIELD:
            return self._read_email(line, key, target.source, raw)
        return self._read_single(line, key, target.source, raw)

    def _read_email(self, line: int, key: str, field_name: str, raw: RawValue) -> str:
        email = self._read_single(line, key, field_name, raw)
        if not isinstance(email, str):
            message = (
                f"the e-mail address {field_name!r} is empty; the record is skipped: active"
                " employees need one, because Staffbase identifies and invites users by it"
            )
            raise _Rejected(_issue(line, key, field_name, raw, message))

        if _EMAIL.fullmatch(email) is None:
            message = (
                f"{email!r} is not a valid e-mail address; the record is skipped: an address"
                " has one '@', a name before it, a domain with a dot after it and no spaces;"
                " correct it in the HR system"
            )
            raise _Rejected(_issue(line, key, field_name, raw, message))
        return email

    def _read_date(
        self, line: int, key: str, field_name: str, raw: RawValue
    ) -> str | Missing | None:
        text = self._read_single(line, key, field_name, raw)
        if not isinstance(text, str):
            return text

        date_format = self.settings.date_format
        try:
            return _iso_date(text, date_format)
        except ValueError as exc:
            reason = str(exc)
        if "does not match format" in reason or "unconverted data remains" in reason:
            message = (
                f"date {text!r} does not match the declared format {date_format}; the record"
                " is skipped: fix the export or change [mapping] date_format"
            )
        else:
            message = (
                f"date {text!r} is not a real calendar date ({reason}); the record is skipped:"
                " correct it in the HR system"
            )
        raise _Rejected(_issue(line, key, field_name, raw, message))

    def _read_groups(self, raw: RawValue) -> tuple[str, ...] | None:
        if isinstance(raw, Missing):
            return None
        if raw is None:
            return ()

        separator = self.settings.groups.separator if self.settings.groups else ""
        if isinstance(raw, list):
            parts = raw
        elif separator:
            parts = raw.split(separator)
        else:
            parts = [raw]
        unique: dict[str, str] = {}
        for part in parts:
            name = clean_text(part, self._empty)
            if name is not None:
                unique.setdefault(name.casefold(), name)
        return tuple(sorted(unique.values(), key=lambda name: (name.casefold(), name)))

    def _match(self, key: str, values: tuple[RawValue, ...]) -> str | None:
        if not self.settings.manager_match:
            return key
        raw = values[self._match_index]
        if not isinstance(raw, str):
            return None
        return clean_text(raw, self._empty)

    def _read_single(
        self, line: int, key: str | None, field_name: str, raw: RawValue
    ) -> str | Missing | None:
        """Clean one text value; a list (a JSON array) is rejected."""
        if isinstance(raw, str):
            return clean_text(raw, self._empty)
        if not isinstance(raw, list):
            return raw

        message = (
            f"{field_name!r} contains a list of {len(raw)} values where one value is needed; the"
            " record is skipped: map a field with a single value, or use [mapping.groups]"
            " for a list of groups"
        )
        raise _Rejected(_issue(line, key, field_name, raw, message))


@functools.lru_cache(maxsize=4096)
def _iso_date(text: str, date_format: str) -> str:
    # strptime is slow, and an export repeats the same few thousand dates.
    return datetime.strptime(text, date_format).date().isoformat()


def _issue(line: int, key: str | None, field_name: str, raw: RawValue, message: str) -> RecordIssue:
    if isinstance(raw, list):
        shown: str | None = ", ".join(raw)
    elif isinstance(raw, str):
        shown = raw
    else:
        shown = None
    return RecordIssue(line=line, key=key, field=field_name, value=shown, message=message)
