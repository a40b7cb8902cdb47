"""Access tokens during whole runs: one per lifetime, one per revocation, none wasted.

A cached token is renewed once ``renewal = lifetime - min(token_leeway_seconds,
lifetime / 10)`` has passed since its request started. A run that sends without pause
for ``span`` seconds therefore fetches ``1 + floor(span / renewal)`` tokens, or one more
when a fetch straddles a renewal point, and 8 worker threads must not add any.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest
import sqlalchemy as sa

from staffsync.emulator import EmulatorServer
from staffsync.runner import RunRequest, execute_run
from staffsync.staffbase.client import StaffbaseClient
from staffsync.state.status import read_status
from tests.sync.harness import Bench, person

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from staffsync.settings import Settings

LIFETIME_S = 2.0


def roster(count: int) -> list[dict[str, str]]:
    return [person(1, title="CEO")] + [person(n, manager_id="E0001") for n in range(2, count + 1)]


@dataclass
class RequestClock:
    """Records when each API request and each token request was sent."""

    token_url: str
    api: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> None:
        with self.lock:
            target = self.tokens if str(request.url) == self.token_url else self.api
            target.append(time.monotonic())


@contextlib.contextmanager
def timed_client(settings: Settings, clock: RequestClock) -> Iterator[StaffbaseClient]:
    http = httpx.Client(event_hooks={"request": [clock]}, limits=httpx.Limits(max_connections=16))
    with http, StaffbaseClient(settings.staffbase, http=http) as client:
        yield client


def journal(state_url: str) -> dict[str, int]:
    engine = sa.create_engine(state_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT state, count(*) FROM changes GROUP BY state"))
        states = {state: count for state, count in rows}
    engine.dispose()
    return states


class TestTokenLifetime:
    @pytest.mark.slow
    def test_one_fetch_per_lifetime(self, bench: Bench) -> None:
        """A 6-second run with 2-second tokens and 8 threads fetches one token per renewal."""
        bench.faults(token_lifetime_s=LIFETIME_S, latency_ms=10)
        bench.write_export(roster(300))
        settings = bench.settings()
        settings.staffbase.max_concurrency = 8
        settings.staffbase.max_requests_per_second = 50
        clock = RequestClock(bench.emulator.token_url)

        with timed_client(settings, clock) as client:
            report = execute_run(settings, RunRequest(), client=client)

        renewal = LIFETIME_S - min(settings.staffbase.token_leeway_seconds, LIFETIME_S / 10)
        span = clock.api[-1] - clock.tokens[0]
        fewest = 1 + math.floor(span / renewal)
        gaps = [later - earlier for earlier, later in itertools.pairwise(clock.tokens)]
        assert report.counts["created"] == 300
        assert report.counts["failed"] == 0
        assert span > 5.5
        assert fewest <= len(clock.tokens) <= fewest + 1
        assert bench.stats()["token_requests"] == len(clock.tokens)
        assert bench.stats()["responses"].get("401", 0) == 0
        print(f"span {span:.2f} s, {len(clock.tokens)} tokens, gaps {gaps}")
        # Each renewal is made by the first request after the cached token's renew time.
        # The renew time counts from just before a token request's hook sees it, hence
        # the small allowance below the renewal interval.
        assert all(renewal - 0.05 <= gap < renewal + 0.5 for gap in gaps), gaps


class TestRevokedTokens:
    def test_one_fetch_per_revocation(self, bench: Bench) -> None:
        """Revoking every token mid-run costs one token fetch, not one per request in flight."""
        bench.faults(latency_ms=20)
        bench.write_export(roster(400))
        settings = bench.settings()
        settings.staffbase.max_concurrency = 8
        settings.staffbase.max_requests_per_second = 400
        revoked = threading.Event()

        def revoke_after_100_users() -> None:
            while len(bench.get("/__emulator/users")) < 100:
                time.sleep(0.01)
            bench.faults(revoke_tokens=True)
            revoked.set()

        thread = threading.Thread(target=revoke_after_100_users)
        thread.start()
        report = bench.sync(settings)
        thread.join(10)

        stats = bench.stats()
        assert revoked.is_set()
        assert report.status == "succeeded"
        assert report.counts["created"] == 400
        assert stats["token_requests"] == 2
        assert stats["responses"]["401"] >= 2


class TestRejectedCredentials:
    def test_second_401_fails_the_run(self, bench: Bench) -> None:
        """A freshly fetched token rejected too ends the run, marking no record as failed."""
        bench.faults(latency_ms=10)
        bench.write_export(roster(300))
        settings = bench.settings()
        settings.staffbase.max_concurrency = 8
        settings.staffbase.max_requests_per_second = 300

        def break_tokens_after_50_users() -> None:
            while len(bench.get("/__emulator/users")) < 50:
                time.sleep(0.01)
            # Tokens that expire a microsecond after issue are rejected on every use.
            bench.faults(token_lifetime_s=0.000001, revoke_tokens=True)

        thread = threading.Thread(target=break_tokens_after_50_users)
        thread.start()
        report = bench.sync(settings)
        thread.join(10)

        assert report.status == "failed"
        assert report.exit_code == 1
        assert report.error is not None
        assert "credentials or scopes are wrong" in report.error
        assert report.failed == []
        assert report.counts["failed"] == 0
        assert 50 <= report.counts["created"] < 300
        assert "sent" not in journal(bench.state_url)
        assert "failed" not in journal(bench.state_url)
        assert_no_failing_records(bench)

        bench.faults(token_lifetime_s=None)
        second = bench.sync(settings)

        assert second.status == "succeeded"
        assert second.counts["created"] == 300 - report.counts["created"]
        assert len(bench.users()) == 300

    def test_changed_secret_fails_the_run(self, tmp_path: Path, sqlite_url: str) -> None:
        """A secret that stops working mid-run ends the run with the token endpoint's reason."""
        with EmulatorServer() as server:
            bench = Bench(emulator=server, folder=tmp_path, state_url=sqlite_url)
            bench.faults(latency_ms=10)
            bench.write_export(roster(300))
            settings = bench.settings()
            settings.staffbase.max_concurrency = 8

            def rotate_secret_after_50_users() -> None:
                while len(bench.get("/__emulator/users")) < 50:
                    time.sleep(0.01)
                server.call(lambda: setattr(server.emulator.config, "client_secret", "rotated"))
                bench.faults(revoke_tokens=True)

            thread = threading.Thread(target=rotate_secret_after_50_users)
            thread.start()
            report = bench.sync(settings)
            thread.join(10)

        assert report.status == "failed"
        assert report.exit_code == 1
        assert report.error is not None
        assert "invalid_client" in report.error
        assert "check client_id, client_secret" in report.error
        assert "demo-secret" not in report.error
        assert report.failed == []
        assert "sent" not in journal(sqlite_url)
        assert "failed" not in journal(sqlite_url)


def assert_no_failing_records(bench: Bench) -> None:
    engine = sa.create_engine(bench.state_url)
    with engine.connect() as connection:
        assert read_status(connection)["failing"] == []
    engine.dispose()
