"""Apply one planned change to Staffbase; runs in a worker thread.

Each function returns an :class:`Outcome` saying what was actually done, which can
differ from the plan: a create may adopt a user that already has the externalID, and a
pending leaver who signed in meanwhile is deactivated rather than deleted. Errors for
this record alone become a failed outcome; errors that concern every request (bad
credentials) are raised and stop the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from staffsync.planning.model import Action
from staffsync.staffbase.errors import ConflictError, OutcomeUnknown, RecordFailed
from staffsync.staffbase.model import build_user_body, read_user_fields

if TYPE_CHECKING:
    from staffsync.staffbase.client import StaffbaseClient

__all__ = ["GONE", "NOTHING_SENT", "Outcome", "WorkItem", "execute", "manager_before"]

log = structlog.get_logger(__name__)

GONE = "gone"
"""Outcome of a change whose Staffbase user no longer exists."""
NOTHING_SENT = "nothing sent"
"""Outcome of an update whose only change was a manager that has no Staffbase user yet."""


@dataclass(slots=True)
class WorkItem:
    """A planned change ready to run: its journal id and the Staffbase ids it needs."""

    change_id: int
    action: str
    key: str
    staffbase_id: str | None
    data: dict[str, Any]
    manager_id: str | None = None
    """The manager's Staffbase id, looked up just before; None when there is none yet."""
    send_invitation: bool = False
    verify_before_create: bool = False


@dataclass(slots=True)
class Outcome:
    """The result of one change."""

    item: WorkItem
    done: str
    """The action taken (create, update, …), ``gone``, or ``failed``."""
    user: dict[str, Any] | None = None
    message: str | None = None
    manager_sent: bool = False
    adopted: bool = False
    """A create found the user already in Staffbase and took it over."""
    sent: bool = True
    """False when the change turned out to need no request."""


def execute(client: StaffbaseClient, item: WorkItem) -> Outcome:
    """Apply ``item`` and report what happened; raise only for run-wide failures."""
    try:
        if item.action == Action.CREATE:
            return _create(client, item)
        if item.action in (Action.UPDATE, Action.REACTIVATE):
            return _update(client, item)
        if item.action == Action.DEACTIVATE:
            return _deactivate(client, item)
        if item.action == Action.DELETE:
            return _delete(client, item)
    except RecordFailed as exc:
        return Outcome(item, "failed", message=str(exc))
    msg = f"the engine cannot apply action {item.action!r}"
    raise ValueError(msg)


def _flat_fields(item: WorkItem) -> tuple[dict[str, Any], bool]:
    """Return the flat fields to send, with the manager's Staffbase id when it is known.

    The second value is True when the planned manager was included. A manager without a
    Staffbase user yet (their create failed) cannot be sent: the person's current
    manager is cleared instead, as when the planner finds such a manager, and a later
    run sets the new one.
    """
    fields = dict(item.data.get("set") or {})
    if not item.data.get("set_manager"):
        return fields, False
    if item.data.get("manager_key") is None:
        fields["manager"] = None
        return fields, True
    if item.manager_id is not None:
        fields["manager"] = item.manager_id
        return fields, True
    if manager_before(item) is not None:
        fields["manager"] = None
    return fields, False


def manager_before(item: WorkItem) -> str | None:
    """Return the key of the manager the person had before this change, if any."""
    change = (item.data.get("diff") or {}).get("manager") or {}
    before = change.get("before")
    return before if isinstance(before, str) else None


def _body(item: WorkItem, *, status: str | None = None) -> tuple[dict[str, Any], bool]:
    fields, manager_sent = _flat_fields(item)
    adopting = item.action == Action.CREATE or bool(item.data.get("adopt"))
    external_id = item.key if adopting else None
    send_mail = item.send_invitation if item.action == Action.CREATE else None
    body = build_user_body(fields, external_id=external_id, status=status, send_mail=send_mail)
    return body, manager_sent


def _create(client: StaffbaseClient, item: WorkItem) -> Outcome:
    if item.verify_before_create:
        existing = client.find_user_by_external_id(item.key)
        if existing is not None:
            return _adopt(client, item, existing)

    body, manager_sent = _body(item)
    # Each round is sent again only after a lookup showed the user was not created.
    attempts = client.settings.max_attempts
    for _attempt in range(attempts):
        try:
            user = client.create_user(body)
        except ConflictError as exc:
            if exc.field != "externalID":
                raise
            existing = client.find_user_by_external_id(item.key)
            if existing is None:
                raise
            return _adopt(client, item, existing)
        except OutcomeUnknown:
            # The request may have created the user: look before sending it again.
            existing = client.find_user_by_external_id(item.key)
            if existing is not None:
                return _adopt(client, item, existing, created_by_us=True)
            continue
        return Outcome(item, Action.CREATE, user=user, manager_sent=manager_sent)

    msg = (
        f"creating {item.key!r} failed {attempts} times without a response from"
        " Staffbase, and no user with that externalID exists; it is tried again next run"
    )
    raise RecordFailed(msg)


def _adopt(
    client: StaffbaseClient,
    item: WorkItem,
    existing: dict[str, Any],
    *,
    created_by_us: bool = False,
) -> Outcome:
    """Take over a user that already carries the key as externalID, fixing its fields."""
    current = read_user_fields(existing)
    wanted, manager_sent = _flat_fields(item)
    differing = {name: value for name, value in wanted.items() if current.get(name) != value}
    user = existing
    if differing:
        user = client.update_user(existing["id"], build_user_body(differing))
    # A create whose response was lost found its own user; any other user existed before.
    event = "create_confirmed" if created_by_us else "user_adopted"
    log.info(event, key=item.key, staffbase_id=existing["id"], fields=sorted(differing))
    return Outcome(
        item,
        Action.CREATE,
        user=user,
        manager_sent=manager_sent,
        adopted=not created_by_us,
        sent=bool(differing),
    )


def _update(client: StaffbaseClient, item: WorkItem) -> Outcome:
    assert item.staffbase_id is not None
    status = "activated" if item.action == Action.REACTIVATE else None
    body, manager_sent = _body(item, status=status)
    if not body:
        return Outcome(item, NOTHING_SENT, manager_sent=manager_sent, sent=False)

    try:
        user = client.update_user(item.staffbase_id, body)
    except RecordFailed as exc:
        if _is_not_found(exc):
            return _gone(item)
        raise
    return Outcome(item, item.action, user=user, manager_sent=manager_sent)


def _deactivate(client: StaffbaseClient, item: WorkItem) -> Outcome:
    assert item.staffbase_id is not None
    try:
        user = client.update_user(item.staffbase_id, {"status": "deactivated"})
    except RecordFailed as exc:
        if _is_not_found(exc):
            return _gone(item)
        current = client.get_user(item.staffbase_id)
        if current is None:
            return _gone(item)
        if current.get("status") == "pending":
            # Staffbase cannot deactivate an invited user; the invitation is removed instead.
            client.delete_user(item.staffbase_id)
            return Outcome(item, Action.DELETE)
        raise
    return Outcome(item, Action.DEACTIVATE, user=user)


def _delete(client: StaffbaseClient, item: WorkItem) -> Outcome:
    assert item.staffbase_id is not None
    if item.data.get("verify_pending"):
        # The person may have signed in since the state saw them: never delete an
        # activated account because of a stale status.
        current = client.get_user(item.staffbase_id)
        if current is None:
            return _gone(item)
        if current.get("status") == "activated":
            return _deactivate(client, item)
        if current.get("status") == "deactivated":
            return Outcome(item, Action.DEACTIVATE, user=current)

    client.delete_user(item.staffbase_id)
    return Outcome(item, Action.DELETE)


def _gone(item: WorkItem) -> Outcome:
    return Outcome(
        item,
        GONE,
        message=(
            f"Staffbase user {item.staffbase_id} of {item.key!r} no longer exists (deleted"
            " outside staffsync); it is forgotten, and created again if HR still lists the person"
        ),
    )


def _is_not_found(exc: RecordFailed) -> bool:
    return getattr(exc, "status", None) == 404
