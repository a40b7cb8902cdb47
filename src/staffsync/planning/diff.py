"""Decide what one person needs: compare a mapped record with what Staffbase holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from staffsync.planning.model import Action, Phase, PlannedChange

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    wave: int | None,
    manager_wave: int | None,
) -> list[PlannedChange]:
    """Plan the changes for one accepted record whose raw values changed.

    Args:
        key: the employee key.
        active: whether HR lists the person as active.
        manager_key: the resolved manager key (None: no manager), if the record names one.
        data: the mapped record as the planner stored it (fields, manager_ref, groups …).
        state: the person's row in the baseline table, or None if Staffbase has no user.
        settings: the configuration.
        wave: the wave in which this plan creates the person (see :class:`Phase`), or
            None when the person is not created by it.
        manager_wave: the wave in which this plan creates the person's manager, or None
            when the manager exists already; a created manager has no Staffbase id yet.

    Returns:
        Zero or more changes. A change that sets a manager created in the same run is
        placed in a phase after that manager's wave.
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
        return _plan_create(key, data, record, manager_key if wants_manager else None, wave or 0)

    if not active:
        if state["hr_active"]:
            return plan_for_leaver(state, settings, reason="inactive", record=record)
        return _record_if_changed(key, state, record)

    diff = _field_diff(data["fields"], state["fields"] or {})
    send: dict[str, Any] = {name: change["after"] for name, change in diff.items()}
    phase = Phase.PEOPLE
    if wants_manager and manager_key != state["manager_key"]:
        diff["manager"] = {"before": state["manager_key"], "after": manager_key}
        if manager_key is not None and manager_wave is not None:
            phase = Phase.after_manager(manager_wave)

    groups = data.get("groups")
    if groups is not None and sorted(state["groups"] or []) != sorted(groups):
        diff["groups"] = {"before": sorted(state["groups"] or []), "after": sorted(groups)}

    adopt = bool(state.get("adopt"))
    if adopt:
        # A user found by e-mail gets the HR key as its externalID.
        diff["externalID"] = {"before": None, "after": key}

    reactivate = not state["hr_active"] or state["status"] == "deactivated"
    if reactivate:
        diff["status"] = {"before": state["status"], "after": "activated"}
        action = Action.REACTIVATE
    elif diff:
        action = Action.UPDATE
    else:
        return _record_if_changed(key, state, record)

    change = _change(
        action, phase, key, state["staffbase_id"], send, diff, record, manager_key, groups
    )
    if adopt:
        change.data["adopt"] = True
        change.data["baseline"] = {
            "status": state["status"],
            "fields": state["fields"],
            "manager_key": state["manager_key"],
        }
    return [change]


def plan_for_leaver(
    state: Mapping[str, Any],
    settings: Settings,
    *,
    reason: str,
    record: Mapping[str, Any] | None = None,
) -> list[PlannedChange]:
    """Plan what happens to someone HR no longer lists as active.

    Staffbase cannot deactivate a pending user (invited, never signed in), so those are
    deleted. The engine checks the status again just before, because the person may have
    signed in since the state last saw them. ``[policy] on_leave = "delete"`` deletes
    everyone. A user already deactivated (by hand in the Studio) only gets recorded.
    """
    key, staffbase_id, status = state["key"], state["staffbase_id"], state["status"]
    kept = dict(
        record
        or {
            "record_hash": None,
            "match_value": state.get("match_value"),
            "email_key": state.get("email_key"),
        }
    )
    kept["hr_active"] = False
    data: dict[str, Any] = {"reason": reason, "known_status": status, "record": kept}

    if settings.policy.on_leave == "delete" or status == "pending":
        data["diff"] = {"status": {"before": status, "after": "deleted"}}
        # Deleted only because invited: deactivate instead if they signed in meanwhile.
        data["verify_pending"] = settings.policy.on_leave != "delete"
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
    wave: int,
) -> list[PlannedChange]:
    fields = dict(data["fields"])
    diff = {
        name: {"before": None, "after": value}
        for name, value in fields.items()
        if value is not None
    }
    groups = data.get("groups")
    if groups:
        diff["groups"] = {"before": [], "after": sorted(groups)}
    if manager_key is not None:
        diff["manager"] = {"before": None, "after": manager_key}

    return [
        PlannedChange(
            0,
            Phase.PEOPLE + wave,
            Action.CREATE,
            key,
            None,
            {
                "set": {name: value for name, value in fields.items() if value is not None},
                "manager_key": manager_key,
                "set_manager": manager_key is not None,
                "groups": groups,
                "record": record,
                "diff": diff,
            },
        )
    ]


def _change(
    action: str,
    phase: int,
    key: str,
    staffbase_id: str,
    send: dict[str, Any],
    diff: dict[str, Any],
    record: dict[str, Any],
    manager_key: str | None,
    groups: list[str] | None,
) -> PlannedChange:
    set_manager = "manager" in diff
    return PlannedChange(
        0,
        phase,
        action,
        key,
        staffbase_id,
        {
            "set": send,
            "manager_key": manager_key if set_manager else None,
            "set_manager": set_manager,
            "groups": groups if "groups" in diff else None,
            "record": record,
            "diff": diff,
        },
    )


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
    return [
        PlannedChange(0, Phase.STATE, Action.RECORD, key, state["staffbase_id"], {"record": record})
    ]


def _field_diff(wanted: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {"before": current.get(name), "after": value}
        for name, value in wanted.items()
        if current.get(name) != value
    }


def _email_key(fields: Mapping[str, Any]) -> str | None:
    email = fields.get("email")
    return email.casefold() if isinstance(email, str) and email else None
