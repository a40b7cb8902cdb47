"""Keep plans in the state database: stored for applying, held for approval, reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from staffsync.planning.model import PAST_TENSE, Action
from staffsync.state import schema

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from staffsync.planning.planner import Plan
    from staffsync.report import RunReport

__all__ = [
    "HeldPlan",
    "PlanNotHeld",
    "clear_resolved_failures",
    "fill_report_from_plan",
    "iter_applied_changes",
    "list_failed",
    "load_held_plan",
    "planned_counts",
    "record_settled",
    "store_plan",
]


class PlanNotHeld(Exception):
    """``--approve`` named a plan that does not exist or is not waiting for approval."""


def fill_report_from_plan(report: RunReport, plan: Plan, *, source_location: str) -> None:
    """Copy what planning found (records read, rejects, warnings) into the report."""
    report.source = {
        "records": plan.records,
        "rejected": plan.rejected.total,
        "location": source_location,
    }
    report.counts["rejected"] = plan.rejected.total
    report.counts["unchanged"] = plan.unchanged
    report.rejected = [
        issue.as_report() | {"file": source_location} for issue in plan.rejected.items
    ]
    report.warnings = [
        issue.as_report() | {"file": source_location} for issue in plan.warnings.items
    ]
    if plan.leavers_withheld:
        report.warnings.append(
            {
                "line": None,
                "key": None,
                "field": None,
                "value": None,
                "file": source_location,
                "message": (
                    f"{plan.leavers_withheld} people missing from the export were not deactivated,"
                    f" because {plan.leavers_withheld_reason}; fix the rejected rows to let"
                    " leavers go"
                ),
            }
        )
    report.warnings.extend(
        {
            "line": None,
            "key": key,
            "field": None,
            "value": None,
            "file": source_location,
            "message": (
                f"--only names {key!r}, which is neither in the export nor in the state;"
                " nothing was done for it: check the key"
            ),
        }
        for key in plan.unknown_only_keys
    )
    if plan.rejected.total > len(plan.rejected.items):
        report.totals["rejected"] = plan.rejected.total
    if plan.warnings.total > len(plan.warnings.items):
        report.totals["warnings"] = plan.warnings.total
    report.orphans = list(plan.orphans)
    report.failed = list(plan.deferred)
    report.counts["failed"] = len(report.failed)
    for action, count in planned_counts(plan).items():
        report.counts[action] = count if report.dry_run else report.counts[action]


def planned_counts(plan: Plan) -> dict[str, int]:
    """Return the plan's changes counted under the report's past-tense names."""
    return {PAST_TENSE[action]: plan.counts[action] for action in PAST_TENSE}


def store_plan(
    connection: sa.Connection,
    plan: Plan,
    *,
    plan_id: str,
    run_id: str,
    mode: str,
    hold_reason: str | None,
    only_keys: Sequence[str],
    report: RunReport,
    now: datetime,
) -> None:
    """Store ``plan`` and its changes; earlier held plans are superseded by it."""
    plans, changes = schema.plans, schema.changes
    connection.execute(
        sa.update(plans)
        .where(plans.c.status == "held")
        .values(status="superseded", finished_at=now)
    )
    connection.execute(
        sa.insert(plans).values(
            id=plan_id,
            run_id=run_id,
            mode=mode,
            status="held" if hold_reason else "applying",
            reason=hold_reason,
            source_fingerprint=plan.source_fingerprint,
            state_version=plan.state_version,
            only_keys=list(only_keys) or None,
            counts=planned_counts(plan),
            report={
                "source": report.source,
                "counts": dict(report.counts),
                "rejected": report.rejected,
                "warnings": report.warnings,
                "orphans": report.orphans,
                "totals": report.totals,
            },
            created_at=now,
        )
    )

    temp = plan.tables.plan
    connection.execute(
        sa.insert(changes).from_select(
            ["plan_id", "seq", "phase", "action", "key", "staffbase_id", "data", "state"],
            sa.select(
                sa.literal(plan_id),
                temp.c.seq,
                temp.c.phase,
                temp.c.action,
                temp.c.key,
                temp.c.staffbase_id,
                temp.c.data,
                sa.literal("planned"),
            ),
        )
    )


def record_settled(connection: sa.Connection, plan: Plan) -> None:
    """Remember the hashes of the plan's inactive records that needed nothing.

    The next incremental run skips such a record while its hash stays the same. A dry
    run and a held plan record nothing: this is a cache, and only a run that goes ahead
    keeps it.
    """
    # NOTE: rows are never pruned. The table grows by about 60 bytes for every inactive key
    # ever exported without a Staffbase user. A stale row changes no outcome.
    temp, settled = plan.tables.settled, schema.settled_records
    connection.execute(sa.delete(settled).where(settled.c.key.in_(sa.select(temp.c.key))))
    connection.execute(
        sa.insert(settled).from_select(
            ["key", "record_hash"], sa.select(temp.c.key, temp.c.record_hash)
        )
    )


def clear_resolved_failures(connection: sa.Connection, plan: Plan, now: datetime) -> list[str]:
    """Forget failing records that were due for another attempt and need no change now.

    HR may have undone the change that kept failing, or Staffbase may have been fixed
    by hand: the plan then has nothing for the key, and the failure would otherwise stay
    listed in ``status`` for good. Returns the keys forgotten.
    """
    failures, temp = schema.failures, plan.tables.plan
    due = set(
        connection.execute(
            sa.select(failures.c.key).where(failures.c.next_attempt_at <= now)
        ).scalars()
    )
    due -= plan.protected
    if plan.only_keys is not None:
        due &= plan.only_keys
    if not due:
        return []
    planned = set(
        connection.execute(sa.select(temp.c.key).where(temp.c.key.in_(sorted(due)))).scalars()
    )
    resolved = sorted(due - planned)
    if resolved:
        connection.execute(sa.delete(failures).where(failures.c.key.in_(resolved)))
    return resolved


@dataclass
class HeldPlan:
    """A plan the safety guards held, as stored."""

    id: str
    mode: str
    source_fingerprint: str
    state_version: int
    only_keys: list[str] | None
    stored_report: dict[str, Any]

    def restore_report(self, report: RunReport) -> None:
        """Put what planning found into the report of the run that approves the plan."""
        report.source = self.stored_report.get("source", report.source)
        for name in ("rejected", "unchanged"):
            report.counts[name] = self.stored_report.get("counts", {}).get(name, 0)
        report.rejected = self.stored_report.get("rejected", [])
        report.warnings = self.stored_report.get("warnings", [])
        report.orphans = self.stored_report.get("orphans", [])
        report.totals.update(self.stored_report.get("totals", {}))

    def mark_applying(self, connection: sa.Connection, run_id: str) -> None:
        """Record that ``run_id`` applies the plan now."""
        plans = schema.plans
        connection.execute(
            sa.update(plans).where(plans.c.id == self.id).values(status="applying", run_id=run_id)
        )


def load_held_plan(connection: sa.Connection, plan_id: str) -> HeldPlan:
    """Return the held plan ``plan_id``.

    Raises:
        PlanNotHeld: no such plan, or it was applied, superseded or interrupted already.
    """
    plans = schema.plans
    row = connection.execute(sa.select(plans).where(plans.c.id == plan_id)).mappings().first()
    if row is None:
        msg = f"no plan has the id {plan_id!r}; 'staffsync status' lists the held plans"
        raise PlanNotHeld(msg)
    if row["status"] != "held":
        msg = (
            f"plan {plan_id} is {row['status']}, not held, so it cannot be approved;"
            " 'staffsync status' lists the held plans"
        )
        raise PlanNotHeld(msg)
    return HeldPlan(
        id=plan_id,
        mode=row["mode"],
        source_fingerprint=row["source_fingerprint"],
        state_version=row["state_version"],
        only_keys=row["only_keys"],
        stored_report=row["report"] or {},
    )


def list_failed(connection: sa.Connection, plan_id: str) -> list[dict[str, Any]]:
    """Return the report entries of a plan's failed changes."""
    changes = schema.changes
    rows = connection.execute(
        sa.select(changes.c.key, changes.c.action, changes.c.outcome)
        .where(changes.c.plan_id == plan_id, changes.c.state == "failed")
        .order_by(changes.c.seq)
    )
    return [
        {"key": key, "action": action, "message": (outcome or "").removeprefix("failed: ")}
        for key, action, outcome in rows
    ]


def iter_applied_changes(connection: sa.Connection, plan_id: str) -> Iterator[dict[str, Any]]:
    """Yield the report entry of every change of ``plan_id`` that reached Staffbase."""
    changes = schema.changes
    last_seq = -1
    while True:
        rows = connection.execute(
            sa.select(
                changes.c.seq,
                changes.c.key,
                changes.c.staffbase_id,
                changes.c.data,
                changes.c.outcome,
            )
            .where(
                changes.c.plan_id == plan_id,
                changes.c.state == "done",
                changes.c.action != Action.RECORD,
                changes.c.seq > last_seq,
            )
            .order_by(changes.c.seq)
            .limit(1000)
        ).all()
        if not rows:
            return
        for row in rows:
            if row.outcome in PAST_TENSE:
                entry = {
                    "action": row.outcome,
                    "key": row.key,
                    "staffbase_id": row.staffbase_id,
                    "fields": row.data.get("diff", {}),
                }
                if reason := row.data.get("reason"):
                    entry["reason"] = reason
                yield entry
        last_seq = rows[-1].seq
