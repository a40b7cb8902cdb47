"""Tests for the ops endpoints, served by a real OpsServer on 127.0.0.1 and read with httpx."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from staffsync.metrics import REGISTRY, RUNS
from staffsync.ops import OpsServer, make_readiness, parse_listen

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOUR = 3600.0


@pytest.fixture
def serve() -> Iterator[Callable[..., httpx.Client]]:
    """Start an OpsServer on a free loopback port and return an httpx client for it."""
    servers: list[OpsServer] = []
    clients: list[httpx.Client] = []

    def start(
        readiness: Callable[[], tuple[bool, str]] = lambda: (True, "ok"),
        liveness: Callable[[], bool] | None = None,
        listen: str = "127.0.0.1:0",
    ) -> httpx.Client:
        server = OpsServer(listen, readiness=readiness, liveness=liveness)
        server.start()
        servers.append(server)
        host = "[::1]" if listen.startswith("[") else "127.0.0.1"
        client = httpx.Client(base_url=f"http://{host}:{server.port}", timeout=5)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


class TestHealthz:
    """/healthz reports liveness only."""

    def test_ok_without_liveness(self, serve: Callable[..., httpx.Client]) -> None:
        """Without a liveness check the endpoint returns 200 ok."""
        response = serve().get("/healthz")

        assert response.status_code == 200
        assert response.text == "ok\n"

    def test_scheduler_dead(self, serve: Callable[..., httpx.Client]) -> None:
        """A false liveness check returns 503."""
        response = serve(liveness=lambda: False).get("/healthz")

        assert response.status_code == 503
        assert response.text == "scheduler is not running\n"

    def test_ignores_readiness(self, serve: Callable[..., httpx.Client]) -> None:
        """A failing readiness check, such as a database outage, leaves liveness at 200."""
        response = serve(readiness=lambda: (False, "database down")).get("/healthz")

        assert response.status_code == 200

    def test_head(self, serve: Callable[..., httpx.Client]) -> None:
        """HEAD returns the status without a body."""
        response = serve().head("/healthz")

        assert response.status_code == 200
        assert response.content == b""


class TestReadyz:
    """/readyz returns 200 or 503 with the reason from the readiness check."""

    def test_ready(self, serve: Callable[..., httpx.Client]) -> None:
        """A true check returns 200 with its reason."""
        response = serve(readiness=lambda: (True, "latest run succeeded")).get("/readyz")

        assert response.status_code == 200
        assert response.text == "ready: latest run succeeded\n"

    def test_not_ready(self, serve: Callable[..., httpx.Client]) -> None:
        """A false check returns 503 with its reason."""
        response = serve(readiness=lambda: (False, "state database down")).get("/readyz")

        assert response.status_code == 503
        assert response.text == "not ready: state database down\n"

    def test_reason_redacted(self, serve: Callable[..., httpx.Client]) -> None:
        """A database URL with a password in the reason is masked."""
        reason = "cannot reach postgresql+psycopg://sync:pw-123456@db/sync"

        response = serve(readiness=lambda: (False, reason)).get("/readyz")

        assert "pw-123456" not in response.text
        assert (
            response.text
            == "not ready: cannot reach postgresql+psycopg://sync:[REDACTED]@db/sync\n"
        )

    def test_check_raises(self, serve: Callable[..., httpx.Client]) -> None:
        """A check that raises returns 503 naming the exception type."""

        def broken() -> tuple[bool, str]:
            raise RuntimeError("boom")

        response = serve(readiness=broken).get("/readyz")

        assert response.status_code == 503
        assert response.text == "check raised RuntimeError\n"


class TestMetricsAndRouting:
    """/metrics serves the staffsync registry; other paths are not found."""

    def test_metrics_lists_every_series(self, serve: Callable[..., httpx.Client]) -> None:
        """Every series of staffsync.metrics appears, with its samples."""
        RUNS.labels(mode="incremental", status="succeeded").inc()

        response = serve().get("/metrics")

        assert response.status_code == 200
        for family in REGISTRY.collect():
            assert f"# HELP {family.name}" in response.text
        assert 'staffsync_runs_total{mode="incremental",status="succeeded"}' in response.text

    def test_unknown_path(self, serve: Callable[..., httpx.Client]) -> None:
        """A path other than the three endpoints returns 404."""
        response = serve().get("/metrics/extra")

        assert response.status_code == 404

    def test_post_rejected(self, serve: Callable[..., httpx.Client]) -> None:
        """POST to a check returns 405 with the allowed methods."""
        response = serve().post("/readyz")

        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"

    def test_ipv6_loopback(self, serve: Callable[..., httpx.Client]) -> None:
        """A bracketed IPv6 address binds and serves."""
        if not socket.has_ipv6:
            pytest.skip("this Python has no IPv6 support")
        try:
            client = serve(listen="[::1]:0")
        except OSError as exc:
            pytest.skip(f"IPv6 loopback is not available here: {exc}")

        assert client.get("/healthz").status_code == 200


class TestOpsServerLifecycle:
    """start() binds the socket and stop() releases it."""

    def test_port_in_use(self) -> None:
        """Binding a port that is taken raises OSError naming the address and the setting."""
        first = OpsServer("127.0.0.1:0", readiness=lambda: (True, "ok"))
        first.start()
        try:
            second = OpsServer(f"127.0.0.1:{first.port}", readiness=lambda: (True, "ok"))
            with pytest.raises(OSError, match=rf"127\.0\.0\.1:{first.port}.*\[ops\] listen"):
                second.start()
        finally:
            first.stop()

    def test_stop_closes_socket(self) -> None:
        """After stop() nothing accepts connections on the port."""
        server = OpsServer("127.0.0.1:0", readiness=lambda: (True, "ok"))
        server.start()
        port = server.port

        server.stop()

        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)

    def test_port_before_start(self) -> None:
        """Reading the port before start() raises a clear error."""
        server = OpsServer("127.0.0.1:0", readiness=lambda: (True, "ok"))

        with pytest.raises(RuntimeError, match="call start"):
            _ = server.port


class TestParseListen:
    """parse_listen splits host:port and rejects anything else."""

    @pytest.mark.parametrize(
        ("listen", "expected"),
        [
            ("127.0.0.1:9464", ("127.0.0.1", 9464)),
            ("0.0.0.0:9464", ("0.0.0.0", 9464)),
            ("[::]:9464", ("::", 9464)),
            ("[::1]:0", ("::1", 0)),
            ("localhost:8000", ("localhost", 8000)),
        ],
    )
    def test_accepted(self, listen: str, expected: tuple[str, int]) -> None:
        """Host names, IPv4 and bracketed IPv6 addresses parse."""
        assert parse_listen(listen) == expected

    @pytest.mark.parametrize(
        "listen", ["9464", ":9464", "::1:9464", "host:99999", "[nope]:1", "host:"]
    )
    def test_rejected(self, listen: str) -> None:
        """Other forms raise ValueError quoting the value."""
        with pytest.raises(ValueError, match=r"\[ops\] listen") as caught:
            parse_listen(listen)

        assert repr(listen) in str(caught.value)


def _readiness(
    last_success: datetime | None,
    latest: str | None,
    *,
    up_since: datetime = NOW,
    now: datetime = NOW,
    db_error: Exception | None = None,
) -> tuple[bool, str]:
    def check_db() -> None:
        if db_error is not None:
            raise db_error

    check = make_readiness(
        check_db,
        lambda: (last_success, latest),
        HOUR,
        now=lambda: now,
        up_since=up_since,
    )
    return check()


class TestMakeReadiness:
    """make_readiness combines the database check with the run history."""

    def test_no_run_yet(self) -> None:
        """A fresh daemon with a working database is ready."""
        assert _readiness(None, None) == (True, "no run yet")

    def test_latest_succeeded(self) -> None:
        """A successful latest run is ready with that status as reason."""
        assert _readiness(NOW, "succeeded") == (True, "latest run succeeded")

    def test_blocked_is_ready(self) -> None:
        """A plan held by the safety guards does not make the daemon unready."""
        ready, _ = _readiness(NOW - timedelta(days=3), "blocked")

        assert ready is True

    def test_database_down(self) -> None:
        """A failing database check is not ready, naming the error."""
        ready, reason = _readiness(NOW, "succeeded", db_error=ConnectionError("refused"))

        assert ready is False
        assert reason == "state database check failed: ConnectionError: refused"

    def test_failed_recent_success(self) -> None:
        """A failed run with a success inside the limit stays ready."""
        ready, reason = _readiness(NOW - timedelta(minutes=30), "failed")

        assert ready is True
        assert reason == "latest run failed; last success 1800 s ago"

    def test_failed_old_success(self) -> None:
        """A failed run with the last success beyond the limit is not ready."""
        ready, reason = _readiness(NOW - timedelta(hours=2), "failed")

        assert ready is False
        assert reason == (
            "latest run failed and the last successful run finished 7200 s ago (limit 3600 s)"
        )

    def test_naive_success_time_is_utc(self) -> None:
        """A naive timestamp, as SQLite returns it, counts as UTC."""
        naive = (NOW - timedelta(hours=2)).replace(tzinfo=None)

        ready, _ = _readiness(naive, "failed")

        assert ready is False

    def test_failed_never_succeeded_young(self) -> None:
        """Without any success, a daemon up for less than the limit stays ready."""
        ready, _ = _readiness(None, "failed", up_since=NOW - timedelta(minutes=10))

        assert ready is True

    def test_failed_never_succeeded_old(self) -> None:
        """Without any success, a daemon up for longer than the limit is not ready."""
        ready, reason = _readiness(None, "failed", up_since=NOW - timedelta(hours=3))

        assert ready is False
        assert (
            reason == "latest run failed and no run succeeded in 10800 s since start (limit 3600 s)"
        )
