"""Apply a stored plan: journal each change, send it from a bounded pool, record outcomes.

The main thread owns the database. It marks the next window of changes ``sent`` and
commits, hands them to ``max_concurrency`` worker threads that talk to Staffbase, and
writes their outcomes in small transactions as they arrive. Journaling at most one
window ahead of what is in flight leaves few changes for the next run to settle after
a crash. The Staffbase client paces and retries the requests; a record that still
fails is recorded as failed and the run goes on. Only a run-wide failure (credentials
rejected, the run lock lost) or a stop request ends the run early, after the requests
in flight have finished and been recorded.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa
import structlog

from staffsync.engine.actions import NOTHING_SENT, Outcome, WorkItem, execute
from staffsync.engine.groups import apply_group_memberships
from staffsync.engine.journal import (
    apply_records,
    manager_unset,
    mark_sent,
    record_outcomes,
    revert_unsent,
)
from staffsync.planning.model import Action, Phase
from staffsync.staffbase.errors import FatalStaffbaseError
from staffsync.state import schema

if TYPE_CHECKING:
    from collections.abc import Callable

    from staffsync.settings import Settings
    from staffsync.staffbase.client import StaffbaseClient
    from staffsync.state.lock import RunLock

__all__ = ["ApplyResult", "apply_plan"]

log = structlog.get_logger(__name__)

PAGE = 200
STATE_ONLY_PAGE = 10_000
"""State-only changes applied per transaction; they are set-based and send nothing."""
FLUSH_EVERY = 100
FLUSH_SECONDS = 0.5

ProgressCallback: TypeAlias = "Callable[[int, int], None]"


@dataclass
class ApplyResult:
    """The result of applying a plan."""

    done: Counter[str] = field(default_factory=Counter)
    """Changes applied, by the action actually taken."""
    failed: int = 0
    gone: int = 0
    needed_nothing: int = 0
    """Changes that sent nothing in the end: an adopted user already as wanted, or an
    update whose only change was a manager without a Staffbase user yet."""
    stopped: bool = False
    """True when a stop request ended the run before every change was sent."""
    fatal: str | None = None
    """The reason the run ended early, if it did."""
    managers_unset: list[dict[str, Any]] = field(default_factory=list)
    """Report warnings for people whose new manager had no Staffbase user when sent."""
    group_failures: list[dict[str, Any]] = field(default_factory=list)
    """Report entries of people whose group memberships could not be changed."""


def _now() -> datetime:
    return datetime.now(UTC)


def apply_plan(
    connection: sa.Connection,
    client: StaffbaseClient,
    settings: Settings,
    plan_id: str,
    *,
    stop: threading.Event | None = None,
    lock: RunLock | None = None,
    progress: ProgressCallback | None = None,
    now: Callable[[], datetime] = _now,
) -> ApplyResult:
    """Apply every planned change of ``plan_id``, phase by phase."""
    stop = stop or threading.Event()
    result = ApplyResult()
    total = _count_planned(connection, plan_id)
    tracker = _Progress(total, progress)

    _apply_state_only(connection, plan_id, now(), result, tracker)
    changes = schema.changes
    phases = (
        connection.execute(
            sa.select(changes.c.phase)
            .distinct()
            .where(
                changes.c.plan_id == plan_id,
                changes.c.state == "planned",
                changes.c.phase != Phase.STATE,
            )
            .order_by(changes.c.phase)
        )
        .scalars()
        .all()
    )
    memberships_pending = settings.mapping.groups is not None
    for phase in phases:
        if result.fatal or result.stopped:
            break
        if phase >= Phase.LEAVERS and memberships_pending:
            result.group_failures = apply_group_memberships(
                connection, client, plan_id, now()
            ).failed
            memberships_pending = False
        _PhaseRun(
            connection, client, settings, plan_id, phase, stop, lock, now, result, tracker
        ).run()
    if memberships_pending and not (result.fatal or result.stopped):
        result.group_failures = apply_group_memberships(connection, client, plan_id, now()).failed
    return result


def _count_planned(connection: sa.Connection, plan_id: str) -> int:
    changes = schema.changes
    return connection.execute(
        sa.select(sa.func.count())
        .select_from(changes)
        .where(
            changes.c.plan_id == plan_id,
            changes.c.state == "planned",
            changes.c.action != Action.RECORD,
        )
    ).scalar_one()


class _Progress:
    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self.callback = callback

    def advance(self, count: int) -> None:
        self.done += count
        if self.callback is not None:
            self.callback(self.done, self.total)


def _apply_state_only(
    connection: sa.Connection, plan_id: str, now: datetime, result: ApplyResult, tracker: _Progress
) -> None:
    """Apply the bookkeeping changes that touch only the state database."""
    changes = schema.changes
    last_seq = -1
    while True:
        rows = connection.execute(
            sa.select(changes.c.id, changes.c.seq, changes.c.key, changes.c.data)
            .where(
                changes.c.plan_id == plan_id,
                changes.c.action == Action.RECORD,
                changes.c.state == "planned",
                changes.c.seq > last_seq,
            )
            .order_by(changes.c.seq)
            .limit(STATE_ONLY_PAGE)
        ).all()
        if not rows:
            return
        apply_records(connection, [(row.key, row.data["record"]) for row in rows], now)
        connection.execute(
            sa.update(changes)
            .where(
                changes.c.plan_id == plan_id,
                changes.c.action == Action.RECORD,
                changes.c.state == "planned",
                changes.c.seq.between(rows[0].seq, rows[-1].seq),
            )
            .values(state="done", outcome=Action.RECORD, updated_at=now)
        )
        connection.commit()
        result.done[Action.RECORD] += len(rows)
        last_seq = rows[-1].seq


class _PhaseRun:
    """The send loop of one phase."""

    def __init__(
        self,
        connection: sa.Connection,
        client: StaffbaseClient,
        settings: Settings,
        plan_id: str,
        phase: int,
        stop: threading.Event,
        lock: RunLock | None,
        now: Callable[[], datetime],
        result: ApplyResult,
        tracker: _Progress,
    ) -> None:
        self.connection = connection
        self.client = client
        self.settings = settings
        self.plan_id = plan_id
        self.phase = phase
        self.stop = stop
        self.lock = lock
        self.now = now
        self.result = result
        self.tracker = tracker

        self.window = settings.staffbase.max_concurrency * 2
        self.queue: deque[WorkItem] = deque()
        """Changes read from the journal, still ``planned``."""
        self.journaled: deque[WorkItem] = deque()
        """Changes marked ``sent`` and committed, waiting for a free worker."""
        self.in_flight: dict[Future[Outcome], WorkItem] = {}
        self.outcomes: list[Outcome] = []
        self.last_seq = -1
        self.exhausted = False
        self.last_flush = time.monotonic()

    def run(self) -> None:
        with ThreadPoolExecutor(
            max_workers=self.settings.staffbase.max_concurrency,
            thread_name_prefix="staffsync-send",
        ) as pool:
            while True:
                if self.stop.is_set() and not self.result.stopped:
                    self.result.stopped = True
                    log.warning("run_stopping", in_flight=len(self.in_flight))
                if not self.result.stopped and not self.result.fatal:
                    self._fill(pool)
                if not self.in_flight:
                    break
                self._collect()
                self._flush_if_due()

        self._flush()
        unsent = [item.change_id for item in self.journaled]
        revert_unsent(self.connection, unsent)
        self.connection.commit()
        if (unsent or self.queue) and not self.result.stopped and not self.result.fatal:
            msg = f"{len(unsent) + len(self.queue)} changes of phase {self.phase} were not sent"
            raise RuntimeError(msg)

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        while len(self.in_flight) < self.window:
            if not self.journaled and not self._journal_next():
                return
            item = self.journaled.popleft()
            # Worker threads start with empty context variables, so each change runs in a
            # copy of this thread's context, and its log lines carry the run_id too.
            context = contextvars.copy_context()
            self.in_flight[pool.submit(context.run, execute, self.client, item)] = item

    def _journal_next(self) -> bool:
        """Mark the next window of queued changes sent and commit; False when none are left.

        The intent is committed before any of these requests goes out. Journaling one
        window at a time keeps the changes that a crash leaves open (those in flight,
        journaled, or with an outcome not yet flushed) to a few dozen.
        """
        if not self.queue and not self._load_page():
            return False
        batch = [self.queue.popleft() for _ in range(min(self.window, len(self.queue)))]
        mark_sent(self.connection, [item.change_id for item in batch], self.now())
        self.connection.commit()
        self.journaled.extend(batch)
        return True

    def _load_page(self) -> bool:
        """Queue the next page of planned changes; False when none are left."""
        if self.exhausted:
            return False
        changes = schema.changes
        rows = self.connection.execute(
            sa.select(
                changes.c.id,
                changes.c.seq,
                changes.c.action,
                changes.c.key,
                changes.c.staffbase_id,
                changes.c.data,
            )
            .where(
                changes.c.plan_id == self.plan_id,
                changes.c.phase == self.phase,
                changes.c.state == "planned",
                changes.c.seq > self.last_seq,
            )
            .order_by(changes.c.seq)
            .limit(PAGE)
        ).all()
        if not rows:
            self.exhausted = True
            return False

        self.last_seq = rows[-1].seq
        staffbase_ids = self._staffbase_ids(
            {row.data.get("manager_key") for row in rows if row.data.get("manager_key")}
            | {row.key for row in rows if row.staffbase_id is None}
        )
        for row in rows:
            self.queue.append(
                WorkItem(
                    change_id=row.id,
                    action=row.action,
                    key=row.key,
                    staffbase_id=row.staffbase_id or staffbase_ids.get(row.key),
                    data=row.data,
                    manager_id=staffbase_ids.get(row.data.get("manager_key") or ""),
                    send_invitation=self.settings.staffbase.send_invitation,
                    verify_before_create=self.settings.staffbase.verify_before_create,
                )
            )
        return True

    def _staffbase_ids(self, keys: set[str]) -> dict[str, str]:
        if not keys:
            return {}
        users = schema.users
        rows = self.connection.execute(
            sa.select(users.c.key, users.c.staffbase_id).where(users.c.key.in_(sorted(keys)))
        )
        return {key: staffbase_id for key, staffbase_id in rows}

    def _collect(self) -> None:
        done, _ = wait(self.in_flight, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
        for future in done:
            item = self.in_flight.pop(future)
            try:
                self.outcomes.append(future.result())
            except FatalStaffbaseError as exc:
                if self.result.fatal is None:
                    self.result.fatal = str(exc)
                    log.error("run_aborted", reason=str(exc), key=item.key)  # noqa: TRY400 (the reason says it all)
                # The request was refused as a whole, so nothing happened to this record:
                # it goes back to planned with the other journaled changes.
                self.journaled.appendleft(item)
            except Exception as exc:
                log.exception("change_crashed", key=item.key, action=item.action)
                self.outcomes.append(Outcome(item, "failed", message=f"internal error: {exc!r}"))

    def _flush_if_due(self) -> None:
        if len(self.outcomes) >= FLUSH_EVERY or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.outcomes:
            return
        if self.lock is not None:
            self.lock.check()

        outcomes, self.outcomes = self.outcomes, []
        record_outcomes(self.connection, outcomes, self.now())
        self.connection.commit()

        for outcome in outcomes:
            if manager_unset(outcome):
                self._warn_manager_unset(outcome)
            if outcome.done == "failed":
                self.result.failed += 1
                log.warning(
                    "record_failed",
                    key=outcome.item.key,
                    action=outcome.item.action,
                    error=outcome.message,
                )
            elif outcome.done == "gone":
                self.result.gone += 1
                log.warning("user_gone", key=outcome.item.key, message=outcome.message)
            elif outcome.done == NOTHING_SENT:
                self.result.needed_nothing += 1
            elif outcome.adopted:
                # The user existed already: updated if its fields differed, else untouched.
                if outcome.sent:
                    self.result.done[Action.UPDATE] += 1
                else:
                    self.result.needed_nothing += 1
            else:
                self.result.done[outcome.done] += 1
        self.tracker.advance(len(outcomes))

    def _warn_manager_unset(self, outcome: Outcome) -> None:
        item = outcome.item
        manager = item.data.get("manager_key")
        message = (
            f"manager {manager!r} has no Staffbase user: creating it failed in this run;"
            " the person is synced without a manager until the manager has one"
        )
        log.warning("manager_not_set", key=item.key, manager=manager)
        # The same shape as the planner's warnings, which know the export line.
        self.result.managers_unset.append(
            {
                "line": None,
                "key": item.key,
                "field": self.settings.mapping.fields.get("manager", "manager"),
                "value": manager,
                "message": message,
                "file": str(self.settings.resolve_path(self.settings.source.path)),
            }
        )
