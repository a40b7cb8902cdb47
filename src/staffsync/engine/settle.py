"""Resolve changes left ``sent`` by a run that died before recording their outcome.

Staffbase has no idempotency keys, so a create whose answer never arrived must not simply
be sent again: the user is looked up by externalID first. Updates, reactivations and
deactivations are checked by reading the user back. Whatever cannot be confirmed is
marked abandoned; the state then still shows the old values, so the next plan makes the
same change again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from staffsync.engine.actions import GONE, Outcome, WorkItem
from staffsync.engine.journal import record_outcomes
from staffsync.planning.model import Action
from staffsync.staffbase.model import read_user_fields
from staffsync.state import schema

if TYPE_CHECKING:
    from datetime import datetime

    from staffsync.staffbase.client import StaffbaseClient

__all__ = ["SettleResult", "settle_open_intents"]

log = structlog.get_logger(__name__)


@dataclass
class SettleResult:
    """How many open changes were confirmed as applied and how many were abandoned."""

    confirmed: int = 0
    abandoned: int = 0


def settle_open_intents(
    connection: sa.Connection, client: StaffbaseClient, now: datetime
) -> SettleResult:
    """Settle every change journaled as sent but never recorded, then close old plans."""
    changes, plans = schema.changes, schema.plans
    result = SettleResult()
    open_rows = (
        connection.execute(
            sa.select(changes).where(changes.c.state == "sent").order_by(changes.c.id)
        )
        .mappings()
        .all()
    )

    for row in open_rows:
        item = WorkItem(row["id"], row["action"], row["key"], row["staffbase_id"], row["data"])
        outcome = _confirm(client, item)
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
    connection.commit()

    if open_rows or interrupted:
        log.info(
            "open_changes_settled",
            confirmed=result.confirmed,
            abandoned=result.abandoned,
            interrupted_plans=interrupted,
        )
    return result


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
    return Outcome(confirmed, Action.CREATE, user=user)


def _confirm_change(item: WorkItem, user: dict[str, Any]) -> Outcome | None:
    """Tell from the user as it is now whether an update, (re)activation or deactivation landed."""
    status = user.get("status")
    if item.action == Action.DELETE:
        landed = False
    elif item.action == Action.DEACTIVATE:
        landed = status == "deactivated"
    else:
        current = read_user_fields(user)
        wanted = item.data.get("set") or {}
        landed = all(current.get(name) == value for name, value in wanted.items())
        if item.action == Action.REACTIVATE:
            landed = landed and status == "activated"
    return Outcome(item, item.action, user=user) if landed else None
