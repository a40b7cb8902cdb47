"""Tests for the daemon's scheduling core, on a real APScheduler BackgroundScheduler.

The jobs here are recording callables in place of the real sync run. The signal tests
start a small daemon script in a subprocess and send it SIGTERM and SIGINT.
"""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import structlog
from apscheduler.triggers.interval import IntervalTrigger

from staffsync import logs
from staffsync.logs import configure_logging
from staffsync.scheduler import Daemon, Mode, misfire_grace_seconds, parse_schedule
from staffsync.settings import ConfigError, OpsSettings, ScheduleSettings, Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

# Friday 4 December 2026, 10:01 UTC.
FRIDAY = datetime(2026, 12, 4, 10, 1, tzinfo=UTC)
WAIT_SECONDS = 8.0


def _settings(
    sync: str = "", resync: str = "", grace: float = 5.0, listen: str = "127.0.0.1:0"
) -> Settings:
    return load_settings(
        None,
        schedule=ScheduleSettings(sync=sync, resync=resync),
        ops=OpsSettings(listen=listen, shutdown_grace_seconds=grace),
    )


def _wait_until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Recorder:
    """A run_job stand-in that records its calls and how many ran at once."""

    def __init__(self, *, duration: float = 0.0, release: threading.Event | None = None) -> None:
        self.duration = duration
        self.release = release
        self.lock = threading.Lock()
        self.calls: list[Mode] = []
        self.steps: list[str] = []
        self.active = 0
        self.max_active = 0
        self.saw_stop: list[bool] = []

    def __call__(self, mode: Mode, stop: threading.Event) -> None:
        with self.lock:
            self.calls.append(mode)
            self.steps.append(f"start {mode}")
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.release is not None and mode == "incremental":
                self.release.wait(WAIT_SECONDS)
            elif self.duration:
                stop.wait(self.duration)
            self.saw_stop.append(stop.is_set())
        finally:
            with self.lock:
                self.active -= 1
                self.steps.append(f"end {mode}")


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Capture JSON log lines for the test, then remove the handler again."""
    monkeypatch.setattr(logs, "_registered_secrets", set())
    monkeypatch.setattr(logs, "_registered_pattern", None)
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == logs.HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


def _events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [line for line in lines if line.get("event") == name]


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test started; each is stopped at the end."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop("test ended")


def _start(
    daemons: list[Daemon],
    settings: Settings,
    job: Callable[[Mode, threading.Event], None],
    **kwargs: Any,
) -> Daemon:
    daemon = Daemon(settings, job, **kwargs)
    daemons.append(daemon)
    daemon.start()
    return daemon


class TestParseSchedule:
    """parse_schedule reads crontab expressions in UTC and short intervals."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("*/15 * * * *", datetime(2026, 12, 4, 10, 15, tzinfo=UTC)),
            ("0 3 * * 0", datetime(2026, 12, 6, 3, 0, tzinfo=UTC)),
            ("0 3 * * 7", datetime(2026, 12, 6, 3, 0, tzinfo=UTC)),
            ("0 3 * * sun", datetime(2026, 12, 6, 3, 0, tzinfo=UTC)),
            ("30 9 * * 1-5", datetime(2026, 12, 7, 9, 30, tzinfo=UTC)),
            ("0 0 * * */2", datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),
            ("0 0 * * 5-7", datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),
            ("0 9 1 * 1", datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),
            ("0 9 5 * 1", datetime(2026, 12, 5, 9, 0, tzinfo=UTC)),
        ],
    )
    def test_cron_next_fire(self, text: str, expected: datetime) -> None:
        """Cron fields follow crontab: Sunday is 0 or 7, and either day field may match."""
        trigger = parse_schedule(text)

        assert trigger is not None
        assert trigger.get_next_fire_time(None, FRIDAY) == expected

    @pytest.mark.parametrize(
        ("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400)]
    )
    def test_interval(self, text: str, seconds: int) -> None:
        """Intervals become IntervalTriggers of that length."""
        trigger = parse_schedule(text)

        assert isinstance(trigger, IntervalTrigger)
        assert trigger.interval == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["", "   "])
    def test_empty_disables(self, text: str) -> None:
        """An empty value means the job is disabled."""
        assert parse_schedule(text) is None

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("every 5 minutes", "expected 5 fields, found 3"),
            ("* * * *", "expected 5 fields, found 4"),
            ("0s", "longer than zero"),
            ("15x", "expected 5 fields, found 1"),
            ("61 * * * *", "61"),
            ("0 3 * * 8", "day of week '8' must be 0-7"),
            ("0 3 * * 5-1", "range '5-1' runs backwards"),
        ],
    )
    def test_invalid(self, text: str, problem: str) -> None:
        """Invalid values raise ValueError with the value, the problem and both forms."""
        with pytest.raises(ValueError, match="invalid schedule") as caught:
            parse_schedule(text)

        message = str(caught.value)
        assert repr(text) in message
        assert problem in message
        assert "'*/15 * * * *'" in message
        assert "'15m'" in message


class TestMisfireGrace:
    """misfire_grace_seconds is half the period, kept between 1 s and 1 h."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("15m", 450), ("30s", 15), ("1s", 1), ("*/15 * * * *", 450), ("0 3 * * 0", 3600)],
    )
    def test_half_period_clamped(self, text: str, expected: int) -> None:
        """Short periods get at least 1 s, weekly ones at most an hour."""
        trigger = parse_schedule(text)

        assert trigger is not None
        assert misfire_grace_seconds(trigger) == expected


class TestDaemonRuns:
    """The daemon runs the job on schedule, one run at a time."""

    @pytest.mark.slow
    def test_runs_on_interval(self, daemons: list[Daemon]) -> None:
        """A 1 s sync schedule calls the job repeatedly in incremental mode."""
        job = Recorder()

        _start(daemons, _settings(sync="1s"), job, run_at_start=False)

        assert _wait_until(lambda: len(job.calls) >= 2)
        assert job.calls[:2] == ["incremental", "incremental"]

    def test_runs_at_start(self, daemons: list[Daemon]) -> None:
        """With run_at_start, an incremental run starts without waiting for the schedule."""
        job = Recorder()

        _start(daemons, _settings(sync="1h", resync="0 3 * * 0"), job)

        assert _wait_until(lambda: len(job.calls) == 1)
        assert job.calls == ["incremental"]

    def test_on_start_runs_first(self, daemons: list[Daemon]) -> None:
        """on_start is called before the first run."""
        order: list[str] = []

        def job(mode: Mode, stop: threading.Event) -> None:
            order.append(mode)

        _start(daemons, _settings(sync="1h"), job, on_start=lambda: order.append("on_start"))

        assert _wait_until(lambda: len(order) == 2)
        assert order == ["on_start", "incremental"]

    @pytest.mark.slow
    def test_runs_never_overlap(self, daemons: list[Daemon], log_stream: io.StringIO) -> None:
        """A slow job and two 1 s schedules never run two jobs at once; turns are skipped."""
        job = Recorder(duration=1.2)

        _start(daemons, _settings(sync="1s", resync="1s"), job)

        assert _wait_until(lambda: len(job.calls) >= 3)
        assert job.max_active == 1
        assert _events(log_stream, "run_skipped") != []

    def test_full_waits_for_incremental(
        self, daemons: list[Daemon], log_stream: io.StringIO
    ) -> None:
        """A full run due during an incremental one waits for it and then runs."""
        release = threading.Event()
        job = Recorder(release=release)
        _start(daemons, _settings(sync="1h", resync="1s"), job)

        assert _wait_until(lambda: _events(log_stream, "run_waiting") != [])
        release.set()

        assert _wait_until(lambda: "start full" in job.steps)
        assert job.steps[:3] == ["start incremental", "end incremental", "start full"]
        waiting = _events(log_stream, "run_waiting")[0]
        assert waiting["mode"] == "full"
        assert waiting["running"] == "incremental"

    def test_crashing_run_logged(self, daemons: list[Daemon], log_stream: io.StringIO) -> None:
        """A run that raises is logged with its traceback and later runs still happen."""
        calls: list[Mode] = []

        def job(mode: Mode, stop: threading.Event) -> None:
            calls.append(mode)
            if len(calls) == 1:
                raise RuntimeError("source unreadable")

        _start(daemons, _settings(sync="1s"), job)

        assert _wait_until(lambda: len(calls) >= 2)
        [crash] = _events(log_stream, "run_crashed")
        assert crash["level"] == "error"
        assert crash["exception"][0]["exc_value"] == "source unreadable"


class TestMisfires:
    """Late runs are coalesced into one, and runs too late are counted as missed."""

    def test_backlog_runs_once(self, daemons: list[Daemon]) -> None:
        """Four overdue run times of a 20 s schedule produce a single run."""
        job = Recorder()
        daemon = _start(daemons, _settings(sync="20s"), job, run_at_start=False)

        # Due 63, 43, 23 and 3 s ago; only the last is within the 10 s grace time.
        overdue = datetime.now(UTC) - timedelta(seconds=63)
        daemon.scheduler.modify_job("sync", next_run_time=overdue)

        assert _wait_until(lambda: len(job.calls) >= 1)
        time.sleep(0.3)
        assert job.calls == ["incremental"]
        assert daemon.missed_runs == 0
        assert daemon.scheduler.get_job("sync").next_run_time > datetime.now(UTC)

    def test_missed_run_logged(self, daemons: list[Daemon], log_stream: io.StringIO) -> None:
        """A run later than its grace time is skipped, counted and logged at WARNING."""
        job = Recorder()
        daemon = _start(daemons, _settings(sync="30s"), job, run_at_start=False)

        daemon.scheduler.modify_job("sync", next_run_time=datetime.now(UTC) - timedelta(seconds=20))

        assert _wait_until(lambda: daemon.missed_runs == 1)
        assert job.calls == []
        [missed] = _events(log_stream, "run_missed")
        assert missed["level"] == "warning"
        assert missed["job"] == "sync"
        assert missed["missed_total"] == 1


class TestDaemonStop:
    """stop() ends scheduling and waits a bounded time for the run in progress."""

    def test_waits_for_run(self, daemons: list[Daemon], log_stream: io.StringIO) -> None:
        """The run in progress gets the stop event and its end is logged as finished."""
        job = Recorder(duration=WAIT_SECONDS)
        daemon = _start(daemons, _settings(sync="1h"), job)
        assert _wait_until(lambda: job.active == 1)

        code = daemon.stop("test")

        assert code == 0
        assert job.saw_stop == [True]
        [stopped] = _events(log_stream, "daemon_stopped")
        assert stopped["in_flight"] == "finished"
        assert stopped["mode"] == "incremental"

    def test_gives_up_after_grace(self, daemons: list[Daemon], log_stream: io.StringIO) -> None:
        """A run that ignores the stop event is left behind once the grace time is over."""
        release = threading.Event()
        job = Recorder(release=release)
        daemon = _start(daemons, _settings(sync="1h", grace=0.3), job)
        assert _wait_until(lambda: job.active == 1)

        try:
            code = daemon.stop("test")
        finally:
            release.set()

        assert code == 0
        [stopped] = _events(log_stream, "daemon_stopped")
        assert stopped["in_flight"] == "timed_out"

    def test_no_new_runs_after_stop(self, daemons: list[Daemon]) -> None:
        """Once stopped, the schedule starts no further run."""
        job = Recorder()
        daemon = _start(daemons, _settings(sync="1s"), job)
        assert _wait_until(lambda: len(job.calls) == 1)

        daemon.stop("test")
        calls_at_stop = len(job.calls)
        time.sleep(1.3)

        assert len(job.calls) == calls_at_stop
        assert daemon.is_alive() is False

    def test_start_twice(self, daemons: list[Daemon]) -> None:
        """A second start() raises instead of scheduling every job twice."""
        daemon = _start(daemons, _settings(sync="1h"), Recorder(), run_at_start=False)

        with pytest.raises(RuntimeError, match="can start once; it is running"):
            daemon.start()

    def test_run_forever_needs_main_thread(self) -> None:
        """run_forever called from another thread raises instead of missing signals."""
        daemon = Daemon(_settings(sync="1h"), Recorder())
        errors: list[BaseException] = []

        def call() -> None:
            try:
                daemon.run_forever()
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        thread.join(WAIT_SECONDS)

        assert len(errors) == 1
        assert "main thread" in str(errors[0])


class TestDaemonStart:
    """start() validates the configuration and serves the ops endpoints."""

    def test_invalid_schedule(self) -> None:
        """A bad schedule is a configuration error naming the key."""
        daemon = Daemon(_settings(sync="every 5 minutes"), Recorder())

        with pytest.raises(ConfigError, match=r"\[schedule\] sync: invalid schedule 'every 5"):
            daemon.start()

    def test_nothing_scheduled(self) -> None:
        """Two empty schedules are a configuration error."""
        daemon = Daemon(_settings(), Recorder())

        with pytest.raises(ConfigError, match="both empty"):
            daemon.start()

    def test_invalid_listen(self) -> None:
        """A bad listen address is a configuration error quoting it."""
        daemon = Daemon(_settings(sync="1h", listen="localhost"), Recorder())

        with pytest.raises(ConfigError, match=r"\[ops\] listen must be HOST:PORT.*'localhost'"):
            daemon.start()

    def test_on_start_failure(self) -> None:
        """When on_start raises, start() raises it and the ops port is closed again."""
        ports: list[int] = []

        def failing_migration() -> None:
            ports.append(daemon.ops_port)
            raise RuntimeError("migration failed")

        daemon = Daemon(_settings(sync="1h"), Recorder(), on_start=failing_migration)

        with pytest.raises(RuntimeError, match="migration failed"):
            daemon.start()

        assert daemon.is_alive() is False
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports[0]}/healthz", timeout=2)

    def test_endpoints_during_start(self, daemons: list[Daemon]) -> None:
        """While on_start runs, /healthz is 200 and /readyz is 503 'starting'."""
        seen: dict[str, httpx.Response] = {}

        def probe() -> None:
            base = f"http://127.0.0.1:{daemon.ops_port}"
            seen["healthz"] = httpx.get(f"{base}/healthz", timeout=2)
            seen["readyz"] = httpx.get(f"{base}/readyz", timeout=2)

        daemon = Daemon(_settings(sync="1h"), Recorder(), on_start=probe)
        daemons.append(daemon)
        daemon.start()

        assert seen["healthz"].status_code == 200
        assert seen["readyz"].status_code == 503
        assert seen["readyz"].text == "not ready: starting\n"

    def test_endpoints_when_running(self, daemons: list[Daemon]) -> None:
        """Once running, /readyz returns the readiness check's result."""
        daemon = _start(
            daemons,
            _settings(sync="1h"),
            Recorder(),
            readiness=lambda: (True, "latest run succeeded"),
            run_at_start=False,
        )

        response = httpx.get(f"http://127.0.0.1:{daemon.ops_port}/readyz", timeout=2)

        assert response.status_code == 200
        assert response.text == "ready: latest run succeeded\n"


DAEMON_SCRIPT = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    from staffsync.logs import configure_logging
    from staffsync.scheduler import Daemon, run_daemon
    from staffsync.settings import OpsSettings, ScheduleSettings, load_settings

    folder, behaviour, grace = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])

    def run_job(mode, stop):
        (folder / "started").write_text(mode)
        if behaviour == "stubborn":
            time.sleep(60)
            return
        stop.wait(60)
        (folder / "saw_stop").write_text(str(stop.is_set()))
        time.sleep(0.2)  # requests already sent finish and are recorded
        (folder / "recorded").write_text("yes")

    settings = load_settings(
        None,
        schedule=ScheduleSettings(sync="1h", resync=""),
        ops=OpsSettings(listen="127.0.0.1:0", shutdown_grace_seconds=grace),
    )
    if behaviour == "cooperative":
        # The CLI's path: logging configured from [ops], JSON lines on stdout.
        sys.exit(run_daemon(settings, run_job))
    configure_logging("json", stream=open(folder / "log.jsonl", "w", buffering=1))
    sys.exit(Daemon(settings, run_job).run_forever())
    """
)


def _spawn_daemon(tmp_path: Path, behaviour: str, grace: float) -> subprocess.Popen[bytes]:
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON_SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), behaviour, str(grace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if not _wait_until((tmp_path / "started").exists, timeout=20):
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"the daemon never started a run: {stderr.decode()}")
    return process


def _logged_events(tmp_path: Path) -> dict[str, dict[str, Any]]:
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    return {entry["event"]: entry for entry in map(json.loads, lines)}


@pytest.mark.slow
class TestSignals:
    """A daemon process stops cleanly on SIGTERM and at once on a second signal."""

    def test_sigterm_with_run_in_flight(self, tmp_path: Path) -> None:
        """SIGTERM lets the run get the stop event, record its work and exit 0."""
        process = _spawn_daemon(tmp_path, "cooperative", grace=10)

        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
        code = process.returncode

        assert code == 0
        assert (tmp_path / "saw_stop").read_text() == "True"
        assert (tmp_path / "recorded").read_text() == "yes"
        events = {entry["event"]: entry for entry in map(json.loads, stdout.splitlines())}
        assert events["daemon_started"]["level"] == "info"
        assert events["daemon_stopping"]["reason"] == "received SIGTERM"
        assert events["daemon_stopped"]["in_flight"] == "finished"

    def test_grace_time_runs_out(self, tmp_path: Path) -> None:
        """A run that ignores the stop event does not hold the exit past the grace time."""
        process = _spawn_daemon(tmp_path, "stubborn", grace=1)

        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
        code = process.returncode

        assert code == 0
        assert _logged_events(tmp_path)["daemon_stopped"]["in_flight"] == "timed_out"

    def test_second_signal_forces_exit(self, tmp_path: Path) -> None:
        """A second signal during the grace time exits at once with 128 + its number."""
        process = _spawn_daemon(tmp_path, "stubborn", grace=60)

        process.send_signal(signal.SIGTERM)
        assert _wait_until(lambda: "daemon_stopping" in (tmp_path / "log.jsonl").read_text())
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
        code = process.returncode

        assert code == 128 + signal.SIGINT
        events = _logged_events(tmp_path)
        assert events["daemon_stop_forced"]["signal"] == "SIGINT"
        assert events["daemon_stopped"]["in_flight"] == "interrupted"
