"""SailPoint Identity Security Cloud identity documents (JSON list or JSON Lines)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from staffsync.sources.base import MISSING
from staffsync.sources.json_source import JsonSource

if TYPE_CHECKING:
    from staffsync.sources.json_source import Lookup

__all__ = ["SailPointSource"]


class SailPointSource(JsonSource):
    """Reads identity documents, where most HR attributes sit under ``attributes``.

    A bare field name reads the top-level field of that name, or else the identity
    attribute of that name (``department`` reads ``attributes.department``). Dotted names
    are paths as in any JSON source: ``attributes.uid``, or ``manager.id``,
    ``manager.name`` and ``manager.displayName`` for the manager reference, which reads
    as None when ``manager`` is ``null``.
    """

    def lookup_for(self, field: str) -> Lookup:
        """Return a function that reads ``field`` from an identity document."""
        if "." in field:
            return super().lookup_for(field)

        def lookup(record: dict[str, Any]) -> Any:
            if field in record:
                return record[field]
            attributes = record.get("attributes")
            if isinstance(attributes, dict):
                return attributes.get(field, MISSING)
            return MISSING

        return lookup
