"""The daemon: schedules incremental and full runs, serves the ops endpoints, stops cleanly.

APScheduler 3 keeps the jobs in memory, and they are rebuilt from ``[schedule]`` at every
start. ``max_instances`` and ``coalesce`` act within this process only. Runs of other
processes and replicas are kept apart by the run lock that each run takes itself.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from staffsync.logs import configure_logging, register_settings_secrets
from staffsync.ops import OpsServer
from staffsync.settings import ConfigError

if TYPE_CHECKING:
    from types import FrameType

    from apscheduler.triggers.base import BaseTrigger

    from staffsync.settings import Settings

__all__ = ["Daemon", "Mode", "RunJob", "misfire_grace_seconds", "parse_schedule", "run_daemon"]

log = structlog.get_logger(__name__)

Mode = Literal["incremental", "full"]
RunJob: TypeAlias = Callable[[Mode, threading.Event], None]
"""Performs one run, and returns soon after the event is set because the daemon is stopping."""

JOB_MODES: dict[str, Mode] = {"sync": "incremental", "resync": "full"}

MIN_MISFIRE_GRACE_SECONDS = 1
MAX_MISFIRE_GRACE_SECONDS = 3600
POLL_SECONDS = 0.1
LIVENESS_POLL_SECONDS = 1.0

_INTERVAL = re.compile(r"^(?P<count>\d+)\s*(?P<unit>[smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# Crontab numbers the days of the week 0-7 with Sunday as 0 and 7. APScheduler 3 reads
# 0 as Monday, so the field is rewritten as day names before APScheduler parses it.
_CRON_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def parse_schedule(text: str) -> BaseTrigger | None:
    """Turn a ``[schedule]`` value into an APScheduler trigger in UTC.

    Accepts a 5-field crontab expression (``*/15 * * * *``; Sunday is 0 or 7, and when
    both day of month and day of week are restricted either one matches, as in cron) or
    an interval (``30s``, ``15m``, ``2h``, ``1d``). An empty value disables the job.

    Raises:
        ValueError: the value is neither form; the message shows it and both forms.
    """
    value = text.strip()
    if not value:
        return None

    interval = _INTERVAL.match(value)
    if interval:
        seconds = int(interval.group("count")) * _UNIT_SECONDS[interval.group("unit")]
        if seconds == 0:
            raise ValueError(_schedule_error(text, "an interval must be longer than zero"))
        return IntervalTrigger(seconds=seconds, timezone=UTC)

    fields = value.split()
    if len(fields) != 5:
        raise ValueError(_schedule_error(text, f"expected 5 fields, found {len(fields)}"))
    try:
        return _crontab_trigger(fields)
    except ValueError as exc:
        raise ValueError(_schedule_error(text, str(exc))) from None


def _schedule_error(text: str, problem: str) -> str:
    return (
        f"invalid schedule {text!r}: {problem}. Use a 5-field cron expression in UTC such as"
        " '*/15 * * * *' or '0 3 * * 0', or an interval such as '30s', '15m', '2h' or '1d'."
        " An empty value disables the job."
    )


def _crontab_trigger(fields: list[str]) -> BaseTrigger:
    minute, hour, day, month, day_of_week = fields
    weekdays = _crontab_weekdays(day_of_week)

    # Cron fires when either day field matches if both are restricted. CronTrigger would
    # require both, so that case becomes two triggers.
    if not day.startswith("*") and not day_of_week.startswith("*"):
        by_day = CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=UTC)
        by_weekday = CronTrigger(
            minute=minute, hour=hour, month=month, day_of_week=weekdays, timezone=UTC
        )
        return OrTrigger([by_day, by_weekday])

    crontab = " ".join([minute, hour, day, month, weekdays])
    trigger: BaseTrigger = CronTrigger.from_crontab(crontab, timezone=UTC)
    return trigger


def _crontab_weekdays(field_text: str) -> str:
    if field_text == "*":
        return field_text

    days: set[int] = set()
    for part in field_text.split(","):
        days.update(_crontab_day_numbers(part))
    return ",".join(_CRON_DAY_NAMES[day] for day in sorted(days))


def _crontab_day_numbers(part: str) -> range | list[int]:
    base, has_step, step_text = part.partition("/")
    if has_step and not step_text.isdigit():
        msg = f"day-of-week step {step_text!r} is not a whole number"
        raise ValueError(msg)
    step = int(step_text) if has_step else 1
    if step == 0:
        msg = "day-of-week step must be at least 1"
        raise ValueError(msg)

    if base == "*":
        first, last = 0, 6
    elif "-" in base:
        first_text, last_text = base.split("-", 1)
        first, last = _crontab_day(first_text), _crontab_day(last_text)
        if last == 0 and first > 0:
            last = 7
    else:
        first = _crontab_day(base)
        last = 7 if has_step else first
    if first > last:
        msg = f"day-of-week range {base!r} runs backwards"
        raise ValueError(msg)
    return [day % 7 for day in range(first, last + 1, step)]


def _crontab_day(text: str) -> int:
    name = text.lower()
    if name in _CRON_DAY_NAMES:
        return _CRON_DAY_NAMES.index(name)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    msg = f"day of week {text!r} must be 0-7, where 0 and 7 are Sunday, or a name such as 'mon'"
    raise ValueError(msg)


def misfire_grace_seconds(trigger: BaseTrigger) -> int:
    """Return how late a run may still start: half the trigger's period, 1 s to 1 h.

    A run that cannot start within this time, because the process was paused or busy,
    is skipped and logged instead of starting far off its schedule.
    """
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    if first is None:
        return MIN_MISFIRE_GRACE_SECONDS
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    if second is None:
        return MAX_MISFIRE_GRACE_SECONDS

    half_period = (second - first).total_seconds() / 2
    return int(min(max(half_period, MIN_MISFIRE_GRACE_SECONDS), MAX_MISFIRE_GRACE_SECONDS))


@dataclass
class _Run:
    """A run started by the scheduler, as seen by the daemon's shutdown."""

    mode: Mode
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Literal["running", "finished", "failed"] = "running"


class Daemon:
    """Runs ``run_job`` on the ``[schedule]`` of ``settings`` until stopped.

    Only one run happens at a time in the process: a scheduled incremental run is
    skipped while another run is in progress, and a full run waits for the one in
    progress to end.

    Args:
        settings: the loaded configuration; ``[schedule]`` and ``[ops]`` are read here.
        run_job: performs one run; it must return soon after ``stop`` is set, letting
            requests already sent finish and their outcomes be recorded.
        on_start: called once before the first run (for example to apply migrations).
        readiness: the ``/readyz`` check; without it the daemon is ready once started.
        run_at_start: start one incremental run right after start-up instead of
            waiting for the first scheduled time.
    """

    def __init__(
        self,
        settings: Settings,
        run_job: RunJob,
        *,
        on_start: Callable[[], None] | None = None,
        readiness: Callable[[], tuple[bool, str]] | None = None,
        run_at_start: bool = True,
    ) -> None:
        self._settings = settings
        self._run_job = run_job
        self._on_start = on_start
        self._readiness = readiness
        self._run_at_start = run_at_start

        self._phase: Literal["new", "starting", "running", "stopping", "stopped"] = "new"
        self._scheduler: Any = None
        self._ops: OpsServer | None = None
        self._missed_runs = 0

        # Held by the run in progress, so that this process runs one run at a time.
        self._turn = threading.Lock()
        self._state_lock = threading.Lock()
        self._in_flight: _Run | None = None
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._signalled = threading.Event()
        self._signal_name = ""
        self._forced_signal: int | None = None
        self._exit_code: int | None = None

    @property
    def scheduler(self) -> Any:
        """The APScheduler ``BackgroundScheduler``, once :meth:`start` has run."""
        return self._scheduler

    @property
    def ops_port(self) -> int:
        """The port of the ops endpoints, once :meth:`start` has run."""
        if self._ops is None:
            msg = "the daemon has not been started"
            raise RuntimeError(msg)
        return self._ops.port

    @property
    def missed_runs(self) -> int:
        """Scheduled runs that could not start within their misfire grace time."""
        return self._missed_runs

    def start(self) -> None:
        """Serve the ops endpoints, call ``on_start``, then start the scheduler.

        Raises:
            ConfigError: a ``[schedule]`` value or ``[ops] listen`` is invalid, or both
                schedules are empty.
            OSError: the ops endpoints cannot listen on the configured address.
            RuntimeError: the daemon was started before.
            Exception: whatever ``on_start`` raised, after the ops endpoints are stopped.
        """
        if self._phase != "new":
            msg = f"the daemon can start once; it is {self._phase}"
            raise RuntimeError(msg)

        triggers = self._build_triggers()
        try:
            self._ops = OpsServer(
                self._settings.ops.listen, readiness=self._ready, liveness=self.is_alive
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

        self._phase = "starting"
        self._ops.start()
        try:
            if self._on_start is not None:
                self._on_start()
            self._start_scheduler(triggers)
        except BaseException:
            self._ops.stop()
            self._phase = "stopped"
            raise

        self._phase = "running"
        log.info(
            "daemon_started",
            sync=self._settings.schedule.sync,
            resync=self._settings.schedule.resync,
            next_runs={job.id: job.next_run_time.isoformat() for job in self._scheduler.get_jobs()},
            ops_port=self._ops.port,
            shutdown_grace_seconds=self._settings.ops.shutdown_grace_seconds,
        )

    def _build_triggers(self) -> dict[str, BaseTrigger]:
        triggers: dict[str, BaseTrigger] = {}
        for job_id, text in (
            ("sync", self._settings.schedule.sync),
            ("resync", self._settings.schedule.resync),
        ):
            try:
                trigger = parse_schedule(text)
            except ValueError as exc:
                msg = f"[schedule] {job_id}: {exc}"
                raise ConfigError(msg) from None
            if trigger is not None:
                triggers[job_id] = trigger

        if not triggers:
            msg = (
                "[schedule] sync and resync are both empty, so the daemon would never run;"
                " set at least one, or use 'staffsync sync' for a single run"
            )
            raise ConfigError(msg)
        return triggers

    def _start_scheduler(self, triggers: dict[str, BaseTrigger]) -> None:
        scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={"default": MemoryJobStore()},
            # Two threads, so that a full run can wait for an incremental one to end.
            executors={"default": ThreadPoolExecutor(max_workers=2)},
        )
        scheduler.add_listener(self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        for job_id, trigger in triggers.items():
            mode = JOB_MODES[job_id]
            first_run: dict[str, Any] = {}
            if job_id == "sync" and self._run_at_start:
                first_run["next_run_time"] = datetime.now(UTC)
            scheduler.add_job(
                self._fire,
                trigger,
                args=[mode],
                id=job_id,
                name=f"{mode} run",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=misfire_grace_seconds(trigger),
                **first_run,
            )
        scheduler.start()
        self._scheduler = scheduler

    def is_alive(self) -> bool:
        """Tell whether the scheduler still works; true while starting and stopping."""
        if self._phase != "running":
            return self._phase != "stopped"
        thread = getattr(self._scheduler, "_thread", None)
        return bool(self._scheduler.running) and (thread is None or thread.is_alive())

    def _ready(self) -> tuple[bool, str]:
        if self._phase in ("new", "starting"):
            return False, "starting"
        if self._phase in ("stopping", "stopped"):
            return False, "stopping"
        if self._readiness is None:
            return True, "scheduler running"
        return self._readiness()

    def _fire(self, mode: Mode) -> None:
        """APScheduler job: start one run in its own thread and wait for it to end."""
        if self._stop.is_set() or not self._take_turn(mode):
            return

        with self._state_lock:
            if self._stop.is_set():
                self._turn.release()
                return
            run = _Run(mode)
            self._in_flight = run

        # A daemon thread, so that a run still going after the grace time does not keep
        # the interpreter from exiting. The run journal makes such a cut safe.
        thread = threading.Thread(
            target=self._execute, args=(run,), name=f"staffsync-{mode}-run", daemon=True
        )
        thread.start()
        # Waiting keeps this job instance counted by max_instances until the run ends.
        while not run.done.wait(POLL_SECONDS * 5):
            if self._abandon.is_set():
                return

    def _take_turn(self, mode: Mode) -> bool:
        if self._turn.acquire(blocking=False):
            return True

        in_flight = self._in_flight
        running = in_flight.mode if in_flight else None
        if mode == "incremental":
            log.warning(
                "run_skipped", mode=mode, reason="another run is in progress", running=running
            )
            return False

        log.warning("run_waiting", mode=mode, reason="another run is in progress", running=running)
        while not self._stop.is_set():
            if self._turn.acquire(timeout=POLL_SECONDS * 5):
                return True
        return False

    def _execute(self, run: _Run) -> None:
        try:
            with structlog.contextvars.bound_contextvars(trigger="schedule", mode=run.mode):
                self._run_job(run.mode, self._stop)
            run.outcome = "finished"
        except Exception:
            run.outcome = "failed"
            log.exception("run_crashed", mode=run.mode)
        finally:
            with self._state_lock:
                if self._in_flight is run:
                    self._in_flight = None
            self._turn.release()
            run.done.set()

    def _on_job_event(self, event: Any) -> None:
        if event.code == EVENT_JOB_MISSED:
            self._missed_runs += 1
            log.warning(
                "run_missed",
                job=event.job_id,
                scheduled_at=event.scheduled_run_time.isoformat(),
                missed_total=self._missed_runs,
            )
        else:
            log.warning(
                "run_skipped",
                job=event.job_id,
                reason="the previous run of this job is still in progress",
            )

    def run_forever(self) -> int:
        """Block until SIGTERM or SIGINT, then stop as :meth:`stop` does.

        Starts the daemon first if :meth:`start` was not called. Must run in the main
        thread, because Python delivers signals there. A second signal during the grace
        time stops at once.

        Returns:
            0 after a clean stop, 128 + the signal number after a forced stop, 1 when the
            scheduler thread died.
        """
        if threading.current_thread() is not threading.main_thread():
            msg = "Daemon.run_forever() must run in the main thread to receive signals"
            raise RuntimeError(msg)
        if self._phase == "new":
            self.start()

        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            while not self._signalled.wait(LIVENESS_POLL_SECONDS):
                if not self.is_alive():
                    log.error("scheduler_died")
                    self.stop("the scheduler thread died")
                    return 1
            return self.stop(f"received {self._signal_name}")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self._signalled.is_set():
            self._signal_name = name
            self._signalled.set()
            return
        if self._forced_signal is None:
            self._forced_signal = signum
            log.warning("daemon_stop_forced", signal=name)

    def stop(self, reason: str = "requested") -> int:
        """Stop scheduling, ask the run in progress to stop, and wait for it.

        Waits at most ``[ops] shutdown_grace_seconds`` for the run in progress. A run
        still going after that is left behind and dies with the process. Safe to call
        more than once.

        Returns:
            The exit status: 0, or 128 + the signal number when a second signal cut the
            wait short.
        """
        with self._state_lock:
            if self._exit_code is not None:
                return self._exit_code
            self._phase = "stopping"
            self._stop.set()
            run = self._in_flight

        grace = self._settings.ops.shutdown_grace_seconds
        log.info(
            "daemon_stopping",
            reason=reason,
            in_flight=run.mode if run else None,
            grace_seconds=grace,
        )
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)

        outcome, waited = self._wait_for(run, grace)
        self._abandon.set()
        if self._ops is not None:
            self._ops.stop()

        code = 0 if self._forced_signal is None else 128 + self._forced_signal
        self._exit_code = code
        self._phase = "stopped"
        log.info(
            "daemon_stopped",
            in_flight=outcome,
            mode=run.mode if run else None,
            waited_seconds=round(waited, 1),
            exit_code=code,
        )
        return code

    def _wait_for(self, run: _Run | None, grace: float) -> tuple[str, float]:
        if run is None:
            return "none", 0.0

        started = time.monotonic()
        deadline = started + grace
        while not run.done.wait(POLL_SECONDS):
            if self._forced_signal is not None:
                return "interrupted", time.monotonic() - started
            if time.monotonic() >= deadline:
                return "timed_out", time.monotonic() - started
        return run.outcome, time.monotonic() - started


def run_daemon(
    settings: Settings,
    run_job: RunJob,
    *,
    on_start: Callable[[], None] | None = None,
    readiness: Callable[[], tuple[bool, str]] | None = None,
) -> int:
    """Configure logging from ``[ops]``, then run the daemon until a signal stops it.

    Returns:
        The exit status of :meth:`Daemon.run_forever`.
    """
    configure_logging(settings.ops.log_format, settings.ops.log_level)
    register_settings_secrets(settings)
    daemon = Daemon(settings, run_job, on_start=on_start, readiness=readiness)
    daemon.start()
    return daemon.run_forever()
