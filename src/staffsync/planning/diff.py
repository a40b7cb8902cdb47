"""Decide what one person needs: compare a mapped record with what Staffbase holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from staffsync.planning.model import Action, Phase, PlannedChange

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from staffsync.settings import Settings

__all__ = ["plan_for_desired", "plan_for_leaver"]


def plan_for_desired(
    *,
    key: str,
    active: bool,
    manager_key: str | None,
    data: Mapping[str, Any],
    state: Mapping[str, Any] | None,
    settings: Settings,
    creating: Collection[str],
) -> list[PlannedChange]:
    """Plan the changes for one accepted record whose raw values changed.

    Args:
        key: the employee key.
        active: whether HR lists the person as active.
        manager_key: the resolved manager key (None: no manager), if the record names one.
        data: the mapped record as the planner stored it (fields, manager_ref, groups …).
        state: the person's row in the baseline table, or None if Staffbase has no user.
        settings: the configuration.
        creating: keys of people this plan creates, whose Staffbase ids do not exist yet.

    Returns:
        Zero or more changes; a manager who is created in the same run is linked in a
        later phase, once their Staffbase id exists.
    """
    record = {
        "record_hash": data["record_hash"],
        "match_value": data.get("match_value"),
        "email_key": _email_key(data["fields"]),
        "hr_active": active,
    }
    wants_manager = "manager_ref" in data

    if state is None:
        if not active:
            return []
        return _plan_create(key, data, record, manager_key if wants_manager else None, creating)

    if not active:
        if state["hr_active"]:
            return plan_for_leaver(state, settings, reason="inactive", record=record)
        return _record_if_changed(key, state, record)

    diff = _field_diff(data["fields"], state["fields"] or {})
    send: dict[str, Any] = {name: change["after"] for name, change in diff.items()}
    changes: list[PlannedChange] = []
    link_later = None

    if wants_manager and manager_key != state["manager_key"]:
        manager_diff = {"before": state["manager_key"], "after": manager_key}
        if manager_key in creating:
            link_later = _manager_link(key, state["staffbase_id"], manager_key, manager_diff)
        else:
            diff["manager"] = manager_diff

    groups = data.get("groups")
    if groups is not None and sorted(state["groups"] or []) != sorted(groups):
        diff["groups"] = {"before": sorted(state["groups"] or []), "after": sorted(groups)}

    reactivate = not state["hr_active"] or state["status"] == "deactivated"
    if reactivate:
        diff["status"] = {"before": state["status"], "after": "activated"}
        changes.append(_change(Action.REACTIVATE, Phase.PEOPLE, key, state["staffbase_id"],
                               send, diff, record, "manager" in diff, manager_key, groups))
    elif diff:
        changes.append(_change(Action.UPDATE, Phase.PEOPLE, key, state["staffbase_id"],
                               send, diff, record, "manager" in diff, manager_key, groups))
    else:
        changes.extend(_record_if_changed(key, state, record))

    if link_later is not None:
        changes.append(link_later)
    return changes


def plan_for_leaver(
    state: Mapping[str, Any],
    settings: Settings,
    *,
    reason: str,
    record: Mapping[str, Any] | None = None,
) -> list[PlannedChange]:
    """Plan what happens to someone HR no longer lists as active.

    Staffbase cannot deactivate a pending user (invited, never signed in), so those are
    deleted; the engine checks the status again just before, since the person may have
    signed in since the state last saw them. ``[policy] on_leave = "delete"`` deletes
    everyone. A user already deactivated (by hand in the Studio) only gets recorded.
    """
    key, staffbase_id, status = state["key"], state["staffbase_id"], state["status"]
    kept = dict(record or {"record_hash": None, "match_value": state.get("match_value"),
                           "email_key": state.get("email_key")})
    kept["hr_active"] = False
    data: dict[str, Any] = {"reason": reason, "known_status": status, "record": kept}

    if settings.policy.on_leave == "delete" or status == "pending":
        data["diff"] = {"status": {"before": status, "after": "deleted"}}
        return [PlannedChange(0, Phase.LEAVERS, Action.DELETE, key, staffbase_id, data)]
    if status == "activated":
        data["diff"] = {"status": {"before": status, "after": "deactivated"}}
        return [PlannedChange(0, Phase.LEAVERS, Action.DEACTIVATE, key, staffbase_id, data)]
    return [PlannedChange(0, Phase.STATE, Action.RECORD, key, staffbase_id, data)]


def _plan_create(
    key: str,
    data: Mapping[str, Any],
    record: dict[str, Any],
    manager_key: str | None,
    creating: Collection[str],
) -> list[PlannedChange]:
    fields = dict(data["fields"])
    diff = {name: {"before": None, "after": value} for name, value in fields.items() if value is not None}
    groups = data.get("groups")
    if groups:
        diff["groups"] = {"before": [], "after": sorted(groups)}

    later = None
    if manager_key is not None and manager_key in creating:
        later = _manager_link(key, None, manager_key, {"before": None, "after": manager_key})
        manager_key = None
    elif manager_key is not None:
        diff["manager"] = {"before": None, "after": manager_key}

    create = PlannedChange(0, Phase.PEOPLE, Action.CREATE, key, None, {
        "set": {name: value for name, value in fields.items() if value is not None},
        "manager_key": manager_key,
        "set_manager": manager_key is not None,
        "groups": groups,
        "record": record,
        "diff": diff,
    })
    return [create] if later is None else [create, later]


def _manager_link(
    key: str, staffbase_id: str | None, manager_key: str, diff: dict[str, Any]
) -> PlannedChange:
    return PlannedChange(0, Phase.MANAGERS, Action.UPDATE, key, staffbase_id, {
        "set": {},
        "manager_key": manager_key,
        "set_manager": True,
        "groups": None,
        "record": None,
        "diff": {"manager": diff},
    })


def _change(
    action: str,
    phase: int,
    key: str,
    staffbase_id: str,
    send: dict[str, Any],
    diff: dict[str, Any],
    record: dict[str, Any],
    set_manager: bool,
    manager_key: str | None,
    groups: list[str] | None,
) -> PlannedChange:
    return PlannedChange(0, phase, action, key, staffbase_id, {
        "set": send,
        "manager_key": manager_key if set_manager else None,
        "set_manager": set_manager,
        "groups": groups if "groups" in diff else None,
        "record": record,
        "diff": diff,
    })


def _record_if_changed(
    key: str, state: Mapping[str, Any], record: dict[str, Any]
) -> list[PlannedChange]:
    stored_hash = state["record_hash"].hex() if state["record_hash"] else None
    if (
        stored_hash == record["record_hash"]
        and state["match_value"] == record["match_value"]
        and state["email_key"] == record["email_key"]
        and state["hr_active"] == record["hr_active"]
    ):
        return []
    return [PlannedChange(0, Phase.STATE, Action.RECORD, key, state["staffbase_id"],
                          {"record": record})]


def _field_diff(wanted: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {"before": current.get(name), "after": value}
        for name, value in wanted.items()
        if current.get(name) != value
    }


def _email_key(fields: Mapping[str, Any]) -> str | None:
    email = fields.get("email")
    return email.casefold() if isinstance(email, str) and email else None
