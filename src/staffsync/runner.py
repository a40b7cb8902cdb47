"""One run of the pipeline: lock, settle, plan, guard, apply, report.

Every entry point (the command line, the daemon's schedule, ``demo``) calls
:func:`execute_run`, so they all share the same safety checks and the same report.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx
import sqlalchemy as sa
import structlog

from staffsync import metrics
from staffsync.engine.apply import apply_plan
from staffsync.engine.settle import settle_open_intents
from staffsync.logs import ensure_logging_configured
from staffsync.mapping import RecordMapper
from staffsync.planning.guards import check_guards
from staffsync.planning.model import PAST_TENSE
from staffsync.planning.planner import Plan, PlanningStopped, PlanOptions, build_plan
from staffsync.planning.remote import load_remote_users, rebuild_state
from staffsync.planning.store import (
    PlanNotHeld,
    clear_resolved_failures,
    fill_report_from_plan,
    iter_applied_changes,
    list_failed,
    load_held_plan,
    record_settled,
    store_plan,
)
from staffsync.report import STORED_ITEMS, RunReport, write_report_json
from staffsync.settings import ConfigError
from staffsync.sources import open_source
from staffsync.sources.base import SourceError
from staffsync.staffbase.client import StaffbaseClient
from staffsync.staffbase.errors import StaffbaseError
from staffsync.state import schema
from staffsync.state.database import create_state_engine
from staffsync.state.lock import RunLock, acquire_run_lock
from staffsync.state.migrate import ensure_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from staffsync.settings import Settings

__all__ = ["RunFailed", "RunRequest", "execute_run", "new_id"]

log = structlog.get_logger(__name__)

MAX_LOGGED_ISSUES = 100
"""Rejected rows, and warnings, logged one event each per run; the report lists more."""

MAX_LOGGED_VALUE_CHARS = 200


class RunFailed(Exception):
    """The run cannot go on; the message gives the reason and the fix. Nothing more is written."""


@dataclass
class RunRequest:
    """The kind of run to make."""

    mode: Literal["incremental", "full"] = "incremental"
    dry_run: bool = False
    only_keys: tuple[str, ...] = ()
    approve: str | None = None
    trigger: str = "cli"
    report_path: Path | None = None
    lock_wait_seconds: float | None = None
    """How long to wait for another run's lock: None waits as long as it takes, 0 skips."""
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[str, int, int], None] | None = None
    """Called with (stage, done, total) from the run's thread as it goes; total 0 means
    unknown. Stages: ``remote`` (Staffbase users read, full runs), ``read`` (export
    records staged), ``map`` (changed records mapped) and ``apply`` (changes sent)."""


def new_id(prefix: str) -> str:
    """Return a sortable id such as ``r-20261204T201206-1a2b3c``."""
    return f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _now() -> datetime:
    return datetime.now(UTC)


def execute_run(
    settings: Settings,
    request: RunRequest,
    *,
    engine: sa.Engine | None = None,
    client: StaffbaseClient | None = None,
) -> RunReport:
    """Make one run and return its report; the report's status gives the exit code.

    Raises:
        RunLockHeld: another run holds the lock and ``request.lock_wait_seconds`` ran out.
        SchemaOutdated: a dry run found the state database at an older schema.
        StateDatabaseError: the state database URL is unusable.
    """
    ensure_logging_configured()
    run_id = new_id("r")
    started = time.monotonic()
    report = RunReport(run_id=run_id, mode=request.mode, dry_run=request.dry_run, started_at=_now())
    own_engine = engine is None
    engine = engine or create_state_engine(settings.state)
    ensure_schema(engine, allow_upgrade=not request.dry_run)

    try:
        with (
            structlog.contextvars.bound_contextvars(
                run_id=run_id, mode=request.mode, trigger=request.trigger
            ),
            acquire_run_lock(engine, run_id=run_id, wait_seconds=request.lock_wait_seconds) as lock,
            engine.connect() as connection,
            _client_scope(settings, client) as clients,
        ):
            log.info(
                "run_started",
                dry_run=request.dry_run,
                only=list(request.only_keys) or None,
                approve=request.approve,
            )
            if not request.dry_run:
                _insert_run(connection, report, request)
            try:
                _Run(settings, request, report, connection, clients, lock).run()
            except (
                RunFailed,
                PlanNotHeld,
                PlanningStopped,
                SourceError,
                StaffbaseError,
                ConfigError,
            ) as exc:
                connection.rollback()
                report.finish("failed", _now(), error=str(exc))
            except Exception as exc:
                connection.rollback()
                report.finish("failed", _now(), error=f"internal error: {exc!r}")
                log.exception("run_crashed")
            finally:
                _finish(connection, report, request, time.monotonic() - started)
    finally:
        if own_engine:
            engine.dispose()
    return report


class _Clients:
    """Creates the Staffbase client only when a run needs one (dry runs may not)."""

    def __init__(self, settings: Settings, given: StaffbaseClient | None) -> None:
        self.settings = settings
        self.client = given
        self.owned: StaffbaseClient | None = None

    def get(self) -> StaffbaseClient:
        if self.client is None:
            self.owned = self.client = StaffbaseClient(self.settings.staffbase)
        return self.client


@contextlib.contextmanager
def _client_scope(settings: Settings, given: StaffbaseClient | None) -> Iterator[_Clients]:
    clients = _Clients(settings, given)
    try:
        yield clients
    finally:
        if clients.owned is not None:
            clients.owned.close()


def _insert_run(connection: sa.Connection, report: RunReport, request: RunRequest) -> None:
    # This run holds the run lock, so a run still recorded as running ended without
    # finishing its record: its process was killed or its host went down.
    runs = schema.runs
    connection.execute(
        sa.update(runs)
        .where(runs.c.status == "running")
        .values(
            status="failed",
            error="the run ended without recording a result (its process was killed or lost)",
        )
    )
    connection.execute(
        sa.insert(schema.runs).values(
            id=report.run_id,
            mode=report.mode,
            dry_run=False,
            trigger=request.trigger,
            status="running",
            started_at=report.started_at,
        )
    )
    connection.commit()


class _Run:
    """The steps of one run, sharing its connection and report."""

    def __init__(
        self,
        settings: Settings,
        request: RunRequest,
        report: RunReport,
        connection: sa.Connection,
        clients: _Clients,
        lock: RunLock,
    ) -> None:
        self.settings = settings
        self.request = request
        self.report = report
        self.connection = connection
        self.clients = clients
        self.lock = lock
        self.now = _now()

    def run(self) -> None:
        if not self.request.dry_run:
            settle_open_intents(
                self.connection,
                self.clients.get(),
                self.now,
                concurrency=self.settings.staffbase.max_concurrency,
                run_id=self.report.run_id,
            )
        if self.request.approve:
            self._approve(self.request.approve)
            return

        plan = self._plan()
        try:
            hold = check_guards(plan, self.settings)
            fill_report_from_plan(self.report, plan, source_location=self._source_location())
            _log_record_issues(plan, self._source_location())
            if self.request.dry_run:
                self._finish_dry_run(plan, hold)
                return

            if not hold:
                record_settled(self.connection, plan)
                resolved = clear_resolved_failures(self.connection, plan, self.now)
                if resolved:
                    log.info("failures_resolved", keys=resolved[:20], count=len(resolved))
            if not plan.counts and not hold:
                # Nothing to send and nothing to record: no plan worth keeping.
                self.connection.commit()
                self.report.finish("succeeded", _now())
                return
            plan_id = new_id("p")
            store_plan(
                self.connection,
                plan,
                plan_id=plan_id,
                run_id=self.report.run_id,
                mode=self.request.mode,
                hold_reason=hold,
                only_keys=self.request.only_keys,
                report=self.report,
                now=self.now,
            )
            if plan.remote is not None and not hold:
                rebuild_state(self.connection, plan.remote, plan.tables.staging)
            self.connection.commit()
        finally:
            plan.close()

        self.report.plan_id = plan_id
        if hold:
            self.report.held = {"plan_id": plan_id, "reason": hold}
            self.report.finish("blocked", _now())
            log.warning("plan_held", plan_id=plan_id, reason=hold)
            return
        self._apply(plan_id)

    def _source_location(self) -> str:
        return str(self.settings.resolve_path(self.settings.source.path))

    def _plan(self, only_keys: Sequence[str] | None = None) -> Plan:
        source = open_source(self.settings.source, self._base_dir())
        mapper = RecordMapper(self.settings.mapping)
        keys = only_keys if only_keys is not None else self.request.only_keys
        only = frozenset(keys) if keys else None
        remote = None
        if self.request.mode == "full":
            remote = load_remote_users(
                self.connection, self.clients.get(), now=self.now, progress=self._remote_progress
            )
            log.info("staffbase_users_read", users=remote.users_read)
        options = PlanOptions(
            now=self.now,
            only_keys=only,
            status_of=self._status_of,
            stop=self.request.stop,
            progress=self.request.progress,
        )
        return build_plan(self.connection, self.settings, source, mapper, options, remote=remote)

    def _remote_progress(self, users_read: int) -> None:
        if self.request.progress is not None:
            self.request.progress("remote", users_read, 0)

    def _status_of(self, staffbase_id: str) -> str | None:
        """Return a user's current Staffbase status, or None if it cannot be read now."""
        try:
            user = self.clients.get().get_user(staffbase_id)
        except (StaffbaseError, httpx.HTTPError) as exc:
            log.debug("status_lookup_failed", staffbase_id=staffbase_id, error=str(exc))
            return None
        return None if user is None else user.get("status")

    def _base_dir(self) -> Path | None:
        return self.settings.config_path.parent if self.settings.config_path else None

    def _finish_dry_run(self, plan: Plan, hold: str | None) -> None:
        changes = (change.as_report() for change in plan.iter_changes())
        if self.request.report_path is not None:
            self.report.finish("blocked" if hold else "succeeded", _now())
            if hold:
                self.report.held = {"plan_id": None, "reason": hold}
            _write_report_file(self.request.report_path, self.report, changes)
            changes = (change.as_report() for change in plan.iter_changes())
        self.report.changes = _take(changes, STORED_ITEMS * 10, self.report, "changes")
        if hold:
            self.report.held = {"plan_id": None, "reason": hold}
        self.report.finish("blocked" if hold else "succeeded", _now())

    def _approve(self, plan_id: str) -> None:
        held = load_held_plan(self.connection, plan_id)
        if held.mode != self.request.mode:
            self.request.mode = held.mode  # type: ignore[assignment]
            self.report.mode = held.mode
        plan = self._plan(held.only_keys or ())
        try:
            if plan.source_fingerprint != held.source_fingerprint:
                msg = (
                    f"the export or the Staffbase users changed since plan {plan_id} was"
                    " made; it is not applied. Run 'staffsync sync' to plan again"
                )
                raise RunFailed(msg)
            if plan.state_version != held.state_version:
                msg = (
                    f"the state changed since plan {plan_id} was made (another run applied"
                    " changes); it is not applied. Run 'staffsync sync' to plan again"
                )
                raise RunFailed(msg)
            if plan.remote is not None:
                rebuild_state(self.connection, plan.remote, plan.tables.staging)
        finally:
            plan.close()

        held.restore_report(self.report)
        self.report.plan_id = plan_id
        held.mark_applying(self.connection, self.report.run_id)
        self.connection.commit()
        log.info("plan_approved", plan_id=plan_id)
        self._apply(plan_id)

    def _apply(self, plan_id: str) -> None:
        def progress(done: int, total: int) -> None:
            if self.request.progress is not None:
                self.request.progress("apply", done, total)

        result = apply_plan(
            self.connection,
            self.clients.get(),
            self.settings,
            plan_id,
            stop=self.request.stop,
            lock=self.lock,
            progress=progress,
        )
        for action, count in result.done.items():
            if action in PAST_TENSE:
                self.report.counts[PAST_TENSE[action]] += count
        self.report.counts["unchanged"] += result.gone + result.needed_nothing
        self.report.warnings.extend(result.managers_unset)

        failed = list_failed(self.connection, plan_id) + result.group_failures
        self.report.failed = failed + self.report.failed
        self.report.counts["failed"] = len(self.report.failed)
        self.report.changes = _take(
            iter_applied_changes(self.connection, plan_id),
            STORED_ITEMS * 10,
            self.report,
            "changes",
        )

        schema_plans = schema.plans
        status = "applied" if not (result.fatal or result.stopped) else "interrupted"
        self.connection.execute(
            sa.update(schema_plans)
            .where(schema_plans.c.id == plan_id)
            .values(status=status, finished_at=_now())
        )
        self.connection.commit()

        if result.fatal:
            self.report.finish("failed", _now(), error=result.fatal)
        elif result.stopped:
            self.report.finish(
                "failed",
                _now(),
                error=("stopped before every change was applied; the next run applies the rest"),
            )
        else:
            self.report.finish("succeeded", _now())


def _log_record_issues(plan: Plan, source_location: str) -> None:
    """Log each rejected row and each warning, up to :data:`MAX_LOGGED_ISSUES` of each."""
    kinds = (
        ("record_rejected", "rejected", plan.rejected),
        ("record_warning", "warnings", plan.warnings),
    )
    for event, kind, issues in kinds:
        for issue in issues.items[:MAX_LOGGED_ISSUES]:
            value = issue.value
            if value is not None and len(value) > MAX_LOGGED_VALUE_CHARS:
                value = value[: MAX_LOGGED_VALUE_CHARS - 3] + "..."
            log.warning(
                event,
                file=source_location,
                line=issue.line,
                key=issue.key,
                field=issue.field,
                value=value,
                message=issue.message,
            )
        if issues.total > MAX_LOGGED_ISSUES:
            log.warning(
                "record_issues_not_logged",
                kind=kind,
                logged=MAX_LOGGED_ISSUES,
                total=issues.total,
                message="the run report lists the others",
            )


def _take(
    items: Iterator[dict[str, Any]] | Any, limit: int, report: RunReport, name: str
) -> list[dict[str, Any]]:
    taken: list[dict[str, Any]] = []
    total = 0
    for item in items:
        total += 1
        if len(taken) < limit:
            taken.append(item)
    if total > len(taken):
        report.totals[name] = total
    return taken


def _finish(
    connection: sa.Connection, report: RunReport, request: RunRequest, duration: float
) -> None:
    """Store the report, write the JSON file, count metrics and log the run's summary."""
    if report.status == "running":
        report.finish("failed", _now(), error="the run ended without a result")

    if not request.dry_run:
        runs = schema.runs
        connection.execute(
            sa.update(runs)
            .where(runs.c.id == report.run_id)
            .values(
                status=report.status,
                finished_at=report.finished_at,
                plan_id=report.plan_id,
                counts=report.counts,
                report=report.as_dict(max_items=STORED_ITEMS),
                error=report.error,
            )
        )
        connection.commit()
        if request.report_path is not None:
            _write_report_file(request.report_path, report)

        metrics.RUNS.labels(mode=report.mode, status=report.status).inc()
        metrics.RUN_DURATION.labels(mode=report.mode).observe(duration)
        if report.status in ("succeeded", "partial"):
            metrics.LAST_SUCCESS.labels(mode=report.mode).set(time.time())
        for name in ("created", "updated", "deactivated", "reactivated", "deleted"):
            if report.counts[name]:
                metrics.CHANGES.labels(action=name).inc(report.counts[name])
        metrics.RECORDS_REJECTED.inc(report.counts["rejected"])
        metrics.RECORDS_FAILED.inc(report.counts["failed"])

    log.info(
        "run_finished",
        status=report.status,
        dry_run=request.dry_run,
        duration_s=round(duration, 3),
        records=report.source.get("records"),
        plan_id=report.plan_id,
        error=report.error,
        **report.counts,
    )


def _write_report_file(
    path: Path, report: RunReport, changes: Iterable[dict[str, Any]] | None = None
) -> None:
    """Write the report for ``--report-json``; a failure is logged, as the run is over."""
    try:
        write_report_json(path, report, changes)
    except OSError as exc:
        log.error("report_not_written", path=str(path), error=exc.strerror or str(exc))  # noqa: TRY400
