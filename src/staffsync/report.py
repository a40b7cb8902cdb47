"""The run report: what a run read, rejected, changed and failed, and its exit status."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime
    from pathlib import Path

__all__ = ["COUNT_KEYS", "EXIT_CODES", "RunReport", "write_report_json"]

COUNT_KEYS = (
    "created",
    "updated",
    "deactivated",
    "reactivated",
    "deleted",
    "unchanged",
    "rejected",
    "failed",
)

EXIT_CODES = {"succeeded": 0, "partial": 4, "blocked": 3, "failed": 1}
"""Exit status by run status; 2 (usage or configuration error) never gets this far."""

STORED_ITEMS = 1000
"""Longest list kept in the state database's copy of a report; the JSON file has all."""


@dataclass
class RunReport:
    """The report of one run, as written by ``--report-json`` and kept for ``status``."""

    run_id: str
    mode: str
    dry_run: bool
    started_at: datetime
    status: str = "running"
    finished_at: datetime | None = None
    source: dict[str, Any] = field(default_factory=lambda: {"records": 0, "rejected": 0})
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    rejected: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[dict[str, Any]] = field(default_factory=list)
    """Full resync only: Staffbase users that HR does not list and staffsync never managed."""
    held: dict[str, Any] | None = None
    error: str | None = None
    plan_id: str | None = None
    totals: dict[str, int] = field(default_factory=dict)
    """Full lengths of lists that were cut short (``changes``, ``rejected`` …)."""

    @property
    def exit_code(self) -> int:
        """The process exit status for this report."""
        return EXIT_CODES.get(self.status, 1)

    def finish(self, status: str, finished_at: datetime, *, error: str | None = None) -> None:
        """Set the final status; a run with rejected or failed records is partial."""
        if status == "succeeded" and (self.counts["rejected"] or self.counts["failed"]):
            status = "partial"
        self.status = status
        self.finished_at = finished_at
        self.error = error

    def as_dict(self, *, max_items: int | None = None) -> dict[str, Any]:
        """Return the report as JSON-ready data, lists cut to ``max_items`` if given.

        A list that is shorter than what happened (cut here, or cut while the run
        collected it) has its full length under ``totals``.
        """
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "source": self.source,
            "counts": self.counts,
        }
        totals: dict[str, int] = {}
        lists = {
            "rejected": self.rejected,
            "failed": self.failed,
            "warnings": self.warnings,
            "changes": self.changes,
        }
        if self.mode == "full":
            lists["orphans"] = self.orphans
        for name, items in lists.items():
            shown = items if max_items is None else items[:max_items]
            data[name] = shown
            full = max(self.totals.get(name, 0), len(items))
            if full > len(shown):
                totals[name] = full

        if self.plan_id:
            data["plan_id"] = self.plan_id
        if self.held:
            data["held"] = self.held
        if self.error:
            data["error"] = self.error
        if totals:
            data["totals"] = totals
        return data


def write_report_json(
    path: Path, report: RunReport, changes: Iterable[dict[str, Any]] | None = None
) -> None:
    """Write the report to ``path`` atomically, streaming ``changes`` if given.

    ``changes`` replaces ``report.changes``; it is written entry by entry, so a run that
    changed a million users never holds them all in memory.
    """
    data = report.as_dict()
    stream = changes if changes is not None else data["changes"]
    data["changes"] = []
    head = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    before, _, after = head.partition('"changes": []')

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed before the rename below)
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    )
    try:
        handle.write(before)
        handle.write('"changes": [')
        written = 0
        for entry in stream:
            handle.write(",\n    " if written else "\n    ")
            handle.write(json.dumps(entry, ensure_ascii=False, default=str))
            written += 1
        handle.write("\n  ]" if written else "]")
        handle.write(after)
        handle.write("\n")
        handle.close()
        os.replace(handle.name, path)
    except BaseException:
        handle.close()
        os.unlink(handle.name)
        raise
