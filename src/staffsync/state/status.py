"""The data behind ``staffsync status``: recent runs, held plans and failing records."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from staffsync.engine.journal import STUCK_AFTER_ATTEMPTS
from staffsync.state import schema

__all__ = ["read_status"]


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def read_status(connection: sa.Connection, *, runs: int = 10) -> dict[str, Any]:
    """Return the last ``runs`` runs, every held plan and every failing record."""
    run_table, plans, failures = schema.runs, schema.plans, schema.failures

    last_runs = [
        {
            "id": row["id"],
            "mode": row["mode"],
            "trigger": row["trigger"],
            "status": row["status"],
            "started_at": _iso(row["started_at"]),
            "finished_at": _iso(row["finished_at"]),
            "plan_id": row["plan_id"],
            "counts": row["counts"],
            "error": row["error"],
        }
        for row in connection.execute(
            sa.select(run_table).order_by(run_table.c.started_at.desc()).limit(runs)
        ).mappings()
    ]
    held = [
        {
            "id": row["id"],
            "created_at": _iso(row["created_at"]),
            "reason": row["reason"],
            "counts": row["counts"],
            "run_id": row["run_id"],
        }
        for row in connection.execute(
            sa.select(plans).where(plans.c.status == "held").order_by(plans.c.created_at)
        ).mappings()
    ]
    failing = [
        {
            "key": row["key"],
            "action": row["action"],
            "attempts": row["attempts"],
            "first_failed_at": _iso(row["first_failed_at"]),
            "last_failed_at": _iso(row["last_failed_at"]),
            "next_attempt_at": _iso(row["next_attempt_at"]),
            "stuck": row["attempts"] >= STUCK_AFTER_ATTEMPTS,
            "last_error": row["last_error"],
        }
        for row in connection.execute(
            sa.select(failures).order_by(failures.c.first_failed_at)
        ).mappings()
    ]
    return {"runs": last_runs, "held_plans": held, "failing": failing}
