"""Apply group memberships after the people of a plan exist in Staffbase.

The HR groups field names the groups each person belongs to. Staffbase groups are found
by name (any letter case) and created when missing. Memberships are changed group by
group in batches, which costs one request per group rather than one per person. Only
memberships staffsync added itself (the state's ``groups`` column) are ever removed, so
groups that administrators manage by hand keep their other members.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from staffsync.engine.journal import bump_state_version
from staffsync.planning.model import Action
from staffsync.staffbase.errors import OutcomeUnknown, RecordFailed
from staffsync.state import schema

if TYPE_CHECKING:
    from datetime import datetime

    from staffsync.staffbase.client import StaffbaseClient

__all__ = ["GroupResult", "apply_group_memberships"]

log = structlog.get_logger(__name__)


@dataclass
class GroupResult:
    """The result of the membership phase."""

    groups_created: int = 0
    memberships_added: int = 0
    memberships_removed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Member:
    key: str
    staffbase_id: str
    before: set[str]
    after: list[str]


def apply_group_memberships(
    connection: sa.Connection, client: StaffbaseClient, plan_id: str, now: datetime
) -> GroupResult:
    """Bring the memberships of every person this plan changed in line with HR."""
    result = GroupResult()
    members = _members_to_update(connection, plan_id)
    if not members:
        return result

    adds: dict[str, list[_Member]] = defaultdict(list)
    removes: dict[str, list[_Member]] = defaultdict(list)
    for member in members:
        wanted = {name.casefold(): name for name in member.after}
        for folded, name in wanted.items():
            if folded not in member.before:
                adds[name].append(member)
        for folded in member.before - wanted.keys():
            removes[folded].append(member)

    failed_keys: set[str] = set()
    group_ids = _group_ids(client, set(adds), result, failed_keys, adds)
    for name, batch in adds.items():
        group_id = group_ids.get(name.casefold())
        if group_id is not None:
            _change(client.add_group_members, group_id, name, batch, result, failed_keys)
            result.memberships_added += len(batch)
    for folded, batch in removes.items():
        group_id = group_ids.get(folded)
        if group_id is not None:
            _change(client.remove_group_members, group_id, folded, batch, result, failed_keys)
            result.memberships_removed += len(batch)

    _record(connection, members, failed_keys, now)
    return result


def _members_to_update(connection: sa.Connection, plan_id: str) -> list[_Member]:
    changes, users = schema.changes, schema.users
    rows = connection.execute(
        sa.select(changes.c.key, changes.c.data, users.c.staffbase_id, users.c.groups)
        .join(users, users.c.key == changes.c.key)
        .where(
            changes.c.plan_id == plan_id,
            changes.c.state == "done",
            changes.c.action.in_((Action.CREATE, Action.UPDATE, Action.REACTIVATE)),
        )
    ).all()
    members = []
    for key, data, staffbase_id, groups in rows:
        if data.get("groups") is None:
            continue
        before = {name.casefold() for name in groups or []}
        members.append(_Member(key, staffbase_id, before, list(data["groups"])))
    return members


def _group_ids(
    client: StaffbaseClient,
    names: set[str],
    result: GroupResult,
    failed_keys: set[str],
    adds: dict[str, list[_Member]],
) -> dict[str, str]:
    """Map group names (case-folded) to Staffbase group ids, creating missing groups."""
    ids: dict[str, str] = {}
    for group in client.iter_groups():
        name = group.get("name")
        if isinstance(name, str):
            ids.setdefault(name.casefold(), group["id"])

    for name in sorted(names):
        if name.casefold() in ids:
            continue
        try:
            created = client.create_group(name, external_id=name)
        except OutcomeUnknown:
            found = [
                g
                for g in client.iter_groups()
                if str(g.get("name", "")).casefold() == name.casefold()
            ]
            if not found:
                _fail(result, failed_keys, adds[name], f"creating group {name!r} failed")
                continue
            created = found[0]
        except RecordFailed as exc:
            _fail(result, failed_keys, adds[name], f"creating group {name!r} failed: {exc}")
            continue
        ids[name.casefold()] = created["id"]
        result.groups_created += 1
        log.info("group_created", group=name, group_id=created["id"])
    return ids


def _change(
    call: Any,
    group_id: str,
    name: str,
    batch: list[_Member],
    result: GroupResult,
    failed_keys: set[str],
) -> None:
    try:
        call(group_id, [member.staffbase_id for member in batch])
    except (RecordFailed, OutcomeUnknown) as exc:
        _fail(result, failed_keys, batch, f"changing the members of group {name!r} failed: {exc}")


def _fail(result: GroupResult, failed_keys: set[str], batch: list[_Member], message: str) -> None:
    log.warning("group_membership_failed", people=len(batch), error=message)
    for member in batch:
        failed_keys.add(member.key)
        result.failed.append({"key": member.key, "action": "groups", "message": message})


def _record(
    connection: sa.Connection, members: list[_Member], failed_keys: set[str], now: datetime
) -> None:
    """Store the memberships that were applied; people with a failure are compared again
    on the next run, because their record hash is forgotten."""
    users = schema.users
    for member in members:
        if member.key in failed_keys:
            values: dict[str, Any] = {"record_hash": None, "updated_at": now}
        else:
            values = {"groups": sorted(member.after), "updated_at": now}
        connection.execute(sa.update(users).where(users.c.key == member.key).values(**values))
    bump_state_version(connection)
    connection.commit()
