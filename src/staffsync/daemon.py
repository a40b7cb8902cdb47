"""``staffsync run``: the scheduler wired to the sync runner, the state DB and ``/readyz``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
import structlog

from staffsync import metrics, scheduler
from staffsync.ops import make_readiness
from staffsync.runner import RunRequest, execute_run
from staffsync.state import schema
from staffsync.state.database import create_state_engine
from staffsync.state.lock import RunLockHeld
from staffsync.state.migrate import upgrade

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from datetime import datetime

    from staffsync.settings import Settings

__all__ = ["run_daemon"]

log = structlog.get_logger(__name__)

PROGRESS_LOG_SECONDS = 30.0


def run_daemon(settings: Settings) -> int:
    """Run scheduled syncs until SIGTERM or SIGINT; return the process exit status."""
    engine = create_state_engine(settings.state)

    def on_start() -> None:
        upgrade(engine)

    def run_job(mode: Literal["incremental", "full"], stop: threading.Event) -> None:
        request = RunRequest(
            mode=mode,
            trigger="schedule",
            lock_wait_seconds=0,
            stop=stop,
            progress=_progress_logger(),
        )
        try:
            execute_run(settings, request, engine=engine)
        except RunLockHeld as exc:
            metrics.RUN_LOCK_SKIPPED.inc()
            log.warning("run_skipped", mode=mode, reason="run lock held", holder=exc.holder)
        except Exception:
            # execute_run counts the runs that reach a report. A run that fails before
            # that, such as when the state database is down, is counted here, and the
            # scheduler logs its exception.
            metrics.RUNS.labels(mode=mode, status="failed").inc()
            raise

    readiness = make_readiness(
        check_db=lambda: _check_db(engine),
        last_runs=lambda: _last_runs(engine),
        max_failed_age_s=settings.ops.ready_max_failed_age_seconds,
    )
    try:
        return scheduler.run_daemon(settings, run_job, on_start=on_start, readiness=readiness)
    finally:
        engine.dispose()


def _progress_logger() -> Callable[[str, int, int], None]:
    """Return a progress callback that logs at most every ``PROGRESS_LOG_SECONDS``."""
    last = 0.0

    def report(stage: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        # A stage of unknown size (total 0) is logged on the interval only.
        finished = 0 < total <= done
        if now - last < PROGRESS_LOG_SECONDS and not finished:
            return
        last = now
        log.info("run_progress", stage=stage, done=done, total=total)

    return report


def _check_db(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def _last_runs(engine: sa.Engine) -> tuple[datetime | None, str | None]:
    runs = schema.runs
    with engine.connect() as connection:
        last_success = connection.execute(
            sa.select(sa.func.max(runs.c.finished_at)).where(
                runs.c.status.in_(("succeeded", "partial")), sa.not_(runs.c.dry_run)
            )
        ).scalar_one_or_none()
        latest = connection.execute(
            sa.select(runs.c.status)
            .where(runs.c.status != "running")
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).scalar_one_or_none()
    return last_success, latest
