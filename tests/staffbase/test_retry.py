"""Tests for the retry policy: Retry-After parsing, what is retried, and how long it waits.

The same policy is exercised end to end against the emulator in ``test_client.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import structlog.testing

from staffsync import metrics
from staffsync.staffbase.retry import (
    RetryableStatus,
    RetryPolicy,
    failure_reason,
    is_retryable,
    parse_retry_after,
)

NOW = datetime(2026, 10, 21, 7, 0, 0, tzinfo=UTC)


def status(code: int, retry_after: str | None = None) -> RetryableStatus:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return RetryableStatus(httpx.Response(code, headers=headers))


def retry_count(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "staffsync_staffbase_retries_total", {"reason": reason}
    )
    return value or 0.0


class Script:
    """A send function that raises the given exceptions in turn, then returns "done"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("120", 120.0),
            (" 3 ", 3.0),
            ("1.5", 1.5),
            ("0", 0.0),
            ("-5", 0.0),
        ],
    )
    def test_delta_seconds(self, header: str, expected: float) -> None:
        """Delta-seconds are read as a number, a negative one as no wait."""
        assert parse_retry_after(header) == expected

    def test_http_date_in_future(self) -> None:
        """An HTTP-date gives the seconds from now until then."""
        assert parse_retry_after("Wed, 21 Oct 2026 07:01:30 GMT", now=NOW) == 90.0

    def test_http_date_in_past(self) -> None:
        """An HTTP-date that has passed means no wait."""
        assert parse_retry_after("Wed, 21 Oct 2026 06:00:00 GMT", now=NOW) == 0.0

    @pytest.mark.parametrize("header", [None, "", "soon", "12 seconds", "inf", "nan", "Wed, 99"])
    def test_unusable(self, header: str | None) -> None:
        """A missing or unparsable value gives None, so the caller backs off on its own."""
        assert parse_retry_after(header) is None

    def test_read_from_429(self) -> None:
        """A 429 response's Retry-After becomes the exception's retry_after."""
        assert status(429, "7").retry_after == 7.0

    def test_ignored_on_500(self) -> None:
        """Retry-After is only honoured on 429 and 503."""
        assert status(500, "7").retry_after is None


class TestIsRetryable:
    @pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
    def test_idempotent_statuses(self, code: int) -> None:
        """Idempotent requests are retried on every retryable status."""
        assert is_retryable(status(code), idempotent=True) is True

    @pytest.mark.parametrize(
        ("code", "expected"), [(429, True), (503, True), (500, False), (502, False), (504, False)]
    )
    def test_create_statuses(self, code: int, expected: bool) -> None:
        """A create is retried only on statuses that prove it was not processed."""
        assert is_retryable(status(code), idempotent=False) is expected

    @pytest.mark.parametrize(
        "error",
        [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy")],
    )
    def test_create_unsent(self, error: httpx.TransportError) -> None:
        """A create that never left this process is retried."""
        assert is_retryable(error, idempotent=False) is True

    @pytest.mark.parametrize(
        "error",
        [
            httpx.ReadTimeout("slow"),
            httpx.WriteTimeout("slow"),
            httpx.ReadError("reset"),
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
        ],
    )
    def test_create_ambiguous(self, error: httpx.TransportError) -> None:
        """A create that may have reached Staffbase is not retried, but a PUT is."""
        assert is_retryable(error, idempotent=False) is False
        assert is_retryable(error, idempotent=True) is True

    def test_other_exceptions(self) -> None:
        """Errors that are not about the transport or a status are never retried."""
        assert is_retryable(ValueError("bad"), idempotent=True) is False

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (status(429), "rate_limited"),
            (status(503), "unavailable"),
            (status(502), "server_error"),
            (httpx.ReadTimeout("slow"), "timeout"),
            (httpx.RemoteProtocolError("gone"), "connection_dropped"),
            (httpx.ConnectError("refused"), "connection"),
        ],
    )
    def test_reasons(self, error: BaseException, reason: str) -> None:
        """Each failure kind has a stable reason name for logs and metrics."""
        assert failure_reason(error) == reason


class TestRetryPolicy:
    def policy(
        self, sleeps: list[float], *, max_attempts: int = 4, max_wait: float = 30.0
    ) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=max_attempts, max_wait=max_wait, initial_wait=0.5, sleep=sleeps.append
        )

    def test_success_after_failures(self) -> None:
        """A request that fails twice and then succeeds returns the result."""
        sleeps: list[float] = []
        send = Script(status(502), httpx.ReadTimeout("slow"))

        result = self.policy(sleeps).call(send, method="PUT", route="/users/{id}", idempotent=True)

        assert result == "done"
        assert send.calls == 3
        assert len(sleeps) == 2

    def test_retry_after_waited(self) -> None:
        """A 429 with Retry-After waits exactly that long."""
        sleeps: list[float] = []
        send = Script(status(429, "2"))

        self.policy(sleeps).call(send, method="POST", route="/users", idempotent=False)

        assert sleeps == [2.0]

    def test_backoff_capped(self) -> None:
        """Backoff waits stay within the doubling bound and never exceed max_wait."""
        sleeps: list[float] = []
        send = Script(*(status(500) for _ in range(7)))

        policy = self.policy(sleeps, max_attempts=8, max_wait=3.0)
        policy.call(send, method="GET", route="/users", idempotent=True)

        bounds = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
        assert len(sleeps) == 7
        for wait, bound in zip(sleeps, bounds, strict=True):
            assert 0.0 <= wait <= bound

    def test_retry_after_too_long(self) -> None:
        """A Retry-After beyond max_wait fails at once instead of sleeping."""
        sleeps: list[float] = []
        send = Script(status(503, "3600"))

        with pytest.raises(RetryableStatus) as caught:
            self.policy(sleeps).call(send, method="GET", route="/users", idempotent=True)

        assert caught.value.retry_after == 3600.0
        assert send.calls == 1
        assert sleeps == []

    def test_attempts_exhausted(self) -> None:
        """After max_attempts the last error is raised unchanged."""
        sleeps: list[float] = []
        last = status(504)
        send = Script(status(504), status(504), last)

        with pytest.raises(RetryableStatus) as caught:
            self.policy(sleeps, max_attempts=3).call(
                send, method="DELETE", route="/users/{id}", idempotent=True
            )

        assert caught.value is last
        assert send.calls == 3

    def test_create_not_resent(self) -> None:
        """A create that failed with 502 is not sent again."""
        send = Script(status(502))

        with pytest.raises(RetryableStatus):
            self.policy([]).call(send, method="POST", route="/users", idempotent=False)

        assert send.calls == 1

    def test_retries_counted(self) -> None:
        """Each retry is counted under its reason."""
        before = retry_count("unavailable")
        send = Script(status(503), status(503))

        self.policy([]).call(send, method="GET", route="/users", idempotent=True)

        assert retry_count("unavailable") - before == 2.0

    def test_retry_logged(self) -> None:
        """A retry is logged at WARNING with the route template and reason, not the arguments."""
        send = Script(status(502))

        with structlog.testing.capture_logs() as logs:
            self.policy([0.0]).call(send, method="PUT", route="/users/{id}", idempotent=True)

        assert len(logs) == 1
        entry = logs[0]
        assert entry["event"] == "staffbase_request_retry"
        assert entry["log_level"] == "warning"
        assert entry["method"] == "PUT"
        assert entry["route"] == "/users/{id}"
        assert entry["reason"] == "server_error"
        assert entry["status"] == 502
        assert entry["attempt"] == 1
        assert set(entry) == {
            "event",
            "log_level",
            "method",
            "route",
            "reason",
            "status",
            "attempt",
            "wait_seconds",
        }
