"""Turn a raw HR record into the Staffbase user it describes, or into row errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from staffsync.sources.base import MISSING, Missing, RawRecord, RecordIssue

if TYPE_CHECKING:
    from staffsync.settings import MappingSettings

__all__ = ["DesiredUser", "RecordMapper"]


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
        email = self.fields.get("email")
        return email.casefold() if email else None


class RecordMapper:
    """Validates and maps raw records according to the ``[mapping]`` settings."""

    def __init__(self, settings: MappingSettings) -> None:
        self.settings = settings

    @property
    def source_fields(self) -> tuple[str, ...]:
        """Source fields to read, in the order :meth:`map` expects them; the key comes first."""
        raise NotImplementedError

    def map(self, record: RawRecord) -> DesiredUser | list[RecordIssue]:
        """Validate ``record`` and return the user it describes, or why it is rejected."""
        raise NotImplementedError
