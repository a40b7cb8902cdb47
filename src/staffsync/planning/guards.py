"""Safety guards: hold a plan that would deactivate too many people at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from staffsync.planning.planner import Plan
    from staffsync.settings import Settings

__all__ = ["check_guards"]


def check_guards(plan: Plan, settings: Settings) -> str | None:
    """Return why ``plan`` must be held, or None when it may be applied.

    Deactivations and deletions of people HR stopped listing as active count against
    ``[safety] max_deactivations`` and ``max_deactivation_percent`` of the active users
    staffsync manages. A plan above either limit is held until it is approved.
    """
    safety = settings.safety
    leaving = plan.deactivations
    if leaving == 0:
        return None

    if leaving > safety.max_deactivations:
        return (
            f"the plan deactivates or deletes {leaving} people, more than [safety]"
            f" max_deactivations = {safety.max_deactivations}"
        )
    if plan.active_synced:
        percent = 100.0 * leaving / plan.active_synced
        if percent > safety.max_deactivation_percent:
            return (
                f"the plan deactivates or deletes {leaving} of {plan.active_synced} active"
                f" people ({percent:.1f}%), more than [safety] max_deactivation_percent ="
                f" {safety.max_deactivation_percent:g}"
            )
    return None
