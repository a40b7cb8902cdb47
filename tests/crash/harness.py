"""Processes for the crash tests: the emulator and ``staffsync sync`` as separate programs.

The tests kill ``staffsync sync`` with SIGKILL, so both sides run as real processes: the
emulator keeps serving (and finishes requests the killed client had sent) while the sync
is restarted against the same state database.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable
    from pathlib import Path

BANNER = "staffsync emulator listening on "
START_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 180.0

# Fields of a user compared with the export, and the export column each comes from.
COMPARED_FIELDS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "position": "title",
    "department": "department",
    "location": "location",
}


class EmulatorProcess:
    """``staffsync emulator --port 0`` running as a child process."""

    def __init__(self, log_path: Path, *args: str) -> None:
        self._log = log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "staffsync", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()
        if not first.startswith(BANNER):
            self.stop()
            msg = f"the emulator printed {first!r} instead of its banner; see {log_path}"
            raise RuntimeError(msg)
        self.url = first.removeprefix(BANNER)
        # The rest of the banner is read and dropped so that the pipe never fills up.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self._http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def base_url(self) -> str:
        return f"{self.url}/api"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    def get(self, path: str) -> Any:
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def users(self) -> list[dict[str, Any]]:
        """Every user of the tenant, any status."""
        users: list[dict[str, Any]] = self.get("/__emulator/users")
        return users

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.get("/__emulator/stats")
        return stats

    def faults(self, **settings: Any) -> None:
        self.post("/__emulator/faults", settings)

    def sign_in_everyone(self) -> None:
        self.post("/__emulator/sign-in", {})

    def stop(self) -> None:
        self._http_close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()

    def _http_close(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()


def write_config(
    path: Path,
    *,
    emulator: EmulatorProcess,
    export: Path,
    state_url: str,
    staffbase: dict[str, Any] | None = None,
    safety: dict[str, Any] | None = None,
) -> Path:
    """Write a staffsync TOML file aimed at ``emulator`` and return its path."""
    sections: dict[str, dict[str, Any]] = {
        "source": {"path": str(export)},
        "staffbase": {
            "base_url": emulator.base_url,
            "token_url": emulator.token_url,
            "client_id": "staffsync-demo",
            "client_secret": "demo-secret",
            "max_concurrency": 8,
            "max_requests_per_second": 1000,
            "retry_initial_wait_seconds": 0.05,
            "max_retry_wait_seconds": 2,
            "timeout_seconds": 10,
            **(staffbase or {}),
        },
        "state": {"url": state_url},
        "safety": safety or {},
    }
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {json.dumps(value)}" for name, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def sync_command(config: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "staffsync",
        "--config",
        str(config),
        "--log-format",
        "json",
        "--log-level",
        "info",
        "sync",
        *args,
    ]


@dataclass
class SyncResult:
    """A ``staffsync sync`` that ran to its end."""

    returncode: int
    report: dict[str, Any]
    stderr: str


def run_sync(config: Path, report_path: Path) -> SyncResult:
    """Run ``staffsync sync`` to its end and return its exit status and report."""
    report_path.unlink(missing_ok=True)
    completed = subprocess.run(
        [*sync_command(config), "--report-json", str(report_path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    report = json.loads(report_path.read_text("utf-8")) if report_path.exists() else {}
    return SyncResult(completed.returncode, report, completed.stderr)


class _EventWatcher:
    """Reads a process's JSON log lines and tells when a given event has been logged."""

    def __init__(self, process: subprocess.Popen[str], event: str) -> None:
        self.seen = threading.Event()
        self.tail: deque[str] = deque(maxlen=30)
        self._event = f'"event": "{event}"'
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.tail.append(line.rstrip())
            if self._event in line:
                self.seen.set()

    def join(self) -> None:
        self._thread.join(10)


@dataclass
class Attempt:
    """One start of ``staffsync sync`` in a kill loop."""

    number: int
    aim: str
    """What the kill aimed at: ``start`` (timed from the spawn), ``settle`` or ``apply``
    (both timed from the ``run_started`` log event)."""
    delay: float
    killed: bool = False
    returncode: int | None = None
    landed: str = ""
    """Where the kill landed, read from the journal afterwards (see :func:`classify_kill`)."""


@dataclass
class KillLoop:
    """Starts ``staffsync sync`` again and again and kills it at random moments.

    Args:
        config: The staffsync configuration file.
        state_url: The state database, read between attempts to see where kills landed.
        rng: The seeded random source of every delay.
        emulator: The emulator, whose latency is redrawn between attempts.
        latency_ms: Range of the emulator latency drawn for each attempt.
        apply_delay_s: Range of the delay of kills aimed at sending.
    """

    config: Path
    state_url: str
    rng: random.Random
    emulator: EmulatorProcess
    latency_ms: tuple[float, float] = (5.0, 20.0)
    apply_delay_s: tuple[float, float] = (0.3, 2.5)
    """Range of the delay from ``run_started`` to a kill aimed at sending."""
    attempts: list[Attempt] = field(default_factory=list)

    def run(self, kills: int) -> None:
        """Start and kill ``staffsync sync`` until it has been killed ``kills`` times."""
        engine = sa.create_engine(self.state_url)
        try:
            while sum(attempt.killed for attempt in self.attempts) < kills:
                self._attempt(engine, len(self.attempts) + 1)
                if len(self.attempts) > kills * 4:
                    msg = f"only {self.kill_count} of {kills} kills landed: {self.summary()}"
                    raise AssertionError(msg)
        finally:
            engine.dispose()

    @property
    def kill_count(self) -> int:
        return sum(attempt.killed for attempt in self.attempts)

    def landed(self) -> Counter[str]:
        """How many kills landed in each stage."""
        return Counter(attempt.landed for attempt in self.attempts if attempt.killed)

    def summary(self) -> str:
        parts = [
            f"#{a.number} {a.aim}+{a.delay:.2f}s->"
            f"{a.landed if a.killed else f'exit {a.returncode}'}"
            for a in self.attempts
        ]
        return ", ".join(parts)

    def _attempt(self, engine: sa.Engine, number: int) -> None:
        before = _journal_snapshot(engine)
        aim = self._choose_aim(number, before)
        # The first kill lands within the interpreter's start-up, which takes longer than
        # this, so every loop kills at least once before a run is recorded.
        delay = self.rng.uniform(0.05, 0.3) if number == 1 else self._draw_delay(aim)
        attempt = Attempt(number, aim, delay)
        self.attempts.append(attempt)
        self.emulator.faults(latency_ms=round(self.rng.uniform(*self.latency_ms), 1))

        # JSON log lines go to stdout; the watcher reads them to time the kill.
        process = subprocess.Popen(
            sync_command(self.config),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        watcher = _EventWatcher(process, "run_started")
        started = time.monotonic()
        if aim != "start":
            # Settling begins right after the run has started, and sending after
            # planning: both are timed from that event rather than from the spawn,
            # whose start-up time varies with the machine's load.
            while not watcher.seen.wait(0.005) and process.poll() is None:
                pass
            started = time.monotonic()

        while process.poll() is None and time.monotonic() - started < delay:
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            attempt.killed = True
        attempt.returncode = process.wait(RUN_TIMEOUT_S)
        watcher.join()

        if attempt.killed:
            attempt.landed = classify_kill(before, _journal_snapshot(engine))
        elif attempt.returncode not in (0, 4):
            msg = f"attempt #{number} exited with {attempt.returncode}:\n" + "\n".join(watcher.tail)
            raise AssertionError(msg)

    def _choose_aim(self, number: int, before: _Journal) -> str:
        if number <= 2:
            return "start"
        if before.open_ids and self.rng.random() < 0.3:
            return "settle"
        return "start" if self.rng.random() < 0.2 else "apply"

    def _draw_delay(self, aim: str) -> float:
        if aim == "start":
            return self.rng.uniform(0.0, 1.5)
        if aim == "settle":
            return self.rng.uniform(0.0, 0.15)
        return self.rng.uniform(*self.apply_delay_s)


@dataclass(frozen=True)
class _Journal:
    runs: frozenset[str]
    plan_runs: frozenset[str]
    open_ids: frozenset[int]


def _journal_snapshot(engine: sa.Engine) -> _Journal:
    empty = _Journal(frozenset(), frozenset(), frozenset())
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("changes"):
            return empty
        runs = connection.execute(sa.text("SELECT id FROM runs")).scalars()
        plan_runs = connection.execute(sa.text("SELECT run_id FROM plans")).scalars()
        open_ids = connection.execute(sa.text("SELECT id FROM changes WHERE state = 'sent'"))
        return _Journal(frozenset(runs), frozenset(plan_runs), frozenset(open_ids.scalars()))


def classify_kill(before: _Journal, after: _Journal) -> str:
    """Name the stage a killed run had reached, from the journal it left behind.

    ``startup``: no run was recorded (imports, settings, migrations, lock).
    ``settle``: the run started but changes that were open before it are still open.
    ``plan``: open changes were settled, but no plan was stored yet.
    ``apply``: the run stored its plan and was sending it.
    """
    new_runs = after.runs - before.runs
    if not new_runs:
        return "startup"
    if new_runs & after.plan_runs:
        return "apply"
    if before.open_ids & after.open_ids:
        return "settle"
    return "plan"


# Checking the tenant


def read_export(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def tenant_problems(
    users: list[dict[str, Any]],
    export: list[dict[str, str]],
    *,
    deactivated_keys: Iterable[str] = (),
) -> list[str]:
    """List every way the tenant differs from the export; an empty list means equal.

    Active rows must have exactly one user that is not deactivated, with every compared
    field, the primary e-mail and the manager right. Terminated rows must have no user;
    ``deactivated_keys`` (people removed from the export) must have a deactivated one.
    """
    problems: list[str] = []
    by_key: dict[str, list[dict[str, Any]]] = {}
    for user in users:
        by_key.setdefault(user.get("externalID") or f"<no externalID {user['id']}>", []).append(
            user
        )

    duplicates = sorted(key for key, found in by_key.items() if len(found) > 1)
    if duplicates:
        problems.append(f"{len(duplicates)} duplicate externalIDs: {duplicates[:10]}")
    emails = Counter(_primary_email(user) for user in users)
    doubled = sorted(email for email, count in emails.items() if email and count > 1)
    if doubled:
        problems.append(f"{len(doubled)} duplicate e-mails: {doubled[:10]}")

    ids = {key: found[0]["id"] for key, found in by_key.items()}
    active_rows = {row["employee_id"]: row for row in export if row["status"] == "active"}
    terminated = {row["employee_id"] for row in export if row["status"] != "active"}
    deactivated = set(deactivated_keys)

    live = {key for key, found in by_key.items() if found[0]["status"] != "deactivated"}
    if missing := sorted(set(active_rows) - live):
        problems.append(f"{len(missing)} active people without a live user: {missing[:10]}")
    if extra := sorted(live - set(active_rows)):
        problems.append(f"{len(extra)} live users the export does not list: {extra[:10]}")
    if ghosts := sorted(terminated & set(by_key)):
        problems.append(f"{len(ghosts)} terminated people with a user: {ghosts[:10]}")
    not_deactivated = sorted(key for key in deactivated if key not in by_key or key in live)
    if not_deactivated:
        problems.append(f"{len(not_deactivated)} leavers not deactivated: {not_deactivated[:10]}")

    wrong: list[str] = []
    for key, row in sorted(active_rows.items()):
        if key not in by_key:
            continue
        user = by_key[key][0]
        expected = {name: row[column] for name, column in COMPARED_FIELDS.items()}
        expected["email"] = row["work_email"]
        expected["manager"] = ids.get(row["manager_id"]) if row["manager_id"] else None
        actual = {name: user.get(name) for name in COMPARED_FIELDS}
        actual["email"] = _primary_email(user)
        actual["manager"] = (user.get("profile") or {}).get("system_manager") or None
        differing = sorted(name for name in expected if expected[name] != actual[name])
        if differing:
            wrong.append(f"{key}: {', '.join(differing)}")
    if wrong:
        problems.append(f"{len(wrong)} users with wrong fields: {wrong[:10]}")
    return problems


def _primary_email(user: dict[str, Any]) -> str | None:
    for email in user.get("emails") or []:
        if email.get("primary"):
            return str(email["value"]).casefold()
    return None
