"""``staffsync check``: try each dependency once, read-only, and report what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from rich.text import Text

from staffsync.mapping import RecordMapper
from staffsync.sources import open_source
from staffsync.sources.base import RecordIssue, SourceError
from staffsync.staffbase.client import StaffbaseClient
from staffsync.staffbase.errors import StaffbaseError
from staffsync.state.database import (
    StateDatabaseError,
    create_state_engine,
    unreachable_message,
)
from staffsync.state.migrate import current_revision, head_revision

if TYPE_CHECKING:
    from rich.console import Console

    from staffsync.settings import Settings

__all__ = ["run_checks"]

SAMPLED_RECORDS = 1000


def run_checks(settings: Settings, console: Console) -> bool:
    """Check the state database, the export, the token and one Staffbase call; True if all pass."""
    results = [
        _check_state(settings),
        _check_source(settings),
        _check_staffbase(settings),
    ]
    for name, ok, detail in results:
        mark = ("ok  ", "green") if ok else ("FAIL", "red")
        console.print(Text.assemble(mark, f" {name}: {detail}"))
    return all(ok for _, ok, _ in results)


def _check_state(settings: Settings) -> tuple[str, bool, str]:
    try:
        engine = create_state_engine(settings.state)
        revision = current_revision(engine)
        engine.dispose()
    except StateDatabaseError as exc:
        return "state database", False, str(exc)
    except sa.exc.DBAPIError as exc:
        return "state database", False, unreachable_message(exc)
    except Exception as exc:
        return "state database", False, f"cannot connect: {type(exc).__name__}: {exc}"
    if revision != head_revision():
        return (
            "state database",
            True,
            (
                f"reachable, schema {revision or 'empty'}; 'staffsync db upgrade' brings it to"
                f" {head_revision()}"
            ),
        )
    return "state database", True, f"reachable, schema {revision}"


def _check_source(settings: Settings) -> tuple[str, bool, str]:
    base_dir = settings.config_path.parent if settings.config_path else None
    mapper = RecordMapper(settings.mapping)
    try:
        source = open_source(settings.source, base_dir)
        read = rejected = 0
        for item in source.read(mapper.source_fields):
            read += 1
            if isinstance(item, RecordIssue) or isinstance(mapper.map(item), list):
                rejected += 1
            if read >= SAMPLED_RECORDS:
                break
    except SourceError as exc:
        return "HR export", False, str(exc)
    return (
        "HR export",
        True,
        (f"{source.location} readable; {rejected} of the first {read} records would be rejected"),
    )


def _check_staffbase(settings: Settings) -> tuple[str, bool, str]:
    try:
        with StaffbaseClient(settings.staffbase) as client:
            client.check()
    except StaffbaseError as exc:
        return "Staffbase", False, str(exc)
    except Exception as exc:
        return "Staffbase", False, f"{type(exc).__name__}: {exc}"
    return "Staffbase", True, f"token fetched and {settings.staffbase.base_url}/users answered"
