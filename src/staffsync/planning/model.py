"""The parts of a plan: actions, phases and the planned changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "Action",
    "Phase",
    "PlannedChange",
]


class Action:
    """Names of plan actions; each but RECORD sends requests to Staffbase."""

    CREATE: Final = "create"
    UPDATE: Final = "update"
    REACTIVATE: Final = "reactivate"
    DEACTIVATE: Final = "deactivate"
    DELETE: Final = "delete"
    RECORD: Final = "record"
    """Store a new record hash or lookup value in the state DB; Staffbase is not touched."""


# The run report counts what happened in the past tense.
PAST_TENSE = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.REACTIVATE: "reactivated",
    Action.DEACTIVATE: "deactivated",
    Action.DELETE: "deleted",
}


class Phase:
    """The order in which a plan is applied; each phase finishes before the next starts.

    People are created in waves: someone whose manager is created in the same run goes
    one phase after that manager, so that the manager's Staffbase id exists when the
    person's request is sent and the manager can be set in the same request.
    """

    STATE: Final = 0
    """State-only bookkeeping."""
    PEOPLE: Final = 1
    """Updates, reactivations, and creates of people whose manager already exists."""
    LEAVERS: Final = 1_000_000
    """Deactivations and deletions, last, so an interrupted run has removed no one early."""

    @staticmethod
    def after_manager(manager_wave: int) -> int:
        """Return the phase of a change that needs a manager created in ``manager_wave``."""
        return Phase.PEOPLE + manager_wave + 1


@dataclass(slots=True)
class PlannedChange:
    """One change of a plan.

    ``data`` contains what the engine needs to apply it (fields to send, the manager's key,
    the new record hash …) and, under ``"diff"``, the before and after value of every
    field the change touches, which ``plan`` prints and the run report lists.
    """

    seq: int
    phase: int
    action: str
    key: str
    staffbase_id: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def as_report(self) -> dict[str, Any]:
        """Return the run-report form: action, key, Staffbase id and field diffs."""
        entry: dict[str, Any] = {
            "action": self.action,
            "key": self.key,
            "staffbase_id": self.staffbase_id,
            "fields": self.data.get("diff", {}),
        }
        if reason := self.data.get("reason"):
            entry["reason"] = reason
        return entry
