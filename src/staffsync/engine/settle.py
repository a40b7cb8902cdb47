"""Resolve changes left ``sent`` by a run that died before recording their outcome.

Staffbase has no idempotency keys, so a create whose response never arrived must not simply
be sent again: the user is looked up by externalID first. Updates, reactivations and
deactivations are checked by reading the user back. Whatever cannot be confirmed is
marked abandoned; the state then still shows the old values, so the next plan makes the
same change again.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from staffsync.engine.actions import GONE, Outcome, WorkItem
from staffsync.engine.journal import record_outcomes
from staffsync.planning.model import PAST_TENSE, Action
from staffsync.report import COUNT_KEYS
from staffsync.staffbase.errors import RecordFailed
from staffsync.staffbase.model import read_user_fields
from staffsync.state import schema

if TYPE_CHECKING:
    from datetime import datetime

    from staffsync.staffbase.client import StaffbaseClient

__all__ = ["SettleResult", "settle_open_intents"]

log = structlog.get_logger(__name__)


@dataclass
class SettleResult:
    """How many open changes were confirmed as applied, abandoned, or left open."""

    confirmed: int = 0
    abandoned: int = 0
    unsettled: int = 0
    """Changes whose check failed (Staffbase kept failing); the next run checks them again."""


def settle_open_intents(
    connection: sa.Connection,
    client: StaffbaseClient,
    now: datetime,
    *,
    concurrency: int = 1,
    run_id: str | None = None,
) -> SettleResult:
    """Settle every change journaled as sent but never recorded, then close old plans.

    Up to ``concurrency`` changes are checked against Staffbase at once. Each result is
    committed as soon as it is known, so a crash while settling loses none of them. A
    change whose check fails (Staffbase keeps returning 429 or 5xx) stays open for the
    next run. Planning may meanwhile make the same change again, which is safe: a create
    meets the externalID taken and adopts the user, other changes are sent again, and
    the old change is later confirmed or abandoned by what Staffbase shows then.

    Raises:
        FatalStaffbaseError: a check failed in a way every request would (rejected
            credentials); the changes not yet settled stay open for the next run.
    """
    changes, plans = schema.changes, schema.plans
    result = SettleResult()
    open_rows = (
        connection.execute(
            sa.select(changes).where(changes.c.state == "sent").order_by(changes.c.id)
        )
        .mappings()
        .all()
    )
    manager_ids = _manager_ids(connection, [row["data"] for row in open_rows])
    items = [
        WorkItem(
            row["id"],
            row["action"],
            row["key"],
            row["staffbase_id"],
            row["data"],
            manager_id=manager_ids.get(row["data"].get("manager_key") or ""),
        )
        for row in open_rows
    ]

    for batch in _one_change_per_key(items):
        _settle_batch(connection, client, batch, now, max(1, concurrency), result)

    interrupted = connection.execute(
        sa.update(plans)
        .where(plans.c.status == "applying")
        .values(status="interrupted", finished_at=now)
    ).rowcount
    connection.execute(
        sa.update(changes)
        .where(
            changes.c.state == "planned",
            changes.c.plan_id.in_(sa.select(plans.c.id).where(plans.c.status == "interrupted")),
        )
        .values(state="abandoned", updated_at=now)
    )
    _close_dead_runs(connection, now, run_id)
    connection.commit()

    if open_rows or interrupted:
        log.info(
            "open_changes_settled",
            confirmed=result.confirmed,
            abandoned=result.abandoned,
            unsettled=result.unsettled,
            interrupted_plans=interrupted,
        )
    return result


def _close_dead_runs(connection: sa.Connection, now: datetime, current: str | None) -> None:
    """Count what the runs of killed processes applied, once their changes are settled.

    Starting a run marks any run still recorded as running as failed, without a finish
    time: the caller holds the run lock, so such a run died. Each is counted here from
    its journal, so the users it created appear in its record.
    """
    runs, changes, plans = schema.runs, schema.changes, schema.plans
    dead = connection.execute(
        sa.select(runs.c.id).where(
            runs.c.status == "failed", runs.c.finished_at.is_(None), runs.c.id != current
        )
    ).scalars()
    for dead_id in list(dead):
        # A run records its plan only when it finishes, but the plan records its run at once.
        plan_id = connection.execute(
            sa.select(plans.c.id).where(plans.c.run_id == dead_id).limit(1)
        ).scalar_one_or_none()
        counts = dict.fromkeys(COUNT_KEYS, 0)
        done = connection.execute(
            sa.select(changes.c.outcome, sa.func.count())
            .where(changes.c.plan_id == plan_id, changes.c.state == "done")
            .group_by(changes.c.outcome)
        )
        for outcome, count in done:
            if outcome in PAST_TENSE:
                counts[PAST_TENSE[outcome]] += count
        connection.execute(
            sa.update(runs)
            .where(runs.c.id == dead_id)
            .values(
                finished_at=now,
                plan_id=plan_id,
                counts=counts,
                error="the process ended before the run finished; the counts are the changes"
                " it applied, as the next run confirmed them",
            )
        )
        log.warning("dead_run_closed", run_id=dead_id, plan_id=plan_id, **counts)


def _manager_ids(connection: sa.Connection, data: list[dict[str, Any]]) -> dict[str, str]:
    """Return the Staffbase id of every manager that the open changes set, by key."""
    keys = sorted({d["manager_key"] for d in data if d.get("set_manager") and d.get("manager_key")})
    if not keys:
        return {}
    users = schema.users
    rows = connection.execute(
        sa.select(users.c.key, users.c.staffbase_id).where(users.c.key.in_(keys))
    )
    return {key: staffbase_id for key, staffbase_id in rows}


def _one_change_per_key(items: list[WorkItem]) -> list[list[WorkItem]]:
    """Split ``items`` into batches in which each key appears once, in journal order.

    Two open changes of one person (left by two crashed plans) are settled one after
    the other, so that the later result is the one recorded last.
    """
    batches: list[list[WorkItem]] = []
    seen_in: dict[str, int] = {}
    for item in items:
        index = seen_in.get(item.key, -1) + 1
        if index == len(batches):
            batches.append([])
        batches[index].append(item)
        seen_in[item.key] = index
    return batches


def _settle_batch(
    connection: sa.Connection,
    client: StaffbaseClient,
    items: list[WorkItem],
    now: datetime,
    concurrency: int,
    result: SettleResult,
) -> None:
    """Check ``items`` from a pool of worker threads and record each result in this one."""
    changes = schema.changes
    with ThreadPoolExecutor(
        max_workers=min(concurrency, len(items)), thread_name_prefix="staffsync-settle"
    ) as pool:
        # Each check runs in a copy of this thread's context so its log lines keep the run_id.
        futures = {
            pool.submit(contextvars.copy_context().run, _confirm, client, item): item
            for item in items
        }
        try:
            for future in as_completed(futures):
                item = futures[future]
                try:
                    outcome = future.result()
                except RecordFailed as exc:
                    log.warning(
                        "open_change_unsettled", key=item.key, action=item.action, error=str(exc)
                    )
                    result.unsettled += 1
                    continue
                if outcome is None:
                    connection.execute(
                        sa.update(changes)
                        .where(changes.c.id == item.change_id)
                        .values(state="abandoned", outcome="not applied", updated_at=now)
                    )
                    result.abandoned += 1
                else:
                    record_outcomes(connection, [outcome], now)
                    result.confirmed += 1
                connection.commit()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _confirm(client: StaffbaseClient, item: WorkItem) -> Outcome | None:
    """Return the outcome Staffbase shows for ``item``, or None when it did not happen."""
    if item.action == Action.CREATE:
        return _confirm_create(client, item)
    if item.staffbase_id is None:
        return None
    user = client.get_user(item.staffbase_id)
    if user is None:
        return Outcome(item, GONE, message="the user no longer exists")
    return _confirm_change(item, user)


def _confirm_create(client: StaffbaseClient, item: WorkItem) -> Outcome | None:
    user = client.find_user_by_external_id(item.key)
    if user is None:
        return None
    current = read_user_fields(user)
    applied = {name: current.get(name) for name in (item.data.get("set") or {})}
    confirmed = WorkItem(
        item.change_id, item.action, item.key, user["id"], {**item.data, "set": applied}
    )
    # The state takes the manager over only when Staffbase shows the one wanted;
    # otherwise the next run compares the record again and sets it.
    manager_set = _manager_checkable(item) and current.get("manager") == _wanted_manager(item)
    return Outcome(confirmed, Action.CREATE, user=user, manager_sent=manager_set)


def _confirm_change(item: WorkItem, user: dict[str, Any]) -> Outcome | None:
    """Tell from the user as it is now whether an update, (re)activation or deactivation landed."""
    status = user.get("status")
    manager_set = False
    if item.action == Action.DELETE:
        landed = False
    elif item.action == Action.DEACTIVATE:
        landed = status == "deactivated"
    else:
        current = read_user_fields(user)
        wanted = item.data.get("set") or {}
        landed = all(current.get(name) == value for name, value in wanted.items())
        if _manager_checkable(item):
            # A change of the manager alone has nothing in "set" to compare.
            manager_set = current.get("manager") == _wanted_manager(item)
            landed = landed and manager_set
        if item.action == Action.REACTIVATE:
            landed = landed and status == "activated"
    if not landed:
        return None
    return Outcome(item, item.action, user=user, manager_sent=manager_set)


def _manager_checkable(item: WorkItem) -> bool:
    """Tell whether the change set a manager that its request could carry.

    A manager without a Staffbase user was left out of the request (see
    :func:`staffsync.engine.actions.execute`), so there is nothing to compare.
    """
    if not item.data.get("set_manager"):
        return False
    return item.data.get("manager_key") is None or item.manager_id is not None


def _wanted_manager(item: WorkItem) -> str | None:
    return item.manager_id if item.data.get("manager_key") is not None else None
