"""Write a plan's journal and its outcomes to the state database.

Every change is marked ``sent`` (and committed) before its request goes out, and marked
``done`` or ``failed`` together with its effect on the ``users`` table after the response
arrives, in one transaction. A change left ``sent`` after a crash is therefore exactly
one whose outcome is unknown; :func:`staffsync.engine.settle.settle_open_intents` resolves
those before the next plan is made.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from staffsync.engine.actions import GONE, Outcome, WorkItem, manager_before
from staffsync.planning.model import Action
from staffsync.planning.staging import insert_rows
from staffsync.state import schema
from staffsync.state.upsert import upsert

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

__all__ = [
    "RETRY_DELAYS",
    "apply_records",
    "bump_state_version",
    "mark_sent",
    "record_outcomes",
    "revert_unsent",
]

# Delay before a failed record is tried again, by the number of failures so far: the
# first failure is retried by the very next run, later ones wait longer and longer.
RETRY_DELAYS = (
    timedelta(0),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=4),
    timedelta(hours=12),
)
STUCK_AFTER_ATTEMPTS = len(RETRY_DELAYS)
"""Failures after which a record is reported as stuck; it is still retried twice a day."""


def mark_sent(connection: sa.Connection, change_ids: Sequence[int], now: datetime) -> None:
    """Record the intent to send ``change_ids``; the caller commits before sending."""
    changes = schema.changes
    connection.execute(
        sa.update(changes).where(changes.c.id.in_(change_ids)).values(state="sent", updated_at=now)
    )


def revert_unsent(connection: sa.Connection, change_ids: Sequence[int]) -> None:
    """Return changes marked sent but never submitted (the run is stopping) to planned."""
    if change_ids:
        changes = schema.changes
        connection.execute(
            sa.update(changes).where(changes.c.id.in_(change_ids)).values(state="planned")
        )


def bump_state_version(connection: sa.Connection) -> None:
    """Count a change to the users table, so a held plan can tell the state moved on."""
    meta = schema.state_meta
    current = connection.execute(
        sa.select(meta.c.value).where(meta.c.name == "state_version")
    ).scalar_one_or_none()
    value = str(int(current or 0) + 1)
    upsert(connection, meta, [{"name": "state_version", "value": value}], ["name"])


def record_outcomes(connection: sa.Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Store each outcome: the journal entry, the user's state row, and failure tracking.

    The rows of many outcomes are written with a few multi-row statements, because the
    main thread records outcomes while the workers wait for more changes to send.
    """
    if not outcomes:
        return

    for batch in _batches_of_distinct_keys(outcomes):
        writes = _Writes(now)
        stored_fields = _current_fields(connection, [o.item.key for o in batch])
        for outcome in batch:
            _record_one(writes, outcome, stored_fields.get(outcome.item.key), now)
        writes.execute(connection)
    bump_state_version(connection)


_record_updates = sa.Table(
    "record_updates",
    sa.MetaData(),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("record_hash", sa.LargeBinary(16), nullable=True),
    sa.Column("match_value", sa.Text, nullable=True),
    sa.Column("email_key", sa.Text, nullable=True),
    sa.Column("hr_active", sa.Boolean, nullable=False),
    prefixes=["TEMPORARY"],
)
_KEYS_PER_STATEMENT = 500
_RECORD_COLUMNS = ("key", "record_hash", "match_value", "email_key", "hr_active")


def apply_records(
    connection: sa.Connection, items: Iterable[tuple[str, dict[str, Any]]], now: datetime
) -> int:
    """Apply state-only changes (new record hashes, lookup values); return how many.

    The new values are bulk-loaded into a temporary table and applied by one UPDATE,
    because after a ``[mapping]`` edit every user of a large roster gets one, and one
    statement per user would take minutes. Each key may appear once in ``items``.
    """
    rows = [
        (
            key,
            bytes.fromhex(record["record_hash"]) if record["record_hash"] else None,
            record.get("match_value"),
            record.get("email_key"),
            record["hr_active"],
        )
        for key, record in items
    ]
    if not rows:
        return 0

    updates, users = _record_updates, schema.users
    updates.create(connection, checkfirst=True)
    connection.execute(sa.delete(updates))
    insert_rows(connection, updates, _RECORD_COLUMNS, rows)

    if connection.dialect.name == "postgresql":
        new_values: dict[str, Any] = {name: updates.c[name] for name in _RECORD_COLUMNS[1:]}
        statement = sa.update(users).where(users.c.key == updates.c.key)
    else:
        # Correlated lookups rather than UPDATE … FROM, which SQLite before 3.33 lacks.
        new_values = {
            name: sa.select(updates.c[name]).where(updates.c.key == users.c.key).scalar_subquery()
            for name in _RECORD_COLUMNS[1:]
        }
        statement = sa.update(users).where(users.c.key.in_(sa.select(updates.c.key)))
    connection.execute(
        statement.values(
            **new_values,
            updated_at=now,
            left_at=sa.case(
                (new_values["hr_active"], None),
                else_=sa.func.coalesce(users.c.left_at, now),
            ),
        )
    )
    updates.drop(connection)
    bump_state_version(connection)
    return len(rows)


def _current_fields(connection: sa.Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    users = schema.users
    rows = connection.execute(
        sa.select(users.c.key, users.c.fields, users.c.groups).where(users.c.key.in_(keys))
    )
    return {key: {"fields": fields or {}, "groups": groups} for key, fields, groups in rows}


def _batches_of_distinct_keys(outcomes: Sequence[Outcome]) -> list[list[Outcome]]:
    """Split ``outcomes`` into batches in which each key appears once, keeping their order.

    The writes of one batch are grouped by statement, so two outcomes of one person in a
    batch could be applied in the wrong order.
    """
    batches: list[list[Outcome]] = []
    keys_of_last: set[str] = set()
    for outcome in outcomes:
        if not batches or outcome.item.key in keys_of_last:
            batches.append([])
            keys_of_last = set()
        batches[-1].append(outcome)
        keys_of_last.add(outcome.item.key)
    return batches


class _Writes:
    """The state rows that a batch of outcomes changes, written by statement kind."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.changes: list[dict[str, Any]] = []
        self.change_data: list[dict[str, Any]] = []
        self.failures: list[tuple[str, str, str]] = []
        self.cleared_failures: list[str] = []
        self.deleted_users: list[str] = []
        self.updated_users: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        self.upserted_users: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def update_user(self, key: str, values: dict[str, Any]) -> None:
        self.updated_users.setdefault(tuple(sorted(values)), []).append({**values, "key": key})

    def upsert_user(self, values: dict[str, Any]) -> None:
        self.upserted_users.setdefault(tuple(sorted(values)), []).append(values)

    def execute(self, connection: sa.Connection) -> None:
        users, changes, failures = schema.users, schema.changes, schema.failures
        # executemany needs bound parameter names that differ from the column names.
        if self.changes:
            connection.execute(
                sa.update(changes)
                .where(changes.c.id == sa.bindparam("p_id"))
                .values(
                    state=sa.bindparam("p_state"),
                    outcome=sa.bindparam("p_outcome"),
                    staffbase_id=sa.bindparam("p_staffbase_id"),
                    updated_at=self.now,
                ),
                self.changes,
            )
        if self.change_data:
            connection.execute(
                sa.update(changes)
                .where(changes.c.id == sa.bindparam("p_id"))
                .values(data=sa.bindparam("p_data")),
                self.change_data,
            )
        for key, action, message in self.failures:
            _record_failure(connection, key, action, message, self.now)
        for keys in _chunks(self.cleared_failures):
            connection.execute(sa.delete(failures).where(failures.c.key.in_(keys)))
        for keys in _chunks(self.deleted_users):
            connection.execute(sa.delete(users).where(users.c.key.in_(keys)))

        for columns, rows in self.updated_users.items():
            connection.execute(
                sa.update(users)
                .where(users.c.key == sa.bindparam("p_key"))
                .values({name: sa.bindparam(f"p_{name}") for name in columns}),
                [{f"p_{name}": value for name, value in row.items()} for row in rows],
            )
        for rows in self.upserted_users.values():
            upsert(connection, users, rows, ["key"])


def _chunks(keys: list[str], size: int = 500) -> list[list[str]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]


def _record_one(
    writes: _Writes, outcome: Outcome, stored: dict[str, Any] | None, now: datetime
) -> None:
    """Add the writes that store ``outcome`` to ``writes``."""
    item = outcome.item

    staffbase_id = (outcome.user or {}).get("id") or item.staffbase_id
    writes.changes.append(
        {
            "p_id": item.change_id,
            "p_state": "failed" if outcome.done == "failed" else "done",
            "p_outcome": _outcome_text(outcome),
            "p_staffbase_id": staffbase_id,
        }
    )
    if outcome.done == "failed":
        writes.failures.append((item.key, item.action, outcome.message or ""))
        return
    writes.cleared_failures.append(item.key)
    if manager_unset(outcome):
        writes.change_data.append({"p_id": item.change_id, "p_data": _as_applied(item)})

    if outcome.done in (Action.DELETE, GONE):
        writes.deleted_users.append(item.key)
        return

    record = item.data.get("record")
    values: dict[str, Any] = {"updated_at": now}
    if record is not None:
        values.update(
            record_hash=bytes.fromhex(record["record_hash"]) if record.get("record_hash") else None,
            match_value=record.get("match_value"),
            email_key=record.get("email_key"),
        )
    if item.data.get("set_manager") and item.data.get("manager_key") and not outcome.manager_sent:
        # The manager has no Staffbase user yet: forget the record hash so that the next
        # run compares this record again and sets the manager once it can.
        values["record_hash"] = None

    if outcome.done == Action.DEACTIVATE:
        values.update(status="deactivated", hr_active=False, left_at=now)
        writes.update_user(item.key, values)
        return

    sent = dict(item.data.get("set") or {})
    manager_key = item.data.get("manager_key") if outcome.manager_sent else None
    if outcome.done == Action.CREATE:
        assert outcome.user is not None
        values.update(
            key=item.key,
            staffbase_id=outcome.user["id"],
            status=outcome.user.get("status") or "pending",
            hr_active=True,
            fields=sent,
            manager_key=manager_key,
            groups=None,
            left_at=None,
            created_at=now,
        )
        writes.upsert_user(values)
        return

    if item.data.get("adopt"):
        # An adopted user enters the state with what Staffbase held plus what was sent.
        baseline = item.data.get("baseline") or {}
        stored = {"fields": baseline.get("fields") or {}}
        values.update(
            key=item.key,
            staffbase_id=item.staffbase_id,
            created_at=now,
            status=(outcome.user or {}).get("status") or baseline.get("status"),
            hr_active=True,
            left_at=None,
            groups=None,
            manager_key=baseline.get("manager_key"),
        )

    merged = dict((stored or {}).get("fields") or {})
    merged.update(sent)
    values["fields"] = merged
    if outcome.manager_sent:
        values["manager_key"] = manager_key
    elif manager_unset(outcome) and manager_before(item) is not None:
        values["manager_key"] = None
    if outcome.done == Action.REACTIVATE:
        values.update(status="activated", hr_active=True, left_at=None)
    if item.data.get("adopt"):
        writes.upsert_user(values)
        return
    writes.update_user(item.key, values)


def _record_failure(
    connection: sa.Connection, key: str, action: str, message: str, now: datetime
) -> None:
    failures = schema.failures
    previous = connection.execute(
        sa.select(failures.c.attempts, failures.c.first_failed_at).where(failures.c.key == key)
    ).first()
    attempts = (previous.attempts if previous else 0) + 1
    delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    upsert(
        connection,
        failures,
        [
            {
                "key": key,
                "action": action,
                "attempts": attempts,
                "first_failed_at": previous.first_failed_at if previous else now,
                "last_failed_at": now,
                "next_attempt_at": now + delay,
                "last_error": message[:2000],
            }
        ],
        ["key"],
    )


def _outcome_text(outcome: Outcome) -> str:
    """Return the text for the change's ``outcome`` column: the action taken, or why none."""
    if outcome.done == "failed":
        return f"failed: {outcome.message}"
    if outcome.adopted:
        return Action.UPDATE if outcome.sent else "adopted"
    return outcome.done


def manager_unset(outcome: Outcome) -> bool:
    """Tell whether the change named a manager that could not be sent (no user yet)."""
    item = outcome.item
    return (
        outcome.done not in ("failed", GONE)
        and bool(item.data.get("set_manager"))
        and item.data.get("manager_key") is not None
        and not outcome.manager_sent
    )


def _as_applied(item: WorkItem) -> dict[str, Any]:
    """Return the change's data with its manager diff as applied: cleared or left out."""
    data = dict(item.data)
    diff = dict(data.get("diff") or {})
    before = manager_before(item)
    if before is not None and item.action != Action.CREATE:
        diff["manager"] = {"before": before, "after": None}
    else:
        diff.pop("manager", None)
    data["diff"] = diff
    return data
