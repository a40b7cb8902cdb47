"""HR connectors: each yields raw records with their line or record number."""

from __future__ import annotations

from typing import TYPE_CHECKING

from staffsync.sources.base import (
    MISSING,
    Missing,
    RawRecord,
    RawValue,
    RecordIssue,
    Source,
    SourceError,
)
from staffsync.sources.delimited import DelimitedSource
from staffsync.sources.json_source import JsonSource
from staffsync.sources.sailpoint import SailPointSource

if TYPE_CHECKING:
    from pathlib import Path

    from staffsync.settings import SourceSettings

__all__ = [
    "MISSING",
    "DelimitedSource",
    "JsonSource",
    "Missing",
    "RawRecord",
    "RawValue",
    "RecordIssue",
    "SailPointSource",
    "Source",
    "SourceError",
    "open_source",
]


def open_source(settings: SourceSettings, base_dir: Path | None = None) -> Source:
    """Create the source that ``[source]`` describes; nothing is read until ``read``.

    A relative ``path`` resolves from ``base_dir``, the configuration file's folder, or
    from the working directory when ``base_dir`` is None.
    """
    path = settings.path
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path

    if settings.kind == "csv":
        return DelimitedSource(
            path,
            encoding=settings.encoding,
            delimiter=settings.delimiter,
            header_rows=settings.header_rows,
        )
    if settings.kind == "json":
        return JsonSource(path, encoding=settings.encoding, records_path=settings.records_path)
    return SailPointSource(path, encoding=settings.encoding, records_path=settings.records_path)
