"""Measure how close staffsync pushes to a tenant's rate limit.

Usage: python bench/push.py --limit 50 --people 1500 [--concurrency 8] [--client-rate R]
                            [--latency-ms MS] [--postgres URL]

Starts ``staffsync emulator`` as a separate process whose rate limit is LIMIT requests
per second, then runs two syncs in this process with ``[staffbase]
max_requests_per_second`` = LIMIT: one that creates PEOPLE users and one that changes
one field (the location) of each of them. For each phase it prints the changes per
second, that rate as a share of LIMIT, the 429 responses and token requests the
emulator counted, the failed records and the wall time of the run (planning included).

``--client-rate`` sets ``max_requests_per_second`` above LIMIT, as when the tenant's
limit is not known, to see how the adaptive rate limiter settles. ``--latency-ms``
adds that delay to every API request, as a distant tenant would: the rate is then
capped near ``concurrency / latency`` whatever the limit. ``--postgres`` keeps
the state in a throw-away schema of that PostgreSQL database instead of a SQLite file.

The emulator's token bucket starts full, with one second's worth of requests, so a
phase may begin with a burst above the limit. Over a run of N / LIMIT seconds, that
burst adds about LIMIT / N to the measured share. The numbers depend on the machine; record
them with its description.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from staffsync.logs import configure_logging
from staffsync.runner import RunRequest, execute_run
from staffsync.sample import write_export
from staffsync.settings import (
    SafetySettings,
    Settings,
    SourceSettings,
    StaffbaseSettings,
    StateSettings,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

BANNER = "staffsync emulator listening on "
CHANGE_KINDS = ("created", "updated", "deactivated", "reactivated", "deleted")


@dataclass
class PhaseResult:
    """Counts and timing of one sync of the benchmark."""

    name: str
    changes: int
    failed: int
    seconds: float
    rate_limited: int
    token_requests: int
    status: str


class Emulator:
    """``staffsync emulator --port 0`` as a child process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "staffsync", "emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()
        if not first.startswith(BANNER):
            self.stop()
            msg = f"the emulator printed {first!r} instead of its banner"
            raise RuntimeError(msg)
        self.url = first.removeprefix(BANNER)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}/__emulator{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def build_settings(
    emulator: Emulator, export: Path, state_url: str, rate: float, concurrency: int
) -> Settings:
    return Settings(
        source=SourceSettings(path=export),
        staffbase=StaffbaseSettings(
            base_url=f"{emulator.url}/api",
            token_url=f"{emulator.url}/oauth2/token",
            client_id="staffsync-demo",
            client_secret=SecretStr("demo-secret"),
            max_concurrency=concurrency,
            max_requests_per_second=rate,
        ),
        state=StateSettings(url=state_url),
        safety=SafetySettings(max_deactivation_percent=100),
    )


def run_phase(name: str, emulator: Emulator, settings: Settings) -> PhaseResult:
    before = emulator.control("GET", "/stats")
    started = time.perf_counter()
    report = execute_run(settings, RunRequest(trigger="bench"))
    seconds = time.perf_counter() - started
    after = emulator.control("GET", "/stats")
    return PhaseResult(
        name=name,
        changes=sum(report.counts[kind] for kind in CHANGE_KINDS),
        failed=report.counts["failed"],
        seconds=seconds,
        rate_limited=after["rate_limited"] - before["rate_limited"],
        token_requests=after["token_requests"] - before["token_requests"],
        status=report.status,
    )


def move_everyone(export: Path) -> None:
    """Change the location of every person in ``export``, one field each."""
    with export.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["location"] = f"{row['location']} (moved)"
    with export.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def print_result(result: PhaseResult, limit: float) -> None:
    rate = result.changes / result.seconds
    print(
        f"{result.name:8} {result.changes:>6} changes {result.seconds:7.1f} s"
        f" {rate:8.1f}/s {rate / limit:6.2f} of limit  429s {result.rate_limited:>5}"
        f"  tokens {result.token_requests:>2}  failed {result.failed}  ({result.status})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, required=True, help="requests per second")
    parser.add_argument("--people", type=int, required=True, help="people in the export")
    parser.add_argument("--concurrency", type=int, default=8, help="max_concurrency")
    parser.add_argument(
        "--client-rate", type=float, help="max_requests_per_second (default: the limit)"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="emulator latency per request"
    )
    parser.add_argument("--postgres", help="PostgreSQL state URL instead of a SQLite file")
    args = parser.parse_args()
    configure_logging("console", "warning")
    client_rate = args.client_rate or args.limit

    emulator = Emulator()
    try:
        faults = {"rate_limit_per_second": args.limit, "latency_ms": args.latency_ms}
        emulator.control("POST", "/faults", faults)
        with (
            tempfile.TemporaryDirectory(prefix="staffsync-push-") as folder,
            state_database(args.postgres, Path(folder)) as state_url,
        ):
            export = Path(folder) / "export.csv"
            write_export(export, args.people)
            settings = build_settings(emulator, export, state_url, client_rate, args.concurrency)

            print(
                f"limit {args.limit:g}/s, client {client_rate:g}/s, {args.people} people,"
                f" max_concurrency {args.concurrency}, latency {args.latency_ms:g} ms,"
                f" state {'postgresql' if args.postgres else 'sqlite'}"
            )
            print_result(run_phase("create", emulator, settings), args.limit)
            move_everyone(export)
            print_result(run_phase("update", emulator, settings), args.limit)
    finally:
        emulator.stop()


@contextlib.contextmanager
def state_database(postgres_url: str | None, folder: Path) -> Iterator[str]:
    """Yield a state URL: a SQLite file in ``folder``, or a new schema dropped afterwards."""
    if postgres_url is None:
        yield f"sqlite:///{folder}/state.db"
        return

    schema = f"staffsync_push_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
